"""Lines become events with only the work the source's options require."""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.config import SourceConfig
from agent.encode import Encoder
from agent.encode.scan import occurrences
from agent.encode.window import ReadClock

NOW = 1_764_028_800.0  # 2025-11-25T00:00:00Z


def encoder(piece_bytes: int = 1 << 16, **options: object) -> Encoder:
    source = SourceConfig.model_validate({"name": "s", "include": ["/x/*.log"], **options})
    return Encoder(source, max_event_bytes=1_000_000, piece_bytes=piece_bytes, now=lambda: NOW)


def test_a_json_line_with_its_time_is_forwarded_byte_for_byte() -> None:
    line = b'{ "timestamp" : "2026-01-01T00:00:00Z",  "b": [1, 2] }'
    encoded = encoder().encode(line + b"\n", 0)
    assert encoded.pieces[0].data == line + b"\n"


def test_missing_time_and_static_fields_are_spliced_in() -> None:
    encoded = encoder(fields={"env": "prod"}).encode(b'{"a":1}\n{}\n', 0)
    events = [orjson.loads(x) for x in encoded.pieces[0].data.splitlines()]
    assert events == [
        {"a": 1, "timestamp": "2025-11-25T00:00:00.000Z", "env": "prod"},
        {"timestamp": "2025-11-25T00:00:00.000Z", "env": "prod"},
    ]


def test_pieces_are_cut_at_lines_and_carry_the_file_offset_after_their_last_line() -> None:
    lines = b"".join(b'{"timestamp":"2025-11-24T00:00:00Z","n":%d}\n' % n for n in range(100))
    encoded = encoder(piece_bytes=200).encode(lines, 1000)
    assert all(len(p.data) <= 200 for p in encoded.pieces)
    assert sum(p.events for p in encoded.pieces) == 100
    assert encoded.pieces[-1].end_offset == 1000 + len(lines)
    ends = [p.end_offset for p in encoded.pieces]
    assert ends == sorted(ends)
    assert b"".join(p.data for p in encoded.pieces) == lines


def test_bad_lines_are_rejected_with_their_offsets_and_blank_lines_skipped() -> None:
    block = b'{"timestamp":"2025-11-24T00:00:00Z"}\nnope\n\n[1]\n'
    encoded = encoder().encode(block, 0)
    assert [(r.reason, r.offset) for r in encoded.rejected] == [
        ("invalid_json", block.index(b"nope")),
        ("not_a_json_object", block.index(b"[1]")),
    ]
    assert encoded.blank == 1
    assert encoded.pieces[-1].end_offset == len(block)


def test_text_lines_are_wrapped_as_messages() -> None:
    encoded = encoder(format="text").encode(b'say "hi"\r\n', 0)
    assert orjson.loads(encoded.pieces[0].data) == {
        "message": 'say "hi"',
        "timestamp": "2025-11-25T00:00:00.000Z",
    }


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=5,
)
json_objects = st.dictionaries(st.sampled_from(["a", "env", "msg", "x"]), json_values).map(
    lambda d: {"timestamp": "2026-01-01T00:00:00Z", **d}
)


BROKEN_LINES = [
    b"",
    b"  ",
    b'{"timestamp":"2026-01-01T00:00:00Z"} {"timestamp":"2026-01-01T00:00:00Z"}',
    b'{"timestamp":"2026-01-01T00:00:00Z"}],[{"timestamp":"2026-01-01T00:00:00Z"}',
    b'{"timestamp":"2026-01-01T00:00:00Z","a":"open',
    b'","b":1}',
    b'{"timestamp":"2026-01-01T00:00:00Z","a":[',
    b"]}",
    b"[1]",
    b"7",
    b'{"timestamp":null}',
    b'{"timestamp":""}',
    b'{"timestamp":17}',
    b"{}",
]
lines_or_objects = st.one_of(
    json_objects.map(orjson.dumps), json_objects.map(orjson.dumps), st.sampled_from(BROKEN_LINES)
)


