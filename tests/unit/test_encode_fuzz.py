"""Fuzz: whatever bytes a log file holds, encoding never raises, and the whole-block fast path
decides every line exactly as the line-by-line path does (same events, same bytes, same dead
letters, same counts). Random bytes find crashes; lines assembled from near-JSON fragments
(deep nesting, bytes that are not UTF-8, brackets that balance across lines, time values of
every type, numbers out of range) find the places where msgspec and orjson disagree.

A coverage-guided run of the same property: ``bench/fuzz_encode.py`` (atheris).
"""

from __future__ import annotations

import json

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from agent.config import SourceConfig
from agent.encode import Encoded, Encoder
from agent.encode.halves import LEAF_BYTES
from agent.encode.parsed import ParsedEncoder
from agent.encode.scan import MAX_NESTING_DEPTH
from tests.support.pieces import events_and_offsets, pieces_keep_their_rules

NOW = 1_764_028_800.0  # 2025-11-25T00:00:00Z


def encoder(**options: object) -> Encoder:
    source = SourceConfig.model_validate({"name": "s", "include": ["/x/*.log"], **options})
    return Encoder(source, max_event_bytes=1_000_000, piece_bytes=256, now=lambda: NOW)


TIMES = [
    b'"2025-11-24T00:00:00Z"',
    b'"2025-11-24T00:00:00.123456789+01:00"',
    b'"2025-11-24 00:00:00Z"',
    b'"2025-11-24t00:00:00z"',
    b'"2025-11-24T00:00:00"',
    b'"2025-11-24T00:00:00+0000"',
    b'"2025-11-24T00:00:00\\u005a"',
    b'"2025-11-24T00:00:00Z\\u0000"',
    b'"2025-11-24xyz"',
    b'"2025-02-30T00:00:00Z"',
    b'"2025-10-26T12:00:00Z"',  # near the late edge
    b'"2033-01-01T00:00:00Z"',  # too early
    b'"10/Oct/2025:13:55:36 -0700"',
    b'"Nov 24 10:00:00"',
    b'"garbage"',
    b'""',
    b'"1763942400"',
    b"1763942400",
    b"1763942400123",
    b"1e300",
    b"-1",
    b"null",
    b"true",
    b"false",
    b"{}",
    b'{"a":1}',
    b'["2025-11-24T00:00:00Z"]',
]
FRAGMENTS = [
    b"{",
    b"}",
    b"[",
    b"]",
    b",",
    b":",
    b" ",
    b"\t",
    b'"a"',
    b'"timestamp"',
    b'"timestamp_raw"',
    b'"env"',
    b"1",
    b"1e400",
    b"9" * 320,
    b"-0.5e-3",
    b"[[1",
    b"2]]}",
    b"}],[{",
    b"} ] , [ {",
    b'"\xff"',
    b'"\xc0\xaf"',
    b'"\xed\xa0\x80"',
    b'"\\ud800"',
    b'"\\"',
    b"\xe2\x82",
    b"\r",
    b"\x00",
]


VALUES = [
    b"1",
    b'"x"',
    b"1e400",
    b"-1e400",
    b"1e-400",
    b"9" * 320,
    b"18446744073709551616",
    b'"\xff"',
    b'"\xc0\xaf"',
    b'"\xed\xa0\x80"',
    b'"\xf4\x90\x80\x80"',
    b'"caf\xc3\xa9"',
    b'"\\ud800"',
    b'"[{\\"]}"',
    b"[[1],[2]]",
    b'[{"a":1}],[{"b":2}]',
    b"null",
]


def nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def near_json_line(time: bytes | None, values: list[bytes], tail: bytes) -> bytes:
    """An object with (or without) a time and some members, maybe broken by `tail`."""
    members = [b'"timestamp":' + time] if time is not None else []
    members += [b'"k%d":' % i + value for i, value in enumerate(values)]
    return b"{" + b",".join(members) + b"}" + tail


def across(time: bytes, spaced: bool) -> list[bytes]:
    """Two broken lines whose brackets close across the separator, and a line that starts
    a row of its own: together they once passed the whole-block check."""
    gap = b" " if spaced else b""
    return [
        b'{"timestamp":' + time + b',"x":[' + gap + b"[1",
        b"2" + gap + b"]]}",
        b'{"timestamp":' + time + b"}" + gap + b"]," + gap + b'[{"timestamp":' + time + b"}",
    ]


