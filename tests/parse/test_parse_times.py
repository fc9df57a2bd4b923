"""Times read once per second (issue 13): `IsoSeconds` and the ``auto``/``iso8601`` readers
built on it give what `parse_iso8601`/`parse_auto` give, for any text, in any zone."""

from __future__ import annotations

from datetime import UTC
from zoneinfo import ZoneInfo

from hypothesis import example, given, settings
from hypothesis import strategies as st

from agent.parse.timestamps import IsoSeconds, parse_auto, parse_iso8601, time_parser

NOW_MS = 1_764_028_800_000
ZONES = [UTC, ZoneInfo("Europe/Berlin"), ZoneInfo("America/St_Johns"), ZoneInfo("Asia/Kolkata")]

digits = st.text("0123456789", min_size=1, max_size=3)
iso_like = st.builds(
    lambda date, sep, hms, fraction, offset: f"{date}{sep}{hms}{fraction}{offset}",
    date=st.sampled_from(
        [
            *("2026-12-03", "2024-02-29", "2025-02-29", "1969-12-31", "0001-01-01"),
            *("9999-12-31", "2026-03-29", "2026-10-25", "2026-13-01", "2026-1-01"),
        ]
    ),
    sep=st.sampled_from(["T", " ", "t", "_"]),
    hms=st.sampled_from(
        ["15:02:58", "00:00:00", "23:59:59", "02:30:00", "24:00:00", "15:02:60", "1:02:03"]
    ),
    fraction=st.one_of(
        st.just(""),
        st.builds(
            lambda s, d: s + d, st.sampled_from([".", ","]), st.text("0123456789", max_size=11)
        ),
    ),
    offset=st.sampled_from(
        ["", "Z", "z", "+01:00", "-07:00", "+0530", "-01", "+24:00", "+01:00:30", " ", "Z\x00"]
    ),
)
texts = st.one_of(iso_like, iso_like, st.text(max_size=40), digits)


@settings(max_examples=600, deadline=None, derandomize=True)
@given(values=st.lists(texts, min_size=1, max_size=6), zone=st.sampled_from(ZONES))
@example(values=["2026-12-03T15:02:58.000456789Z", "2026-12-03T15:02:58.9999999Z"], zone=UTC)
@example(values=["2026-03-29 02:30:00.5", "2026-10-25T02:30:00,25"], zone=ZONES[1])
def test_a_time_read_once_per_second_is_the_time_read_alone(
    values: list[str], zone: ZoneInfo
) -> None:
    seconds = IsoSeconds(zone)
    auto = time_parser("auto", zone)
    iso = time_parser("iso8601", zone)
    for value in values * 2:  # the second round reads the kept seconds
        assert seconds(value) == parse_iso8601(value, zone), value
        assert iso.parse(value, NOW_MS) == parse_iso8601(value, zone), value
        assert auto.parse(value, NOW_MS) == parse_auto(value, zone, NOW_MS), value


def test_seconds_kept_are_bounded() -> None:
    seconds = IsoSeconds(UTC)
    for n in range(10_000):
        assert seconds(f"2026-12-03T{n // 3600 % 24:02}:{n // 60 % 60:02}:{n % 60:02}.5Z")
    assert len(seconds._seconds) <= 4096