@settings(max_examples=300, deadline=None)
@given(
    lines=st.lists(lines_or_objects, min_size=1, max_size=30),
    fields=st.sampled_from([{}, {"env": "prod"}]),
    piece_bytes=st.sampled_from([60, 200, 1 << 16]),
)
def test_any_block_with_broken_lines_encodes_as_line_by_line(
    lines: list[bytes], fields: dict[str, object], piece_bytes: int
) -> None:
    """Blank lines, two objects on a line, half objects: the whole-block check refuses the
    block (or each piece) whenever line by line would decide differently."""
    block = b"".join(line + b"\n" for line in lines)
    enc = encoder(piece_bytes=piece_bytes, fields=fields)

    fast = enc.encode(block, 7)
    slow = enc._line_by_line(block, 7)

    assert [p.data for p in fast.pieces if p.events] == [p.data for p in slow.pieces if p.events]
    assert [list(p.offsets) for p in fast.pieces if p.events] == [
        list(p.offsets) for p in slow.pieces if p.events
    ]
    assert (fast.rejected, fast.blank) == (slow.rejected, slow.blank)


@settings(max_examples=200, deadline=None)
@given(
    objects=st.lists(json_objects, min_size=1, max_size=30),
    spaced=st.booleans(),
    fields=st.sampled_from([{}, {"env": "prod"}, {"host": "h1", "n": 2}]),
    piece_bytes=st.sampled_from([60, 200, 1 << 16]),
    start=st.integers(0, 10_000),
)
def test_whole_block_encoding_equals_line_by_line(
    objects: list[dict[str, object]],
    spaced: bool,
    fields: dict[str, object],
    piece_bytes: int,
    start: int,
) -> None:
    """The C-speed path is only an optimisation: same bytes, pieces, offsets as line by line."""
    block = b"".join(
        (orjson.dumps(o).replace(b'":', b'": ') if spaced else orjson.dumps(o)) + b"\n"
        for o in objects
    )
    enc = encoder(piece_bytes=piece_bytes, fields=fields)

    fast = enc.encode(block, start)
    slow = enc._line_by_line(block, start)

    assert [p.data for p in fast.pieces if p.events] == [p.data for p in slow.pieces if p.events]
    assert [list(p.offsets) for p in fast.pieces if p.events] == [
        list(p.offsets) for p in slow.pieces if p.events
    ]
    assert fast.pieces[-1].end_offset == slow.pieces[-1].end_offset == start + len(block)
    assert (fast.rejected, fast.blank) == (slow.rejected, slow.blank)


def test_the_whole_block_path_is_taken_for_clean_lines_and_not_for_a_broken_one() -> None:
    clean = b'{"timestamp":"2025-11-24T00:00:00Z","a":1}\n' * 3
    enc = encoder()
    assert enc._json_block(clean, 0) is not None
    assert enc._json_block(clean + b"{broken\n", 0) is None
    assert enc._json_block(clean + b'{"a":1}\n', 0) is None  # no time: spliced line by line
    assert enc._json_block(clean + b"\n", 0) is None  # a blank line
    assert enc._json_block(b'{"timestamp":"t"} {"timestamp":"u"}\n', 0) is None
    assert enc._json_block(clean + b'{"timestamp":""}\n', 0) is None  # empty: replaced
    assert enc._json_block(clean + b'{"timestamp":null}\n', 0) is None
    assert enc._json_block(clean + b'{"timestamp":"t","x":[1,}\n', 0) is None


text_lines = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\n"),
    max_size=40,
) | st.sampled_from(["", "  ", "\t", "\r", "caf\u00e9\r", "x\r\r", "a\\nb", "\\", "x\\", "\\\\n"])


@settings(max_examples=200, deadline=None)
@given(
    lines=st.lists(text_lines, min_size=1, max_size=30),
    fields=st.sampled_from([{}, {"env": "prod"}]),
    piece_bytes=st.sampled_from([60, 200, 1 << 16]),
    start=st.integers(0, 10_000),
)
def test_whole_block_text_encoding_equals_line_by_line(
    lines: list[str], fields: dict[str, object], piece_bytes: int, start: int
) -> None:
    block = "".join(line + "\n" for line in lines).encode()
    enc = encoder(piece_bytes=piece_bytes, fields=fields, format="text")

    fast = enc.encode(block, start)
    slow = enc._line_by_line(block, start)

    assert enc._text_block(block, start) is not None
    assert fast.blank == slow.blank
    assert [p.data for p in fast.pieces if p.events] == [p.data for p in slow.pieces if p.events]
    assert [list(p.offsets) for p in fast.pieces if p.events] == [
        list(p.offsets) for p in slow.pieces if p.events
    ]
    assert [p.end_offset for p in fast.pieces if p.events] == [
        p.end_offset for p in slow.pieces if p.events
    ]


