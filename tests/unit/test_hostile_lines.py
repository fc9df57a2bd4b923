"""Log lines written by someone who wants log shipping to stop, or who just made a mistake.

No line may raise out of an encoder (one exception stops its file for good: the checkpoint
stays before the line and every restart dies on it again), no event may leave with a time
Polaris cannot place, and the whole-block fast path must decide every line exactly as the
line-by-line path does.
"""

from __future__ import annotations

import json

import orjson
import pytest

from agent.config import SourceConfig
from agent.encode import Encoded, Encoder
from agent.encode.parsed import ParsedEncoder
from agent.encode.scan import MAX_NESTING_DEPTH, shallow

NOW = 1_764_028_800.0  # 2025-11-25T00:00:00Z
READ_TIME = "2025-11-25T00:00:00.000Z"
GOOD = b'{"timestamp":"2025-11-24T00:00:00Z","n":1}'


def encoder(**options: object) -> Encoder:
    source = SourceConfig.model_validate({"name": "s", "include": ["/x/*.log"], **options})
    return Encoder(source, max_event_bytes=1_000_000, piece_bytes=1 << 16, now=lambda: NOW)


def parsed_encoder(**options: object) -> ParsedEncoder:
    source = SourceConfig.model_validate(
        {"name": "s", "include": ["/x/*.log"], "parser": {"type": "json"}, **options}
    )
    return ParsedEncoder(
        source,
        path="/x/a.log",
        identity=lambda: "f" * 16,
        max_event_bytes=1_000_000,
        piece_bytes=1 << 16,
        now=lambda: NOW,
    )


def events(encoded: Encoded) -> list[dict[str, object]]:
    return [orjson.loads(x) for p in encoded.pieces for x in p.data.splitlines()]


def nested(depth: int, time: bytes = b'"2025-11-24T00:00:00Z"') -> bytes:
    """An object whose value "a" is `depth` - 1 arrays deep: `depth` levels in all."""
    inner = depth - 1
    return b'{"timestamp":' + time + b',"a":' + b"[" * inner + b"]" * inner + b"}"


# --------------------------------------------------------------------------- nesting


@pytest.mark.parametrize("depth", [MAX_NESTING_DEPTH + 1, 300, 1_025, 1_101, 100_000])
@pytest.mark.parametrize("time", [b'"2025-11-24T00:00:00Z"', b"null"])
def test_a_too_deeply_nested_line_is_dead_lettered_and_its_neighbours_ship(
    depth: int, time: bytes
) -> None:
    """1,100 nested ``[`` raised RecursionError (msgspec, in the whole-block check); 300
    with a null time raised in orjson.dumps (its limit is 255). Both stopped the file."""
    deep = nested(depth, time)
    block = GOOD + b"\n" + deep + b"\n" + GOOD + b"\n"

    encoded = encoder().encode(block, 10)

    assert [(r.reason, r.offset) for r in encoded.rejected] == [
        ("too_deeply_nested", 10 + len(GOOD) + 1)
    ]
    assert encoded.rejected[0].data == deep  # the dead letter keeps the whole line
    assert [e["n"] for e in events(encoded)] == [1, 1]
    assert encoded.pieces[-1].end_offset == 10 + len(block)


@pytest.mark.parametrize("time", [b'"2025-11-24T00:00:00Z"', b"null"])
def test_nesting_up_to_the_limit_is_forwarded(time: bytes) -> None:
    line = nested(MAX_NESTING_DEPTH, time)
    encoded = encoder().encode(line + b"\n", 0)
    assert encoded.rejected == []
    assert len(events(encoded)) == 1


def many(line: bytes, count: int = 300) -> bytes:
    return (line + b"\n") * count


FLAT = b'{"timestamp":"2025-11-24T00:00:00Z","n":1}'
NESTED = b'{"timestamp":"2025-11-24T00:00:00Z","n":1,"a":{"b":[{"c":1}]}}'


@pytest.mark.parametrize("neighbour", [FLAT, NESTED])
@pytest.mark.parametrize("fields", [{}, {"env": "prod"}])
def test_one_deep_line_among_many_is_dead_lettered_by_the_whole_block_path_too(
    neighbour: bytes, fields: dict[str, object]
) -> None:
    """The block path checks nesting on the rows msgspec read: with flat neighbours by the
    count of all openers less one per other line, with nested ones line by line; either
    way one line past the limit sends the block line by line."""
    deep = nested(MAX_NESTING_DEPTH + 1)
    block = many(neighbour) + deep + b"\n" + many(neighbour)
    enc = encoder(fields=fields)

    assert enc._json_block(block, 0) is None
    encoded = enc.encode(block, 0)

    assert [r.reason for r in encoded.rejected] == ["too_deeply_nested"]
    assert sum(p.events for p in encoded.pieces) == 600


