"""A block the whole-block path refuses is halved until its odd lines are found, and what
comes out is what the line path makes of it: the same events, offsets, refusals and counts.

One line the block path cannot vouch for (a blank line, a banner or a stack trace printed raw
into a JSON log, a line nested too deep, bytes that are not UTF-8) sent its whole block of
about 1,260 lines line by line: one such line in a thousand made a JSON file cost 12-14 ms/MB
instead of 2 (`agent.encode.halves`). Pieces are cut at the halves' bounds too, so these
properties compare the events and offsets across pieces, and the pieces' own rules."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.encode import Encoded
from agent.encode.halves import LEAF_BYTES
from tests.support.pieces import events_and_offsets, pieces_keep_their_rules
from tests.unit.test_encode_fuzz import encoder, line_groups

PIECE_BYTES = 256  # the test encoder's
GOOD_JSON = b'{"timestamp":"2025-11-24T00:00:00Z","n":%d,"msg":"a line of a JSON log"}'
GOOD_TEXT = b"2025-11-24T00:00:00Z INFO a line of a text log number %d"
ODD = [
    b"",
    b"   ",
    b"java.lang.NullPointerException: boom",
    b"\tat com.example.Service.handle(Service.java:42)",
    b'{"timestamp":"2025-11-24T00:00:00Z","deep":' + b"[" * 300 + b"]" * 300 + b"}",
    b'{"timestamp":"2025-11-24T00:00:00Z","broken":',
    b'{"timestamp":"2033-01-01T00:00:00Z","n":-1}',  # too early
    b"caf\xe9 latin-1",
    b"\xff\xfe",
    b"x" * 3000,
]


@st.composite
def mixed_blocks(draw: st.DrawFn, good: bytes) -> bytes:
    """Well over `LEAF_BYTES` of good lines with a few odd ones among them."""
    count = draw(st.integers(LEAF_BYTES // 50, 3 * LEAF_BYTES // 50))
    lines = [good % n for n in range(count)]
    odd = st.sampled_from(ODD) | line_groups.map(lambda group: group[0])
    for _ in range(draw(st.integers(1, 4))):
        line = draw(odd).replace(b"\n", b"").replace(b"\r", b"")
        lines.insert(draw(st.integers(0, len(lines))), line)
    return b"".join(line + b"\n" for line in lines)


def agree(block: bytes, **options: Any) -> None:
    fast, slow = encoder(**options), encoder(**options)
    got, want = fast.encode(block, 11), slow._line_by_line(block, 11)
    assert events_and_offsets(got) == events_and_offsets(want)
    assert fast.take_counts() == slow.take_counts()
    pieces_keep_their_rules(got, PIECE_BYTES)


@settings(
    max_examples=300, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck)
)
@given(block=mixed_blocks(GOOD_JSON), options=st.sampled_from([{}, {"fields": {"env": "p"}}]))
def test_a_json_block_with_odd_lines_gives_the_line_paths_events(
    block: bytes, options: dict[str, Any]
) -> None:
    agree(block, **options)


@settings(
    max_examples=150, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck)
)
@given(block=mixed_blocks(GOOD_TEXT))
def test_a_text_block_with_odd_lines_gives_the_line_paths_events(block: bytes) -> None:
    agree(block, format="text")


def test_only_the_stretch_around_an_odd_line_goes_line_by_line() -> None:
    lines = [GOOD_JSON % n for n in range(2000)]
    lines.insert(1234, b"java.lang.NullPointerException: boom")
    block = b"".join(line + b"\n" for line in lines)
    fast = encoder()
    by_line = fast._line_by_line
    seen: list[bytes] = []

    def counted(part: bytes, start_offset: int) -> Encoded:
        seen.append(part)
        return by_line(part, start_offset)

    fast._line_by_line = counted  # type: ignore[method-assign]
    encoded = fast.encode(block, 0)

    assert [r.data for r in encoded.rejected] == [b"java.lang.NullPointerException: boom"]
    assert sum(p.events for p in encoded.pieces) == 2000
    assert len(seen) == 1 and len(seen[0]) <= LEAF_BYTES, "one small stretch, not the block"


def test_a_block_ending_in_lines_that_make_no_event_still_passes_its_end() -> None:
    """The checkpoint moves past the refused lines only if a piece ends after them."""
    block = b"".join(GOOD_JSON % n + b"\n" for n in range(300)) + b"x" * 9000 + b"\n\n"
    encoded = encoder().encode(block, 0)
    assert encoded.pieces[-1].end_offset == len(block)
    assert [r.reason for r in encoded.rejected] == ["invalid_json"]
    assert encoded.blank == 1