def test_text_blocks_skip_blank_lines_and_crs_and_leave_bad_bytes_to_the_line_path() -> None:
    enc = encoder(format="text")
    encoded = enc._text_block(b"a\n\n  \t\nb\r\n", 10)
    assert encoded is not None
    assert encoded.blank == 2
    assert [orjson.loads(x)["message"] for x in encoded.pieces[0].data.splitlines()] == ["a", "b"]
    assert list(encoded.pieces[0].offsets) == [10, 17]
    assert encoded.pieces[-1].end_offset == 10 + len(b"a\n\n  \t\nb\r\n")
    assert enc._text_block(b"caf\xe9\n", 0) is None  # not UTF-8: replaced line by line


def test_events_outside_polaris_windows_are_refused_not_sent() -> None:
    """Polaris drops them silently; the agent dead-letters them with the reason instead."""
    enc = encoder()  # now is 2025-11-25; late window 30 days, early window 2000 days
    block = (
        b'{"timestamp":"2025-11-24T10:00:00Z","n":1}\n'
        b'{"timestamp":"2025-10-01T10:00:00Z","n":2}\n'
        b'{"timestamp":"2033-01-01T00:00:00Z","n":3}\n'
        b'{"timestamp":1700000000000,"n":4}\n'
        b'{"timestamp":"2025-11-25T00:00:00+02:00","n":5}\n'
    )

    encoded = enc.encode(block, 100)

    sent = [orjson.loads(x)["n"] for p in encoded.pieces for x in p.data.splitlines()]
    assert sent == [1, 5]
    assert [(r.reason, r.offset) for r in encoded.rejected] == [
        ("too_late", 100 + block.index(b'{"timestamp":"2025-10')),
        ("too_early", 100 + block.index(b'{"timestamp":"2033')),
        ("too_late", 100 + block.index(b'{"timestamp":1700')),  # epoch millis: Nov 2023
    ]


def test_a_block_well_inside_the_window_stays_on_the_whole_block_path() -> None:
    enc = encoder()
    inside = b'{"timestamp":"2025-11-20T00:00:00.000Z"}\n' * 3
    assert enc.encode(inside, 0).pieces[0].data == inside
    assert enc._json_block(inside, 0) is not None
    near_the_edge = b'{"timestamp":"2025-10-26T12:00:00Z"}\n'  # 29.5 days old
    assert enc._json_block(near_the_edge, 0) is None
    assert enc.encode(near_the_edge, 0).pieces[0].data == near_the_edge  # checked exactly


def test_well_inside_refuses_times_missing_null_or_of_both_kinds() -> None:
    """The block path hands `well_inside` every row's time as msgspec read it: None (null)
    and UNSET (absent) anywhere, alone or among datetimes, mean line by line."""
    clock = ReadClock(lambda: 1_764_028_800.0, "timestamp", 30 * 86400, 2000 * 86400)
    aware = datetime(2025, 11, 20, tzinfo=UTC)
    naive = datetime(2025, 11, 20)
    assert clock.well_inside([aware, aware])
    assert clock.well_inside([naive])
    for odd in (None, msgspec.UNSET):
        assert not clock.well_inside([odd])
        assert not clock.well_inside([odd, aware])
        assert not clock.well_inside([aware, odd])
        assert not clock.well_inside([aware, aware, odd, aware])
        assert not clock.well_inside([odd, odd])
    assert not clock.well_inside([aware, naive])
    assert not clock.well_inside([datetime(2025, 10, 1, tzinfo=UTC), aware])  # too late


@pytest.mark.parametrize("time", [b"null", b'""', None])
@pytest.mark.parametrize("position", [0, 1, 2])
def test_a_time_null_or_missing_on_any_line_leaves_the_whole_block_path(
    time: bytes | None, position: int
) -> None:
    good = b'{"timestamp":"2025-11-20T00:00:00.000Z","n":1}'
    odd = b'{"n":2}' if time is None else b'{"timestamp":' + time + b',"n":2}'
    lines = [good, good, good]
    lines[position] = odd
    block = b"".join(line + b"\n" for line in lines)
    enc = encoder()
    assert enc._json_blocks.probe(block) is None
    encoded = enc.encode(block, 0)
    sent = [orjson.loads(x) for p in encoded.pieces for x in p.data.splitlines()]
    assert [e["n"] for e in sent] == [2 if i == position else 1 for i in range(3)]
    assert all(e["timestamp"] for e in sent)


@given(st.binary(max_size=2000), st.sampled_from([b"\n", b"{", b"[", b"\x00"]))
@settings(max_examples=200, deadline=None)
def test_occurrences_is_count(data: bytes, byte: bytes) -> None:
    assert occurrences(data, byte) == data.count(byte)