@pytest.mark.parametrize("neighbour", [FLAT, NESTED])
def test_lines_up_to_the_limit_among_many_stay_on_the_whole_block_path(
    neighbour: bytes,
) -> None:
    """Openers past the limit in all but never on one line: nothing for the line path."""
    block = many(neighbour) + nested(MAX_NESTING_DEPTH) + b"\n" + many(neighbour)
    enc = encoder()

    fast = enc._json_block(block, 0)

    assert fast is not None
    assert [p.data for p in fast.pieces] == [p.data for p in enc._line_by_line(block, 0).pieces]


def test_shallow_counts_openers_per_line_when_the_total_cannot_tell() -> None:
    flat = many(FLAT)
    assert shallow(flat, 300)
    assert shallow(flat + nested(MAX_NESTING_DEPTH) + b"\n", 301)
    assert not shallow(flat + nested(MAX_NESTING_DEPTH + 1) + b"\n", 301)
    assert shallow(many(NESTED), 300)  # 4 openers a line, 1,200 in all
    wide = b'{"timestamp":"2025-11-24T00:00:00Z"' + b',"a":[1]' * MAX_NESTING_DEPTH + b"}\n"
    assert not shallow(many(NESTED) + wide, 301)  # a bound on the count, not the depth


def test_brackets_inside_strings_are_not_nesting() -> None:
    line = b'{"timestamp":"2025-11-24T00:00:00Z","m":"' + b"[{" * 5_000 + b'"}'
    encoded = encoder().encode(line + b"\n", 0)
    assert encoded.rejected == []
    assert encoded.pieces[0].data == line + b"\n"


@pytest.mark.parametrize("depth", [MAX_NESTING_DEPTH + 1, 300, 1_101])
def test_a_too_deeply_nested_line_is_dead_lettered_by_the_json_parser(depth: int) -> None:
    """The parsing path re-serializes every event: orjson.dumps raised past depth 255."""
    deep = nested(depth)
    block = GOOD + b"\n" + deep + b"\n" + GOOD + b"\n"

    encoded = parsed_encoder().encode(block, 0)

    assert [(r.reason, r.offset) for r in encoded.rejected] == [
        ("too_deeply_nested", len(GOOD) + 1)
    ]
    assert [e["n"] for e in events(encoded)] == [1, 1]


# --------------------------------------------------------------------------- time values


WRONG_TIMES = [
    (b'{"a":1}', {"a": 1}),
    (b"true", True),
    (b"false", False),
    (b'"garbage"', "garbage"),
    (b'"2025-11-24 garbage"', "2025-11-24 garbage"),
    (b'"2025-11-24T00:00:00Z\\u0000"', "2025-11-24T00:00:00Z\x00"),
    (b'["2025-11-24T00:00:00Z"]', ["2025-11-24T00:00:00Z"]),
    (b'"2025-13-45T00:00:00Z"', "2025-13-45T00:00:00Z"),
    (b"1e300", 1e300),
]


@pytest.mark.parametrize(("raw", "value"), WRONG_TIMES)
@pytest.mark.parametrize("fields", [{}, {"env": "prod"}])
def test_a_time_polaris_cannot_parse_is_replaced_by_the_read_time_and_kept(
    raw: bytes, value: object, fields: dict[str, object]
) -> None:
    """Polaris drops a row whose __time is null or unparseable: the event leaves with the
    read time instead, its own value kept under ``timestamp_raw``, and it is counted."""
    line = b'{"timestamp":' + raw + b',"n":7}'
    block = (GOOD + b"\n") * 3 + line + b"\n"
    enc = encoder(fields=fields)

    encoded = enc.encode(block, 0)

    assert encoded.rejected == []
    last = events(encoded)[-1]
    assert last["timestamp"] == READ_TIME
    assert last["timestamp_raw"] == value
    assert last["n"] == 7
    assert enc.take_counts() == {"time_unparsed": 1}
    assert enc.take_counts() == {}


def test_a_bad_time_whose_raw_field_is_taken_is_dead_lettered_not_overwritten() -> None:
    line = b'{"timestamp":"garbage","timestamp_raw":"mine"}'
    encoded = encoder().encode(line + b"\n", 0)
    assert [r.reason for r in encoded.rejected] == ["invalid_time"]
    assert events(encoded) == []


