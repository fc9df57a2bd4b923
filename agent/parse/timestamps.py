"""Event times in, one normalized form out: epoch milliseconds, written as ISO 8601 UTC.

Polaris needs a valid ``__time`` for every row, and ``TIME_PARSE`` accepts ISO 8601, so every
event leaves with ``2026-11-26T01:02:03.456Z``. Internally a time is an ``int`` of epoch
milliseconds: exact, cheap to compare with the late/early windows, and free of time zones.

The formats people's logs actually carry get hand-written fast paths (``strptime`` costs
~10 µs a call, too much at 150 MB/s); a ``strptime`` pattern is the fallback for the rest.
A naive time (no offset in the text) is read in the source's configured zone.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any, Final

EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
MONTHS: Final = {
    m: i + 1
    for i, m in enumerate(
        ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
    )
}
NAMED_FORMATS: Final = frozenset(
    {"auto", "iso8601", "epoch_seconds", "epoch_millis", "apache", "syslog", "ctime", "nginx"}
)
"""Formats with a fast path; anything else containing ``%`` is a ``strptime`` pattern."""

_YEAR_AHEAD_TOLERANCE_MS: Final = 86_400_000
"""A yearless syslog time may lie up to a day ahead of now (skew, zones) and stay this year."""

_APACHE = re.compile(
    r"(\d{1,2})/([A-Z][a-z]{2})/(\d{4}):(\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?\s*([+-]\d{2}:?\d{2}|Z)?$"
)
_SYSLOG = re.compile(r"([A-Z][a-z]{2})\s+(\d{1,2})\s+(\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?$")
_CTIME = re.compile(
    r"(?:[A-Z][a-z]{2}\s+)?([A-Z][a-z]{2})\s+(\d{1,2})\s+(\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?\s+(\d{4})$"
)
_NGINX = re.compile(r"(\d{4})/(\d{2})/(\d{2}) (\d{2}):(\d{2}):(\d{2})$")
_LONG_FRACTION = re.compile(r"(\.\d{6})\d+")
_NUMBER = re.compile(r"[+-]?\d+(?:\.\d*)?$")
_ISO_PARTS = re.compile(
    r"([0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}:[0-9]{2})"
    r"(?:[.,]([0-9]{1,9}))?(Z|[+-][0-9]{2}(?::?[0-9]{2})?)?"
)
"""An ISO 8601 time in the shape logs write it: its second, its fraction, its offset."""
_SECONDS_KEPT: Final = 4096
_UNKNOWN: Final = -1 << 62


def iso_from_millis(millis: int) -> str:
    """``2026-11-26T01:02:03.456Z``: what ``TIME_PARSE`` accepts without a format."""
    return f"{_iso_second(millis // 1000)}.{millis % 1000:03d}Z"


@functools.lru_cache(maxsize=4096)
def _iso_second(second: int) -> str:
    """Log lines come in runs within the same second: format each second once."""
    moment = EPOCH + timedelta(seconds=second)
    return f"{moment:%Y-%m-%dT%H:%M:%S}"


def millis_from_datetime(moment: datetime, zone: tzinfo) -> int:
    """Epoch milliseconds; a naive `moment` is a wall-clock time in `zone`."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
    delta = moment - EPOCH
    return delta.days * 86_400_000 + delta.seconds * 1000 + delta.microseconds // 1000


def parse_iso8601(text: str, zone: tzinfo) -> int | None:
    """``2024-05-01T12:00:00Z``, offsets, a space separator, any number of fraction digits.

    Not with a NUL: CPython's ``fromisoformat`` stops reading at one, and would accept
    ``"2024-05-01T12:00:00Z\\u0000junk"``, which Polaris cannot parse."""
    if "\x00" in text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        # 3.11 refuses lowercase 'z' and some unusual shapes; one clean-up, then give up.
        cleaned = _LONG_FRACTION.sub(r"\1", text.strip()).replace("z", "Z")
        if cleaned == text:
            return None
        try:
            moment = datetime.fromisoformat(cleaned)
        except ValueError:
            return None
    return millis_from_datetime(moment, zone)


