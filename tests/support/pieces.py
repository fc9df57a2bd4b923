"""What an encoder made of a block, compared as the checkpoint and Polaris see it.

The whole-block paths halve a block they refuse (`agent.encode.halves`) and cut pieces at the
halves' bounds too, so a block path and the line path may cut the same events into pieces
differently: these compare the events and their offsets across pieces, and check the rules
every piece keeps."""

from __future__ import annotations

from itertools import pairwise

from agent.encode import Encoded


def events_and_offsets(encoded: Encoded) -> tuple[object, ...]:
    """The events, each one's line offset, where the last piece ends, refusals, blank lines."""
    return (
        b"".join(p.data for p in encoded.pieces),
        [offset for p in encoded.pieces for offset in p.offsets],
        encoded.pieces[-1].end_offset,
        sorted(encoded.rejected, key=lambda letter: letter.offset),  # a parsed line path
        encoded.blank,  # lists its too long lines first
    )


def pieces_keep_their_rules(encoded: Encoded, piece_bytes: int) -> None:
    """Each piece within `piece_bytes` (or one event), its offsets one an event, and its
    end (what the checkpoint passes once it is safe) before the next piece's first event."""
    for piece in encoded.pieces:
        assert piece.events == piece.data.count(b"\n") == len(piece.offsets)
        assert len(piece.data) <= piece_bytes or piece.events == 1
    for before, after in pairwise(encoded.pieces):
        assert before.end_offset <= (after.offsets[0] if after.events else after.end_offset)