def test_times_the_agent_can_place_are_forwarded_untouched() -> None:
    lines = [
        b'{"timestamp":"2025-11-24T00:00:00Z"}',
        b'{"timestamp":"2025-11-24T01:00:00.123456+02:00"}',
        b'{"timestamp":"2025-11-24 00:00:00"}',
        b'{"timestamp":1763942400}',
        b'{"timestamp":"1763942400123"}',
    ]
    block = b"".join(line + b"\n" for line in lines)
    enc = encoder()
    encoded = enc.encode(block, 0)
    assert encoded.rejected == []
    assert encoded.pieces[0].data == block
    assert enc.take_counts() == {}


def test_a_parsed_source_keeps_an_unparseable_time_too() -> None:
    block = b'{"timestamp":{"a":1},"n":1}\n{"timestamp":"garbage","n":2}\n'
    enc = parsed_encoder()
    got = events(enc.encode(block, 0))
    assert [(e["timestamp"], e["timestamp_raw"]) for e in got] == [
        (READ_TIME, {"a": 1}),
        (READ_TIME, "garbage"),
    ]
    assert enc.take_counts()["time_unparsed"] == 2


# --------------------------------------------------------------------------- both paths


DISAGREEING_BLOCKS = {
    "invalid UTF-8 in a value": [GOOD, b'{"timestamp":"2025-11-24T00:00:00Z","a":"\xff"}'],
    "invalid UTF-8 in a key": [GOOD, b'{"timestamp":"2025-11-24T00:00:00Z","\xc0\xaf":1}'],
    "UTF-8 surrogate": [GOOD, b'{"timestamp":"2025-11-24T00:00:00Z","a":"\xed\xa0\x80"}'],
    "brackets balanced across lines": [
        b'{"timestamp":"2025-11-24T00:00:00Z","x":[[1',
        b"2]]}",
        b'{"timestamp":"2025-11-24T00:00:00Z"}],[{"timestamp":"2025-11-24T00:00:00Z"}',
    ],
    "spaced row break": [
        b'{"timestamp":"2025-11-24T00:00:00Z","x":[ [1',
        b"2 ] ] }",
        b'{"timestamp":"2025-11-24T00:00:00Z"} ] , [ {"timestamp":"2025-11-24T00:00:00Z"}',
    ],
    "two objects on a line": [
        b'{"timestamp":"2025-11-24T00:00:00Z"},{"timestamp":"2025-11-24T00:00:00Z"}',
        GOOD,
    ],
    "a time that only looks inside the window": [GOOD, b'{"timestamp":"2025-11-24xyz"}'],
}


@pytest.mark.parametrize("name", list(DISAGREEING_BLOCKS))
@pytest.mark.parametrize("fields", [{}, {"env": "prod"}])
def test_the_fast_path_refuses_what_the_line_path_would_decide_otherwise(
    name: str, fields: dict[str, object]
) -> None:
    block = b"".join(line + b"\n" for line in DISAGREEING_BLOCKS[name])
    enc = encoder(fields=fields)

    assert enc._json_block(block, 0) is None  # the path taken: line by line
    fast, slow = enc.encode(block, 0), enc._line_by_line(block, 0)

    assert [p.data for p in fast.pieces] == [p.data for p in slow.pieces]
    assert fast.rejected == slow.rejected
    assert fast.rejected or name == "a time that only looks inside the window"


@pytest.mark.parametrize(
    "line",
    [
        b'{"timestamp":"2025-11-24T00:00:00Z","a":1e400}',
        b'{"timestamp":"2025-11-24T00:00:00Z","a":-' + b"9" * 400 + b"}",
        b'{"a":[1e400]}',
    ],
)
@pytest.mark.parametrize("fields", [{}, {"env": "prod"}])
def test_a_number_beyond_a_double_is_forwarded_by_both_paths(
    line: bytes, fields: dict[str, object]
) -> None:
    """orjson refuses ``1e400``, msgspec's whole-block check skips it unconverted (and
    Polaris reads it as infinity): the line path decides it as the block path does."""
    block = GOOD + b"\n" + line + b"\n"
    enc = encoder(fields=fields)
    fast, slow = enc.encode(block, 0), enc._line_by_line(block, 0)
    assert fast.rejected == slow.rejected == []
    assert [p.data for p in fast.pieces if p.events] == [p.data for p in slow.pieces if p.events]
    sent = [json.loads(x) for p in slow.pieces for x in p.data.splitlines()]
    assert len(sent) == 2
    assert all(e["timestamp"] for e in sent) and all(
        e.get("env") == fields.get("env") for e in sent
    )


def test_a_number_beyond_a_double_with_a_time_to_rewrite_is_dead_lettered() -> None:
    """No parser at hand reads the line, so none can rewrite its null time: kept whole."""
    line = b'{"timestamp":null,"a":1e400}'
    encoded = encoder().encode(line + b"\n", 0)
    assert [r.reason for r in encoded.rejected] == ["invalid_json"]
