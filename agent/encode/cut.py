"""Cutting encoded events into pieces of at most `piece_bytes`, and splicing members into an
object before its closing brace: byte work shared by the block and line paths."""

from __future__ import annotations

from array import array
from bisect import bisect_right
from collections.abc import Iterable

import orjson

from agent.encode.scan import occurrences
from agent.encode.values import EncodedPiece
from agent.records import LineStarts


def members(fields: Iterable[tuple[str, object]]) -> bytes:
    """``,"k":v`` for each field: what `splice` inserts."""
    return b"".join(b"," + orjson.dumps(k) + b":" + orjson.dumps(v) for k, v in fields)


def splice(line: bytes, suffix: bytes) -> bytes:
    """Insert `suffix` (``,"k":v...``) before the object's closing brace."""
    body = line.rstrip()[:-1].rstrip()
    if body.endswith(b"{"):
        return body + suffix[1:] + b"}"
    return body + suffix + b"}"


UNSPLICEABLE = (b" ", b"\t", b"{")
"""What may not come before a line's closing brace (a space, or ``{}``): `splice` rewrites
those, so the whole-block splices leave them to the line path."""


def splice_lines(block: bytes, lines: int, suffix: bytes) -> bytes | None:
    """`block` of `lines` lines, each one JSON object (as msgspec vouched), with `suffix`
    before every line's closing brace, as `splice` writes it line by line; None when some line
    does not end in its brace, or has a space or ``{`` before it.

    When the block holds one ``}`` a line (flat objects, the common case: counted at memchr
    speed), each is its line's closing brace and a one-byte ``replace`` splices them all (a
    two-byte needle such as ``}\n`` is searched about 20x slower); every newline must then
    follow a spliced brace (one count of a long needle). Otherwise ``}\n`` is replaced."""
    closing = suffix + b"}\n"
    if occurrences(block, b"}") == lines and b"}" not in suffix:
        spliced = block.replace(b"}", suffix + b"}")
        if spliced.count(closing) != lines:
            return None
    else:
        spliced = block.replace(b"}\n", closing)
        # grown by one suffix per line: every line ends in its brace
        if len(spliced) != len(block) + len(suffix) * lines:
            return None
    # and none where `splice` would write otherwise (a long needle: the search skips fast)
    if any(before + closing in spliced for before in UNSPLICEABLE):
        return None
    return spliced


def cut_events(
    data: bytes, ends: list[int], starts: list[int], piece_bytes: int
) -> list[EncodedPiece]:
    """Pieces of at most `piece_bytes` (or one event) from `data`, whose event i ends at byte
    `ends[i]` of `data` and came from the line starting at file offset `starts[i]`
    (`starts` has one more entry: where the line after the last one starts)."""
    pieces: list[EncodedPiece] = []
    first, begin = 0, 0
    while first < len(ends):
        last = max(bisect_right(ends, begin + piece_bytes) - 1, first)
        end = ends[last]
        # The offsets as machine integers: they ride along with the piece until it is sent.
        offsets = array("q", starts[first : last + 1])
        pieces.append(EncodedPiece(data[begin:end], last - first + 1, starts[last + 1], offsets))
        first, begin = last + 1, end
    return pieces


def cut(data: bytes, start_offset: int, growth: int, piece_bytes: int) -> list[EncodedPiece]:
    """Pieces of at most `piece_bytes` (or one event) from `data`, whose k-th event is the
    k-th line at `start_offset` grown by `growth` bytes."""
    pieces: list[EncodedPiece] = []
    position, events_before, size = 0, 0, len(data)
    while position < size:
        end = piece_end(data, position, piece_bytes)
        chunk = data[position:end]
        events = occurrences(chunk, b"\n")  # memchr: count() checks each byte
        base = start_offset + position - events_before * growth
        events_before += events
        end_offset = start_offset + end - events_before * growth
        pieces.append(EncodedPiece(chunk, events, end_offset, LineStarts(chunk, base, growth)))
        position = end
    return pieces


def piece_end(data: bytes, position: int, piece_bytes: int) -> int:
    """Where the piece starting at `position` ends: after the last whole line within
    `piece_bytes`, or after its first line when that alone is longer."""
    end = position + piece_bytes
    if end >= len(data):
        return len(data)
    newline = data.rfind(b"\n", position, end)
    return (newline if newline != -1 else data.index(b"\n", end)) + 1


def piece(events: list[bytes], starts: list[int], end_offset: int) -> EncodedPiece:
    data = b"\n".join(events) + b"\n" if events else b""
    return EncodedPiece(data, len(events), end_offset, starts)
