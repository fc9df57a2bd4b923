"""The event's own time under a common name (issue 14), on the fast path (issue 13).

With ``time_field`` not set, a JSON line without ``timestamp`` gets its own time from the first
of ``@timestamp``, ``time``, ``ts``, ``event_time``, ``datetime`` that holds one (an RFC 3339
string copied as written, an epoch number as ISO 8601 UTC), and the read time only when none
does, counted as ``time_missing``. Whole blocks of such lines never take a Python step per
line, and they come out exactly as the line path writes them (property tests below).
"""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from agent.config import SourceConfig
from agent.encode import Encoded, Encoder
from agent.encode.times import describe, describe_files

NOW = 1_764_028_800.0  # 2025-11-25T00:00:00Z
READ_TIME = "2025-11-25T00:00:00.000Z"


def encoder(**options: object) -> Encoder:
    source = SourceConfig.model_validate({"name": "s", "include": ["/x/*.log"], **options})
    return Encoder(source, max_event_bytes=1_000_000, piece_bytes=256, now=lambda: NOW)


def events(encoded: Encoded) -> list[dict[str, object]]:
    return [json.loads(line) for p in encoded.pieces for line in p.data.splitlines()]


def test_an_iso_time_under_another_name_is_copied_into_timestamp_as_written() -> None:
    line = b'{"@timestamp":"2025-11-24T10:00:00.123+01:00","msg":"hi"}\n'
    enc = encoder()
    encoded = enc.encode(line * 3, 0)
    assert enc._json_block(line * 3, 0) is not None  # the block path vouched for it
    assert (
        events(encoded)
        == [
            {
                "@timestamp": "2025-11-24T10:00:00.123+01:00",
                "msg": "hi",
                "timestamp": "2025-11-24T10:00:00.123+01:00",
            }
        ]
        * 3
    )
    assert enc.take_counts() == {}


def test_epoch_seconds_and_millis_become_iso_utc() -> None:
    block = b'{"ts":1764028800123,"a":1}\n{"ts":1764028801456,"a":2}\n'
    assert [e["timestamp"] for e in events(encoder().encode(block, 0))] == [
        "2025-11-25T00:00:00.123Z",
        "2025-11-25T00:00:01.456Z",
    ]
    seconds = b'{"time":1764028800.5}\n{"time":1764028800}\n'
    assert [e["timestamp"] for e in events(encoder().encode(seconds, 0))] == [
        "2025-11-25T00:00:00.500Z",
        "2025-11-25T00:00:00.000Z",
    ]


def test_the_first_name_holding_a_time_wins_and_other_values_are_not_times() -> None:
    block = (
        b'{"time":0.35,"event_time":"2025-11-24T01:00:00Z"}\n'  # a duration, not a time
        b'{"time":"soon","datetime":"2025-11-24T02:00:00Z"}\n'
        b'{"@timestamp":"2025-11-24T03:00:00Z","ts":1764028800123}\n'
    )
    assert [e["timestamp"] for e in events(encoder().encode(block, 0))] == [
        "2025-11-24T01:00:00Z",
        "2025-11-24T02:00:00Z",
        "2025-11-24T03:00:00Z",
    ]


def test_no_time_anywhere_gets_the_read_time_in_one_splice_and_is_counted() -> None:
    block = b'{"a":1}\n{"b":"x"}\n' * 50
    enc = encoder(fields={"env": "prod"})
    assert enc._json_block(block, 0) is not None
    encoded = enc.encode(block, 0)
    assert events(encoded)[:2] == [
        {"a": 1, "env": "prod", "timestamp": READ_TIME},
        {"b": "x", "env": "prod", "timestamp": READ_TIME},
    ]
    assert enc.take_counts() == {"time_missing": 100}


def test_a_configured_time_field_is_the_only_one_looked_at() -> None:
    line = b'{"@timestamp":"2025-11-24T10:00:00Z"}\n'
    (sent,) = events(encoder(time_field="timestamp").encode(line, 0))
    assert sent["timestamp"] == READ_TIME
    (sent,) = events(encoder(time_field="event_time").encode(line, 0))
    assert sent["event_time"] == READ_TIME


def test_an_own_time_outside_the_window_is_dead_lettered() -> None:
    encoded = encoder().encode(b'{"ts":1000000000000}\n', 0)  # 2001
    assert [r.reason for r in encoded.rejected] == ["too_late"]


def test_check_says_which_field_the_lines_carry() -> None:
    source = SourceConfig.model_validate({"name": "s", "include": ["/x/*.log"]})
    said = describe(source, [b'{"event_time":"2025-11-24T10:00:00Z"}', b'{"a":1}'])
    assert "event_time in 1 of 2" in said
    assert "read time in 1 of 2" in said
    configured = SourceConfig.model_validate(
        {"name": "s", "include": ["/x/*.log"], "time_field": "ts"}
    )
    assert describe(configured) == "'ts' (set); the read time when a line has none"


