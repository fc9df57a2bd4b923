"""The whole-block text path: text lines wrapped as ``{"message": ...}`` events without a
Python step per line.

It returns None for a block it cannot vouch for, and the encoder then decides line by line
(`Encoder._line_by_line`); both paths must agree on every line (tests/unit/test_encode_fuzz.py).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import accumulate, compress, repeat
from operator import add
from typing import Final

import orjson

from agent.encode.cut import cut_events
from agent.encode.scan import BLANK_LINE, lines_within, occurrences
from agent.encode.values import Encoded, EncodedPiece
from agent.encode.window import ReadClock
from agent.records import LineStarts

TEXT_SLICE = 64 * 1024
_HEAD: Final = b'{"message":'
_DEL: Final = "\x7f"
_MESSAGE: Final = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
"""The JSON string at the start of an event's message (escapes kept as written)."""


@dataclass(slots=True)
class TextBlocks:
    """Text lines as ``{"message": ...}`` events, a slice of the block at a time."""

    fields_suffix: bytes
    max_line: int
    max_event: int
    piece_bytes: int
    clock: ReadClock
    slice_bytes: int = TEXT_SLICE  # less when short lines grow past a piece once encoded

    def encode(self, block: bytes, start_offset: int) -> Encoded | None:
        """`block` over slices of about `slice_bytes`: its per-line objects (str, bytes,
        offsets) are many, and a slice at a time keeps their peak memory small; a slice
        whose events fit one piece is encoded whole (`_whole_text`)."""
        pieces: list[EncodedPiece] = []
        blank = 0
        position = 0
        while position < len(block):
            end = block.rfind(b"\n", position, position + self.slice_bytes) + 1 or len(block)
            encoded = self.block(block[position:end], start_offset + position)
            if encoded is None:
                return None
            pieces += encoded.pieces
            blank += encoded.blank
            position = end
        return Encoded(pieces, [], blank)

    def block(self, block: bytes, start_offset: int) -> Encoded | None:
        """Text lines without a Python step per line: a tidy block (the common case) as one
        escape of its whole text (`_whole_text`); any other, or one whose events need more
        than a piece, decoded once, each line JSON-escaped by `orjson.dumps` mapped over
        them, and the events joined around them; blank lines are masked out and a CR before
        the newline dropped, as line by line. A block with a long line or bytes that are not
        UTF-8 returns None and goes line by line."""
        if not lines_within(block, self.max_line):
            return None
        tidy = b"\r" not in block and not BLANK_LINE.search(block) and not block[:1].isspace()
        if tidy:
            whole = self._whole_text(block, start_offset)
            if whole is not None:
                return whole
        if tidy and block.isascii():  # the common case: a character is a byte
            lines = block.decode("ascii").split("\n")
            lines.pop()
            starts = list(accumulate(map(add, map(len, lines), repeat(1)), initial=start_offset))
            blank = 0
        else:
            found = self._lines_and_starts(block, start_offset, tidy=tidy)
            if found is None:
                return None
            lines, starts, blank = found
        if not lines:
            return Encoded([EncodedPiece(b"", 0, starts[-1], [])], [], blank)
        messages = list(map(orjson.dumps, lines))
        tail = self._tail()
        if max(map(len, messages)) + len(_HEAD) + len(tail) - 1 > self.max_event:
            return None
        data = _HEAD + (tail + _HEAD).join(messages) + tail
        sizes = list(accumulate(map(add, map(len, messages), repeat(len(_HEAD) + len(tail)))))
        return Encoded(cut_events(data, sizes, starts, self.piece_bytes), [], blank)

    def _whole_text(self, block: bytes, start_offset: int) -> Encoded | None:
        """A tidy block (no CR, no blank line) as one piece, without splitting it into
        lines: its text with each newline made a DEL escaped by one ``orjson.dumps`` (DEL is
        the one character JSON writes as itself and no log line holds: a line with one
        goes the other way), each DEL then replaced by the end of one event and the start
        of the next (a one-byte ``replace``: ``","`` in a list of strings is searched 10x
        slower, and ``dumps`` per line returns each event in a 4 KiB buffer). The offsets
        are read back from the events only when asked (`TextStarts`). None when the block
        is not UTF-8, holds a DEL, or its events would not fit one piece."""
        try:
            text = block[:-1].decode("utf-8")
        except UnicodeDecodeError:
            return None
        if _DEL in text:
            return None
        tail = self._tail()
        escaped = orjson.dumps(text.replace("\n", _DEL))
        data = _HEAD + escaped.replace(b"\x7f", b'"' + tail + _HEAD + b'"') + tail
        self._fit_slices(len(block), len(data))
        if len(data) > self.piece_bytes or not lines_within(data, self.max_event):
            return None
        events = occurrences(block, b"\n")
        starts = TextStarts(data, start_offset)
        return Encoded([EncodedPiece(data, events, start_offset + len(block), starts)], [], 0)

    def _tail(self) -> bytes:
        """What follows each event's message: the read time, the static fields, the end."""
        return self.clock.time_suffix + self.fields_suffix + b"}\n"

    def _fit_slices(self, raw: int, encoded: int) -> None:
        """Slices whose events fit a piece: short lines grow most (a 20-byte line becomes a
        70-byte event), and a slice too big for one piece is encoded the slower way."""
        if encoded > self.piece_bytes:
            self.slice_bytes = max(1024, raw * self.piece_bytes // encoded * 9 // 10)
        elif encoded < self.piece_bytes // 2 and raw > self.slice_bytes * 3 // 4:  # a full one
            self.slice_bytes = min(TEXT_SLICE, self.slice_bytes * 3 // 2)

    @staticmethod
    def _lines_and_starts(
        block: bytes, start_offset: int, *, tidy: bool
    ) -> tuple[list[str], list[int], int] | None:
        """The lines of a block that is not plain ASCII or not tidy (blank lines, CRs), their
        file offsets (one more: where the next line starts) and how many were blank; None
        when it is not UTF-8."""
        raw = block.split(b"\n")
        raw.pop()
        starts = list(accumulate(map(add, map(len, raw), repeat(1)), initial=start_offset))
        unix = block if tidy else block.replace(b"\r\n", b"\n")
        try:
            lines = unix.decode("utf-8").split("\n")
        except UnicodeDecodeError:
            return None
        lines.pop()
        if not tidy:  # mask out blank lines, as line by line
            kept = list(map(bool, map(bytes.strip, unix.split(b"\n")[:-1])))
            starts = [*compress(starts, kept), starts[-1]]
            lines = list(compress(lines, kept))
        return lines, starts, len(raw) - len(lines)


class TextStarts(LineStarts):
    """The file offsets of a whole-text piece's events (`TextBlocks._whole_text`), read back
    from the events when asked: each event's message, unescaped, is its line (no CR, no
    blank line in such a piece), so line k starts where line k-1 started plus its length
    in UTF-8 and its newline. Refused events are rare; a list of offsets per line would
    cost the hot path a Python object per line.

    Once read back, the offsets are kept and shared with every rebinding (`LineStarts`)."""

    __slots__ = ()

    def _read_back(self) -> Iterator[int]:
        position, offset = self._begin, self._base
        while position < self._end:
            yield offset
            found = _MESSAGE.match(self._data, position + len(_HEAD))
            assert found is not None  # every event starts with its message
            offset += len(orjson.loads(found.group()).encode()) + 1 + self._cr
            position = self._data.index(b"\n", position, self._end) + 1