class IsoSeconds:
    """`parse_iso8601` with each distinct second read once (issue 13): log lines carry a new
    fraction each but share their second with their neighbours, and `fromisoformat` with a
    datetime per line costs more than the rest of a parsed line's time. A time in the common
    shape (`_ISO_PARTS`: ASCII digits, ``T`` or a space, up to 9 fraction digits, ``Z`` or an
    offset) is its second's milliseconds, read by `parse_iso8601` once per second and offset
    and kept (at most `_SECONDS_KEPT`), plus the fraction's first three digits, which is what
    `parse_iso8601` makes of it (``fromisoformat`` keeps 6 digits of the fraction, truncated,
    and `millis_from_datetime` truncates to milliseconds; the offset of a zone cannot change
    within a second); any other text is read by `parse_iso8601` itself
    (tests/parse/test_parse_times.py compares both on arbitrary text)."""

    __slots__ = ("_seconds", "zone")

    def __init__(self, zone: tzinfo) -> None:
        self.zone = zone
        self._seconds: dict[str, int | None] = {}

    def __call__(self, text: str) -> int | None:
        parts = _ISO_PARTS.fullmatch(text)
        return parse_iso8601(text, self.zone) if parts is None else self.read(parts)

    def read(self, parts: re.Match[str]) -> int | None:
        """The time of a text `_ISO_PARTS` matched in full."""
        second, fraction, offset = parts.groups()
        key = second if offset is None else second + offset
        base = self._seconds.get(key, _UNKNOWN)
        if base == _UNKNOWN:
            if len(self._seconds) >= _SECONDS_KEPT:
                self._seconds.clear()
            base = self._seconds[key] = parse_iso8601(key, self.zone)
        if base is None or fraction is None:
            return base
        return base + int(fraction[:3].ljust(3, "0"))