NAMES = ["@timestamp", "time", "ts", "event_time", "datetime", "timestamp"]
VALUES = [
    b'"2025-11-24T00:00:00Z"',
    b'"2025-11-24T00:00:00.123456+02:00"',
    b'"2025-11-24 00:00:00Z"',
    b'"2025-11-24T00:00:00"',
    b'"2025-10-26T12:00:00Z"',  # near the late edge
    b'"2033-01-01T00:00:00Z"',  # too early
    b'"2025-11-24T00:00:00\\u005a"',
    b'"Nov 24 10:00:00"',
    b'"1763942400"',
    b"1763942400",
    b"1763942400.25",
    b"1763942400123",
    b"1763942400123456",
    b"1761480000",  # near the late edge, in seconds
    b"0.35",
    b"1e400",
    b"-1",
    b"true",
    b"null",
    b"{}",
    b'""',
]
members = st.lists(
    st.tuples(st.sampled_from([*NAMES, "a"]), st.sampled_from(VALUES)), max_size=3
).map(lambda pairs: b",".join(b'"%s":%s' % (k.encode(), v) for k, v in dict(pairs).items()))
uniform = st.tuples(st.sampled_from(NAMES[:5]), st.sampled_from(VALUES)).map(
    lambda nv: b'"%s":%s,"a":1' % (nv[0].encode(), nv[1])
)
lines = st.one_of(members, uniform).map(lambda body: b"{" + body + b"}")
OPTIONS = st.sampled_from([{}, {"fields": {"env": "prod"}}, {"time_field": "timestamp"}])


def outcome(encoded: Encoded) -> tuple[object, ...]:
    return (
        [(p.data, list(p.offsets)) for p in encoded.pieces if p.events],
        encoded.pieces[-1].end_offset,
        encoded.rejected,
        encoded.blank,
    )


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    line=lines,
    repeat=st.integers(1, 6),
    others=st.lists(lines, max_size=3),
    options=OPTIONS,
)
def test_the_block_path_writes_what_the_line_path_writes(
    line: bytes, repeat: int, others: list[bytes], options: dict[str, object]
) -> None:
    block = b"".join(x + b"\n" for x in [line] * repeat + others)
    fast_encoder, line_encoder = encoder(**options), encoder(**options)
    taken = fast_encoder._json_block(block, 5)
    event("fast path" if taken is not None else "line path")
    fast = fast_encoder.encode(block, 5)
    slow = line_encoder._line_by_line(block, 5)
    assert outcome(fast) == outcome(slow)
    assert fast_encoder.take_counts() == line_encoder.take_counts()
    for sent in events(fast):
        assert isinstance(sent["timestamp"], str | int | float)


def test_check_reads_the_first_lines_of_the_first_file(tmp_path: Path) -> None:
    (tmp_path / "a.log").write_bytes(b'{"@timestamp":"2025-11-24T10:00:00Z"}\n{"half')
    source = SourceConfig.model_validate({"name": "s", "include": [str(tmp_path / "*.log")]})
    assert describe_files(source) is not None
    assert str(describe_files(source)).endswith("the first lines: @timestamp in 1 of 1")


WRITTEN = st.sampled_from(["%.3f", "%.1f", "%.0f", "%.6f", "%.9f", "%r", "%.4e"])
"""How a log writes its epoch seconds: milliseconds, fewer or more digits, none, an exponent."""


@settings(max_examples=300, derandomize=True, deadline=None)
@given(
    st.lists(st.floats(1_762_300_000, 1_764_028_800), min_size=1, max_size=12),
    WRITTEN,
    st.booleans(),
)
def test_a_block_of_epoch_seconds_learnt_is_written_as_the_line_path_writes_it(
    seconds: list[float], written: str, in_order: bool
) -> None:
    """The second block of a file of float epoch seconds takes the shaped path (one type,
    one unit; in order or not) and writes each line's time as the line path does."""
    if in_order:
        seconds.sort()
    block = b"".join(
        b'{"time":%s,"n":%d}\n' % ((written % s).encode(), n) for n, s in enumerate(seconds)
    )
    fast_encoder, line_encoder = encoder(), encoder()
    fast_encoder.encode(block, 0)  # learns the block's shape
    fast_encoder.take_counts()
    event("shaped" if fast_encoder._json_blocks.shape is not None else "not learnt")
    fast = fast_encoder.encode(block, 5)
    slow = line_encoder._line_by_line(block, 5)
    assert outcome(fast) == outcome(slow)
    assert fast_encoder.take_counts() == line_encoder.take_counts()
