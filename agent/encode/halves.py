"""A block the whole-block path refuses is halved until the odd lines are found.

One line the block path cannot vouch for (a blank line, a startup banner or a stack trace
printed raw into a JSON log, a line nested too deep) used to send its whole block, about
1,260 lines, down the line-by-line path: one such line in a thousand made a JSON file cost
12-14 ms/MB instead of 2. Now the block is cut in two at a newline near its middle and each
half tried again, and so on down to `LEAF_BYTES`: only the stretch around each odd line goes
line by line. The result holds the events and offsets the line path makes of the whole
block, cut into pieces at the halves' bounds too (tests/unit/test_encode_halves.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from agent.encode.values import Encoded, EncodedPiece

BlockPath = Callable[[bytes, int], Encoded | None]
LinePath = Callable[[bytes, int], Encoded]

LEAF_BYTES: Final = 8 * 1024
"""A refused stretch this small goes line by line (about 30 of the bench's lines): halving
it further costs more decodes than its lines cost one by one."""


def in_halves(
    whole: BlockPath, by_line: LinePath, block: bytes, start_offset: int, piece_bytes: int
) -> Encoded:
    """`block` (whole lines at `start_offset`) by `whole` where it vouches for a stretch,
    by `by_line` where it does not, as pieces of at most `piece_bytes`."""
    found = whole(block, start_offset)
    if found is not None:
        return found
    parts: list[Encoded] = []
    _halve(whole, by_line, block, start_offset, parts)
    return parts[0] if len(parts) == 1 else _merged(parts)


def _halve(
    whole: BlockPath, by_line: LinePath, block: bytes, start_offset: int, parts: list[Encoded]
) -> None:
    """The parts of `block`, refused whole, appended to `parts` in order."""
    middle = block.find(b"\n", len(block) // 2)
    if len(block) <= LEAF_BYTES or middle in (-1, len(block) - 1):
        parts.append(by_line(block, start_offset))  # small, or one long line
        return
    split = middle + 1
    for half, offset in ((block[:split], start_offset), (block[split:], start_offset + split)):
        found = whole(half, offset)
        if found is None:
            _halve(whole, by_line, half, offset, parts)
        else:
            parts.append(found)


def _merged(parts: list[Encoded]) -> Encoded:
    """The parts of one block as its encoding: their pieces in order (a part's last piece is
    as short as the part: cutting the events afresh cost more than the halving saved), and a
    last empty piece when the block ends in lines that made no event, so that the block's
    end is still passed; their refusals and blank lines together."""
    pieces = [piece for part in parts for piece in part.pieces if piece.events]
    end = parts[-1].pieces[-1].end_offset
    if not pieces or pieces[-1].end_offset != end:
        pieces.append(EncodedPiece(b"", 0, end, []))
    rejected = [letter for part in parts for letter in part.rejected]
    return Encoded(pieces, rejected, sum(part.blank for part in parts))