def parse_epoch(value: Any, unit_millis: float | None) -> int | None:
    """Numbers or numeric strings; `unit_millis` = ms per unit, or None to guess by magnitude.

    Guessing: below 1e11 are seconds (until the year 5138), below 1e14 milliseconds, below
    1e17 microseconds, beyond that nanoseconds — the four resolutions logs actually use.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        text = value.strip()
        if not _NUMBER.match(text):
            return None
        number: float = float(text) if "." in text else int(text)
    elif isinstance(value, int | float):
        number = value
    else:
        return None
    if number != number or number in (float("inf"), float("-inf")):
        return None
    if unit_millis is None:
        size = abs(number)
        unit_millis = (
            1000.0 if size < 1e11 else 1.0 if size < 1e14 else 1e-3 if size < 1e17 else 1e-6
        )
    if isinstance(number, float):
        scaled = number * unit_millis
        if scaled in (float("inf"), float("-inf")):  # 1e308 seconds: OverflowError in int()
            return None
        millis = int(scaled)
    else:
        millis = _int_millis(number, unit_millis)
    return millis if _in_range(millis) else None


def _int_millis(number: int, unit_millis: float) -> int:
    if unit_millis >= 1:
        return number * int(unit_millis)
    return number // round(1 / unit_millis)


def _in_range(millis: int) -> bool:
    # datetime's range, so that iso_from_millis can always write it.
    return -62_135_596_800_000 <= millis <= 253_402_300_799_999


def written(millis: int) -> str:
    """`iso_from_millis` for text meant for people (a dead letter's detail): a time a year 1
    or 9999 line writes with an offset (``0001-01-01T00:00:00+01:00``) lies outside what
    datetime can write, and is given in milliseconds instead of raising OverflowError."""
    return iso_from_millis(millis) if _in_range(millis) else f"{millis} ms after 1970"


def _fraction_millis(digits: str | None) -> int:
    return int((digits + "00")[:3]) if digits else 0


_MONTH_DAYS: Final = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def _days_from_civil(year: int, month: int, day: int) -> int:
    """Days since 1970-01-01 (H. Hinnant's algorithm): no datetime objects on the hot path."""
    year -= month <= 2
    era = (year if year >= 0 else year - 399) // 400
    year_of_era = year - era * 400
    day_of_year = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    day_of_era = year_of_era * 365 + year_of_era // 4 - year_of_era // 100 + day_of_year
    return era * 146097 + day_of_era - 719468


def _valid_day(year: int, month: int, day: int) -> bool:
    if month == 2 and day == 29:
        return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
    return 1 <= day <= _MONTH_DAYS[month - 1]


def _local_millis(
    year: int, month: int, day: int, hms: tuple[str, str, str], fraction: str | None
) -> int | None:
    """Epoch milliseconds of a wall-clock time read as UTC; None for an impossible date."""
    hh, mm, ss = int(hms[0]), int(hms[1]), int(hms[2])
    if not (1 <= year <= 9999 and _valid_day(year, month, day)) or hh > 23 or mm > 59 or ss > 60:
        return None
    seconds = _days_from_civil(year, month, day) * 86400 + hh * 3600 + mm * 60 + min(ss, 59)
    return seconds * 1000 + _fraction_millis(fraction)


def _zoned(local: int | None, offset_minutes: int | None, zone: tzinfo) -> int | None:
    """A wall-clock time (as if UTC) placed by its written offset, or else by `zone`."""
    if local is None:
        return None
    if offset_minutes is not None:
        return local - offset_minutes * 60_000
    if zone is UTC or getattr(zone, "key", None) == "UTC":
        return local
    moment = (EPOCH + timedelta(milliseconds=local)).replace(tzinfo=None)
    return millis_from_datetime(moment, zone)


def _offset(text: str | None) -> int | None:
    """Minutes east of UTC from ``+0100``, ``-07:00`` or ``Z``."""
    if not text:
        return None
    if text == "Z":
        return 0
    digits = text[1:].replace(":", "")
    minutes = int(digits[:2]) * 60 + int(digits[2:])
    return -minutes if text[0] == "-" else minutes


def parse_apache(text: str, zone: tzinfo) -> int | None:
    """``10/Oct/2000:13:55:36 -0700`` (the common/combined log format's ``%t``)."""
    match = _APACHE.match(text.strip().strip("[]").strip())
    if match is None:
        return None
    day, mon, year, hh, mm, ss, fraction, offset = match.groups()
    month = MONTHS.get(mon)
    if month is None:
        return None
    return _zoned(
        _local_millis(int(year), month, int(day), (hh, mm, ss), fraction), _offset(offset), zone
    )


def parse_ctime(text: str, zone: tzinfo) -> int | None:
    """``Sun Jun 09 07:57:47 2013``, optionally with microseconds (Apache's error log)."""
    match = _CTIME.match(text.strip().strip("[]").strip())
    if match is None:
        return None
    mon, day, hh, mm, ss, fraction, year = match.groups()
    month = MONTHS.get(mon)
    if month is None:
        return None
    return _zoned(_local_millis(int(year), month, int(day), (hh, mm, ss), fraction), None, zone)


def parse_nginx(text: str, zone: tzinfo) -> int | None:
    """``2015/01/21 10:56:10`` (nginx's error log)."""
    match = _NGINX.match(text.strip())
    if match is None:
        return None
    year, month, day, hh, mm, ss = match.groups()
    if not 1 <= int(month) <= 12:
        return None
    return _zoned(_local_millis(int(year), int(month), int(day), (hh, mm, ss), None), None, zone)


def parse_syslog(text: str, zone: tzinfo, now_millis: int) -> int | None:
    """``Oct 11 22:14:15`` (RFC 3164): the year is the one that puts the time nearest before now.

    The current year, unless that lands more than a day in the future (a December line read
    in January), then the year before. Feb 29 in a non-leap year falls back a year too.
    """
    match = _SYSLOG.match(text.strip())
    if match is None:
        return None
    mon, day, hh, mm, ss, fraction = match.groups()
    month = MONTHS.get(mon)
    if month is None:
        return None
    year = (EPOCH + timedelta(milliseconds=now_millis)).year
    for candidate in (year, year - 1, year - 2, year - 3, year - 4):
        local = _local_millis(candidate, month, int(day), (hh, mm, ss), fraction)
        millis = _zoned(local, None, zone)  # None: Feb 29 outside a leap year
        if millis is not None and millis <= now_millis + _YEAR_AHEAD_TOLERANCE_MS:
            return millis
    return None


def parse_strptime(text: str, pattern: str, zone: tzinfo) -> int | None:
    """Any ``strptime`` pattern; ``%z`` in it makes the time aware, otherwise `zone` applies."""
    try:
        moment = datetime.strptime(text.strip(), pattern)
    except ValueError:
        return None
    return millis_from_datetime(moment, zone)


def parse_auto(value: Any, zone: tzinfo, now_millis: int) -> int | None:
    """Numbers as epochs (resolution by magnitude), then every textual format above."""
    if not isinstance(value, str):
        return parse_epoch(value, None)
    text = value.strip()
    if not text:
        return None
    if text[0].isdigit() or text[0] in "+-":
        if "/" in text[1:3]:
            return parse_apache(text, zone)
        if text[4:5] == "/":
            return parse_nginx(text, zone)
        found = parse_epoch(text, None)
        return parse_iso8601(text, zone) if found is None else found
    if text[0] == "[":
        found = parse_apache(text, zone)
        return parse_ctime(text, zone) if found is None else found
    found = parse_syslog(text, zone, now_millis)
    return parse_ctime(text, zone) if found is None else found


@dataclass(frozen=True, slots=True)
class TimeParser:
    """One source's way of reading its event time: a format and a zone for naive times.

    ``parse(value, now_millis)`` returns epoch milliseconds, or None when the value is not a
    time in this format. `now_millis` is only consulted for yearless (syslog) times.
    """

    format: str
    zone: tzinfo
    _parse: Callable[[Any, int], int | None]

    def parse(self, value: Any, now_millis: int) -> int | None:
        if value is None:
            return None
        return self._parse(value, now_millis)


def time_parser(format: str, zone: tzinfo) -> TimeParser:
    """The parser for `format` (a name in `NAMED_FORMATS` or a ``strptime`` pattern)."""
    return TimeParser(format, zone, _parse_function(format, zone))


def _text_only(
    parse: Callable[[str, tzinfo], int | None], zone: tzinfo
) -> Callable[[Any, int], int | None]:
    def run(value: Any, _now: int) -> int | None:
        return parse(value, zone) if isinstance(value, str) else None

    return run


def _parse_function(format: str, zone: tzinfo) -> Callable[[Any, int], int | None]:
    if format == "auto":
        iso = IsoSeconds(zone)
        whole = _ISO_PARTS.fullmatch

        def auto(value: Any, now: int) -> int | None:
            # what parse_auto makes of an ISO time in the common shape: parse_iso8601's
            parts = whole(value) if type(value) is str else None
            return parse_auto(value, zone, now) if parts is None else iso.read(parts)

        return auto
    if format == "iso8601":
        iso = IsoSeconds(zone)
        return lambda value, _now: iso(value) if isinstance(value, str) else None
    if format == "epoch_seconds":
        return lambda value, _now: parse_epoch(value, 1000.0)
    if format == "epoch_millis":
        return lambda value, _now: parse_epoch(value, 1.0)
    if format == "syslog":
        return lambda value, now: parse_syslog(value, zone, now) if isinstance(value, str) else None
    simple = {
        "apache": parse_apache,
        "ctime": parse_ctime,
        "nginx": parse_nginx,
    }
    if format in simple:
        return _text_only(simple[format], zone)
    return lambda value, _now: (
        parse_strptime(value, format, zone) if isinstance(value, str) else None
    )


def check_strptime(pattern: str) -> None:
    """Raise ValueError unless `pattern` round-trips a sample time through strftime/strptime."""
    if "%" not in pattern:
        raise ValueError(
            f"unknown time format {pattern!r}; use one of {', '.join(sorted(NAMED_FORMATS))}"
            " or a strptime pattern such as '%Y-%m-%d %H:%M:%S'"
        )
    sample = datetime(2001, 2, 3, 4, 5, 6, 789000, tzinfo=UTC)
    try:
        datetime.strptime(sample.strftime(pattern), pattern)
    except ValueError as exc:
        raise ValueError(f"invalid strptime pattern {pattern!r}: {exc}") from None