times = st.none() | st.sampled_from(TIMES)
values = st.sampled_from(VALUES) | st.sampled_from(
    [0, 1, MAX_NESTING_DEPTH - 2, MAX_NESTING_DEPTH - 1, MAX_NESTING_DEPTH, 300, 1_100]
).map(nested)
near_json_lines = st.builds(
    near_json_line,
    time=times,
    values=st.lists(values, max_size=3),
    tail=st.just(b"") | st.sampled_from(FRAGMENTS),
)
fragment_lines = st.lists(st.sampled_from(FRAGMENTS + TIMES), max_size=12).map(b"".join)
good_lines = st.sampled_from(TIMES[:3]).map(lambda t: b'{"timestamp":' + t + b',"n":1}')
line_groups = st.one_of(
    good_lines.map(lambda x: [x]),
    good_lines.map(lambda x: [x]),
    near_json_lines.map(lambda x: [x]),
    fragment_lines.map(lambda x: [x]),
    st.builds(across, st.sampled_from(TIMES[:3]), st.booleans()),
)
lines = line_groups.map(lambda group: group[0])
random_blocks = st.binary(max_size=300).map(lambda b: b.replace(b"\r", b"") + b"\n")


def outcome(encoded: Encoded) -> tuple[object, ...]:
    return (
        [(p.data, list(p.offsets)) for p in encoded.pieces if p.events],
        encoded.pieces[-1].end_offset,
        encoded.rejected,
        encoded.blank,
    )


def both_paths_agree(block: bytes, options: dict[str, object]) -> None:
    fast_encoder, line_encoder = encoder(**options), encoder(**options)
    taken = fast_encoder._json_block(block, 5) if options.get("format") != "text" else None
    event("fast path" if taken is not None else "line path")

    fast = fast_encoder.encode(block, 5)
    slow = line_encoder._line_by_line(block, 5)

    assert events_and_offsets(fast) == events_and_offsets(slow)
    if len(block) <= LEAF_BYTES:  # a bigger block refused whole is halved: pieces differ
        assert outcome(fast) == outcome(slow)
    pieces_keep_their_rules(fast, 256)
    assert fast_encoder.take_counts() == line_encoder.take_counts()
    for piece in fast.pieces:
        for line in piece.data.splitlines():
            sent = json.loads(line)  # every event is JSON (1e400 too)...
            assert isinstance(sent, dict)
            assert "timestamp" in sent  # ...with a time


OPTIONS = st.sampled_from([{}, {"fields": {"env": "prod"}}])


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(groups=st.lists(line_groups, min_size=1, max_size=8), options=OPTIONS)
def test_near_json_lines_take_the_same_way_through_both_paths(
    groups: list[list[bytes]], options: dict[str, object]
) -> None:
    lines = [line.replace(b"\n", b"").replace(b"\r", b"") for group in groups for line in group]
    block = b"".join(line + b"\n" for line in lines)
    both_paths_agree(block, options)


@settings(max_examples=300, deadline=None)
@given(block=random_blocks, options=OPTIONS)
def test_random_bytes_take_the_same_way_through_both_paths(
    block: bytes, options: dict[str, object]
) -> None:
    both_paths_agree(block, options)


@settings(max_examples=150, deadline=None)
@given(block=random_blocks | st.lists(lines, max_size=6).map(lambda x: b"\n".join(x) + b"\n"))
def test_text_and_parsed_sources_never_raise(block: bytes) -> None:
    text = encoder(format="text")
    fast, slow = text.encode(block, 0), text._line_by_line(block, 0)
    assert [p.data for p in fast.pieces if p.events] == [p.data for p in slow.pieces if p.events]
    source = SourceConfig.model_validate(
        {"name": "s", "include": ["/x/*.log"], "parser": {"type": "json"}}
    )
    parsed = ParsedEncoder(
        source,
        path="/x/a.log",
        identity=lambda: "f" * 16,
        max_event_bytes=1_000_000,
        piece_bytes=256,
        now=lambda: NOW,
    )
    encoded = parsed.encode(block.replace(b"\r", b""), 0)
    total = sum(p.events for p in encoded.pieces) + len(encoded.rejected) + encoded.blank
    assert total == block.replace(b"\r", b"").count(b"\n")


def test_the_fuzzed_blocks_reach_the_fast_path_too() -> None:
    """The property above is only worth something if the fast path is taken for some of it."""
    block = b'{"timestamp":"2025-11-24T00:00:00Z","a":' + b"[" * 10 + b"]" * 10 + b"}\n"
    assert encoder()._json_block(block * 3, 0) is not None
    assert encoder(fields={"env": "prod"})._json_block(block * 3, 0) is not None
