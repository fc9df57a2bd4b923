"""Attacks on the block paths added last session (halving, CRLF blocks, epoch and text time
fields read a block at a time): whatever a block holds, the block path writes what the line
path writes of it, event for event, offset for offset, with the same dead letters and counts.

Each test here was seen failing before its fix (named in its docstring), or is a property
that found nothing (said in the report that added it)."""

from __future__ import annotations

from typing import Any

from agent.encode import Encoded
from tests.support.pieces import events_and_offsets, pieces_keep_their_rules
from tests.unit.test_encode_fuzz import encoder

PIECE_BYTES = 256  # the test encoder's
TEXT_TIMED = b'{"timestamp":"2025-11-24 00:00:00,123","n":%d}'


def block_of(lines: list[bytes]) -> bytes:
    return b"".join(line + b"\n" for line in lines)


def agree(block: bytes, start_offset: int = 3, **options: Any) -> Encoded:
    """The encoder's output for `block` is the line path's: events, offsets, refusals,
    counts; and its pieces keep their rules."""
    fast, slow = encoder(**options), encoder(**options)
    got, want = fast.encode(block, start_offset), slow._line_by_line(block, start_offset)
    assert events_and_offsets(got) == events_and_offsets(want)
    assert fast.take_counts() == slow.take_counts()
    pieces_keep_their_rules(got, PIECE_BYTES)
    return got


def test_a_text_time_holding_an_escaped_newline_between_two_times_is_no_time() -> None:
    """``"2025-11-24 00:00:00,123\\n2025-11-24 00:00:00,123"`` is no time to the line path
    (its value moves to ``timestamp_raw``, counted time_unparsed); the text-time check joined
    the times with newlines and split them again, so it read two well-shaped times and the
    block forwarded it as written (Polaris cannot parse it). Seen failing before the fix in
    agent/encode/texttimes.py."""
    odd = b'{"timestamp":"2025-11-24 00:00:00,123\\n2025-11-24 00:00:00,123","n":-1}'
    for position in (0, 5, 10):
        lines = [TEXT_TIMED % n for n in range(10)]
        lines.insert(position, odd)
        agree(block_of(lines))
