"""Cutting encoded events into pieces of at most `piece_bytes`, and splicing members into an
object before its closing brace: byte work shared by the block and line paths."""

from __future__ import annotations

import re
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

    When every brace closes its line (`braces_close_lines`: flat objects, the common case)
    a one-byte ``replace`` splices them all (a two-byte needle such as ``}\n`` is searched
    about 20x slower). Otherwise, when the block holds one ``}`` a line, each is its line's
    closing brace and every newline must follow a spliced one (one count of a long needle);
    else ``}\n`` is replaced."""
    closing = suffix + b"}\n"
    if braces_close_lines(block):
        return suffix_at_braces(block, suffix)
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


def splice_formatted(
    block: bytes, lines: int, insert: bytes, args: tuple[object, ...]
) -> bytes | None:
    """`block` of `lines` lines, each one JSON object (as msgspec vouched), with `insert`
    formatted (``%``) with that line's `args` before its closing brace, as `splice` writes
    each line's own suffix; None unless every line's only brace is its last byte, after
    neither a space nor ``{`` (`braces_close_lines`: nested objects, a brace in a string, a
    space after it, ``{}``).

    One ``%`` over the whole block writes every line's values (its ``%`` doubled first):
    the format is parsed in C, from ``%`` to ``%`` with memchr, where joining a line's parts
    takes several Python objects a line. `insert` holds no ``%`` but its conversions, and
    `args` as many per line as they take, for `lines` lines."""
    if not braces_close_lines(block):
        return None
    return format_at_braces(block, insert, args)


def suffix_at_braces(block: bytes, suffix: bytes) -> bytes:
    """`suffix` before every ``}`` of `block`: `splice` on every line, for a block whose
    braces close its lines (`braces_close_lines`, checked by the caller), each its brace."""
    return block.replace(b"}", suffix + b"}")


def format_at_braces(block: bytes, insert: bytes, args: tuple[object, ...]) -> bytes | None:
    """`splice_formatted` of a block whose braces close its lines (`braces_close_lines`,
    checked by the caller): `insert` formatted with each line's `args` before its brace.
    None when `block` holds not exactly one brace per line's share of `args` (the ``%``
    itself counts them: a check the caller may rely on)."""
    escaped = block.replace(b"%", b"%%") if b"%" in block else block
    try:
        return escaped.replace(b"}", insert + b"}") % args
    except TypeError:
        return None  # as many braces as lines' args, or nothing


_LOOSE_BRACE = re.compile(rb"\}(?:(?!\n)|(?<=[ \t{]\}))")
"""A ``}`` not right before a newline, or right after a space, tab or ``{``: one scan in C
from brace to brace (a two-byte needle such as ``}\n`` is searched about 3x slower)."""


def braces_close_lines(block: bytes) -> bool:
    """Every ``}`` of `block` (lines that msgspec read as one object each) is the last byte
    of its line, after neither a space, a tab nor ``{``: then each line holds exactly one
    brace, its object's closing one (every line has that one), where a suffix can go as
    `splice` puts it."""
    return _LOOSE_BRACE.search(block) is None


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


def cut(
    data: bytes, start_offset: int, growth: int, piece_bytes: int, lines: int | None = None
) -> list[EncodedPiece]:
    """Pieces of at most `piece_bytes` (or one event) from `data`, whose k-th event is the
    k-th line at `start_offset` grown by `growth` bytes. `lines`: how many `data` holds, when
    known (one piece: neither copied nor counted again)."""
    pieces: list[EncodedPiece] = []
    position, events_before, size = 0, 0, len(data)
    while position < size:
        end = piece_end(data, position, piece_bytes)
        whole = position == 0 and end == size
        chunk = data if whole else data[position:end]
        # memchr: count() checks each byte
        events = lines if whole and lines is not None else occurrences(chunk, b"\n")
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
