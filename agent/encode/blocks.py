"""The whole-block paths: a block of lines encoded without a Python step per line.

Each returns None for a block it cannot vouch for, and the encoder then decides line by line
(`Encoder._line_by_line`); both paths must agree on every line (tests/unit/test_encode_fuzz.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from itertools import accumulate, compress, repeat
from operator import add, attrgetter
from typing import Any

import msgspec
import orjson

from agent.encode.cut import cut, cut_events, members, piece_end
from agent.encode.scan import BLANK_LINE, ROW_SEPARATOR, lines_within, unremarkable
from agent.encode.values import Encoded, EncodedPiece
from agent.encode.window import ReadClock
from agent.records import LineStarts

TEXT_SLICE = 64 * 1024
_TIME = attrgetter("probe.f0")


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


@dataclass(slots=True)
class JsonBlocks:
    """JSON lines forwarded as they are, validated a piece at a time by msgspec."""

    rows: msgspec.json.Decoder[list[Any]]
    fields: Mapping[str, object]
    max_line: int
    max_event: int
    piece_bytes: int
    clock: ReadClock

    def encode(self, block: bytes, start_offset: int) -> Encoded | None:
        """The common case at C speed: every line one JSON object whose time is an ISO string
        well inside Polaris' late/early window. The lines are forwarded as they are, cut into
        pieces, each piece validated by msgspec in one call (`probe`); the static fields are
        spliced with one `bytes.replace`. Any other block (a blank, broken or long line, a
        CR, a missing or numeric time, a time near an edge) returns None and the line-by-line
        path decides each line; so does a block `unremarkable` cannot vouch for."""
        if b"\r" in block or not lines_within(block, self.max_line):
            return None
        if not unremarkable(block):
            return None
        if self.fields:
            return self._with_fields(block, start_offset)
        pieces: list[EncodedPiece] = []
        position = 0
        while position < len(block):
            end = piece_end(block, position, self.piece_bytes)
            data = block if position == 0 and end == len(block) else block[position:end]
            probes = self.probe(data)
            if probes is None:
                return None
            base = start_offset + position
            pieces.append(EncodedPiece(data, len(probes), base + len(data), LineStarts(data, base)))
            position = end
        return Encoded(pieces, [], 0)

    def _with_fields(self, block: bytes, start_offset: int) -> Encoded | None:
        probes = self.probe(block)
        if probes is None:
            return None
        spliced = self._splice_fields(block, probes)
        if spliced is None:
            return None
        growth = (len(spliced) - len(block)) // len(probes)
        return Encoded(cut(spliced, start_offset, growth, self.piece_bytes), [], 0)

    def probe(self, data: bytes) -> list[Any] | None:
        """Each line of `data` as a row holding a tiny struct `probe` (the time `f0`, the
        static keys `f1`...), when every line is one JSON object with a non-empty string time
        well inside the window; None otherwise.

        One msgspec call validates them all: the lines become ``[[line]\n,[line]\n,...[{}]]``
        (the last row stands in for the last separator's element), so a blank line, a line
        with half a value or with two values side by side fails as a whole, without a
        Python step per line. The rows must number the lines, counted from the separators'
        growth for free, and a row holds exactly one object (extra elements are refused).
        The newline kept in the separator means no string can swallow it. Two broken lines
        whose brackets close across a separator (``{"x":[[1`` / ``2]]}``) make one row of
        two lines; only a line that starts a row of its own (``}],[{``) could make up the
        count, and `unremarkable` sends any block holding one line by line.

        The time is decoded by msgspec as an RFC 3339 datetime, in C: anything else (a
        number, an object, a date that does not exist) fails the block, and the line path
        decides. msgspec bounds its own nesting only by what is left of the recursion limit;
        `unremarkable` bounded it before, and a RecursionError is one more reason to go
        line by line, never an exception out of here.
        """
        rows_text = data.replace(b"\n", ROW_SEPARATOR)
        lines = (len(rows_text) - len(data)) // (len(ROW_SEPARATOR) - 1)
        try:
            rows = self.rows.decode(b"".join((b"[[", rows_text, b"{}]]")))
        except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
            return None
        rows.pop()
        if len(rows) != lines:
            return None
        times = list(map(_TIME, rows))
        if None in times or msgspec.UNSET in times:
            return None  # a time missing or null: decided line by line
        return rows if self.clock.well_inside(times) else None

    def _splice_fields(self, block: bytes, probes: list[Any]) -> bytes | None:
        """`block` with the static fields before every closing brace — those no line has;
        a field every line has already is left out (an event's own field wins). None when
        only some lines have a field, a line ends in a space, or would grow past the limit:
        the line-by-line path handles those. (No line is ``{}``: each has a time.)"""
        suffix = self._common_suffix(probes)
        if suffix is None:
            return None
        if not suffix:
            return block
        if not lines_within(block, self.max_event - len(suffix)):
            return None
        # "}\n" ends lines only (a newline in a string is escaped): grown by one suffix per
        # object means every line ends in its brace, with no search of its own.
        spliced = block.replace(b"}\n", suffix + b"}\n")
        if len(spliced) != len(block) + len(suffix) * len(probes):
            return None
        return spliced

    def _common_suffix(self, probes: list[Any]) -> bytes | None:
        missing: list[tuple[str, object]] = []
        for index, (key, value) in enumerate(self.fields.items(), start=1):
            values = map(attrgetter(f"probe.f{index}"), probes)
            present = len(probes) - list(values).count(msgspec.UNSET)
            if present == 0:
                missing.append((key, value))
            elif present != len(probes):
                return None
        return members(missing)
