"""The whole-block text path: text lines wrapped as ``{"message": ...}`` events without a
Python step per line.

It returns None for a block it cannot vouch for, and the encoder then decides line by line
(`Encoder._line_by_line`); both paths must agree on every line (tests/unit/test_encode_fuzz.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import accumulate, compress, repeat
from operator import add

import orjson

from agent.encode.cut import cut_events
from agent.encode.scan import BLANK_LINE, lines_within
from agent.encode.values import Encoded, EncodedPiece
from agent.encode.window import ReadClock

TEXT_SLICE = 64 * 1024


@dataclass(slots=True)
class TextBlocks:
    """Text lines as ``{"message": ...}`` events, a slice of the block at a time."""

    fields_suffix: bytes
    max_line: int
    max_event: int
    piece_bytes: int
    clock: ReadClock

    def encode(self, block: bytes, start_offset: int) -> Encoded | None:
        """`block` over slices of about TEXT_SLICE bytes: its per-line objects (str,
        bytes, offsets) are many, and a slice at a time keeps their peak memory small."""
        pieces: list[EncodedPiece] = []
        blank = 0
        position = 0
        while position < len(block):
            end = block.rfind(b"\n", position, position + TEXT_SLICE) + 1 or len(block)
            encoded = self.block(block[position:end], start_offset + position)
            if encoded is None:
                return None
            pieces += encoded.pieces
            blank += encoded.blank
            position = end
        return Encoded(pieces, [], blank)

    def block(self, block: bytes, start_offset: int) -> Encoded | None:
        """Text lines without a Python step per line: the block is decoded once, each line
        JSON-escaped by `orjson.dumps` mapped over them, and the events joined around them;
        blank lines are masked out and a CR before the newline dropped, as line by line. A
        block with a long line or bytes that are not UTF-8 returns None and goes line by
        line."""
        if not lines_within(block, self.max_line):
            return None
        tidy = b"\r" not in block and not BLANK_LINE.search(block) and not block[:1].isspace()
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
        head = b'{"message":'
        tail = self.clock.time_suffix + self.fields_suffix + b"}\n"
        if max(map(len, messages)) + len(head) + len(tail) - 1 > self.max_event:
            return None
        data = head + (tail + head).join(messages) + tail
        sizes = list(accumulate(map(add, map(len, messages), repeat(len(head) + len(tail)))))
        return Encoded(cut_events(data, sizes, starts, self.piece_bytes), [], blank)

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
