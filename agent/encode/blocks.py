"""The whole-block JSON paths: a block of lines encoded without a Python step per line.

Each returns None for a block it cannot vouch for, and the encoder then decides line by line
(`Encoder._line_by_line`); both paths must agree on every line (tests/unit/test_encode_fuzz.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from itertools import accumulate, chain, islice, repeat
from operator import add, attrgetter, itemgetter
from typing import Any

import msgspec

from agent.encode.cut import UNSPLICEABLE, cut, cut_events, members, piece_end, splice_lines
from agent.encode.scan import ROW_SEPARATOR, lines_within, shallow, unremarkable
from agent.encode.times import DATETIMES, NUMBERS, epoch_values
from agent.encode.values import Encoded, EncodedPiece
from agent.encode.window import ReadClock
from agent.records import LineStarts

_TIME = attrgetter("probe.f0")
_FIRST = itemgetter(0)
_LAST = itemgetter(-1)
_BEFORE_LAST = itemgetter(-2)
_BODY = itemgetter(slice(None, -1))


@dataclass(slots=True)
class JsonBlocks:
    """JSON lines forwarded as they are, validated a piece at a time by msgspec."""

    rows: msgspec.json.Decoder[list[Any]]
    fields: Mapping[str, object]
    max_line: int
    max_event: int
    piece_bytes: int
    clock: ReadClock
    time_key: bytes = b'"timestamp"'  # the time field, as JSON
    candidates: tuple[bytes, ...] = ()  # the names the event's own time may be under, as JSON
    missing: int = 0  # events given the read time (counted; the encoder takes it)

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
            probes = self._rows(data)
            if probes is None:
                return None  # the block as a whole cannot be read either
            if not self.clock.well_inside(list(map(_TIME, probes))):
                if position != 0:
                    return None
                # maybe no line has the time: the rest read once, not the whole block again
                rest = self._rows(block[end:]) if end < len(block) else []
                if rest is None:
                    return None
                return self._without_time(block, start_offset, probes + rest)
            base = start_offset + position
            pieces.append(EncodedPiece(data, len(probes), base + len(data), LineStarts(data, base)))
            position = end
        return Encoded(pieces, [], 0)

    def _with_fields(self, block: bytes, start_offset: int) -> Encoded | None:
        probes = self._rows(block)
        if probes is None:
            return None
        if not self.clock.well_inside(list(map(_TIME, probes))):
            return self._without_time(block, start_offset, probes)
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
        decides; so does a time missing or null (`ReadClock.well_inside` refuses None and
        UNSET). msgspec bounds its own nesting only by what is left of the recursion limit:
        a RecursionError is one more reason to go line by line, never an exception out of
        here, and a block it read with a line nested deeper than `MAX_NESTING_DEPTH` goes
        line by line too (`shallow`, checked on the rows).
        """
        rows = self._rows(data)
        if rows is None:
            return None
        return rows if self.clock.well_inside(list(map(_TIME, rows))) else None

    def _rows(self, data: bytes) -> list[Any] | None:
        """One row per line of `data` (see `probe`), or None when that cannot be vouched for."""
        rows_text = data.replace(b"\n", ROW_SEPARATOR)
        lines = (len(rows_text) - len(data)) // (len(ROW_SEPARATOR) - 1)
        try:
            rows = self.rows.decode(b"".join((b"[[", rows_text, b"{}]]")))
        except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
            return None
        rows.pop()
        return rows if len(rows) == lines and shallow(data, lines) else None

    def _without_time(self, block: bytes, start_offset: int, rows: list[Any]) -> Encoded | None:
        """A block where no line has the time field, still without a Python step per line:
        when no line has any of the `times.CANDIDATES` either, the read time (and the static
        fields) are spliced before every closing brace with one `bytes.replace`, as static
        fields are; when every line has its time under the same name (and none under an
        earlier one), each line gets that value (`times`), spliced in one join. None for
        any other block: the line path decides. `rows` are the block's (`_rows`)."""
        if not rows:
            return None
        values: list[Any] | None
        probed = msgspec.json.encode(rows)  # what the rows hold, by name, in one call
        if len(probed) == 5 * len(rows) + 1:  # [[{}],[{}],...]
            fields, values = members(self.fields.items()), []  # no line has any of them
        else:
            if list(map(_TIME, rows)).count(msgspec.UNSET) != len(rows):
                return None
            found = self._common_suffix(rows)
            if found is None:
                return None
            fields = found
            values = self._own_times(rows, probed)
        if values is None:
            return None
        if not values:  # no line has a time of its own: the read time, one splice
            suffix = self.clock.time_suffix + fields
            if not lines_within(block, self.max_event - len(suffix)):
                return None
            spliced = splice_lines(block, len(rows), suffix)
            if spliced is None:
                return None
            self.missing += len(rows)
            return Encoded(cut(spliced, start_offset, len(suffix), self.piece_bytes), [], 0)
        head, tail = b"," + self.time_key + b":", fields + b"}\n"  # around each value
        widths = set(map(len, values))
        growth: int | None = None
        if len(widths) == 1:  # times written alike (the common case): each line grows alike
            growth = len(head) + widths.pop() + len(tail) - 2
            if not lines_within(block, self.max_event - growth):
                return None
            data = _join_at_braces(block, len(rows), head, values, tail)
            if data is not None:
                return Encoded(cut(data, start_offset, growth, self.piece_bytes), [], 0)
        lines = block.split(b"\n")  # one byte: a memchr from line to line
        lines.pop()
        if len(lines) != len(rows) or bytes(map(_LAST, lines)) != b"}" * len(lines):
            return None  # every line must end in its brace
        ends = bytes(map(_BEFORE_LAST, lines))  # the byte before each closing brace
        if any(before in ends for before in UNSPLICEABLE):
            return None
        bodies = list(map(_BODY, lines))
        # one join, no formatting per line
        data = b"".join(chain.from_iterable(zip(bodies, repeat(head), values, repeat(tail))))
        if growth is not None:
            return Encoded(cut(data, start_offset, growth, self.piece_bytes), [], 0)
        around = len(head) + len(tail)
        sizes = list(map(add, map(len, bodies), map(around.__add__, map(len, values))))
        if max(sizes) - 1 > self.max_event:
            return None
        starts = list(accumulate(map(add, map(len, bodies), repeat(2)), initial=start_offset))
        return Encoded(cut_events(data, list(accumulate(sizes)), starts, self.piece_bytes), [], 0)

    def _own_times(self, rows: list[Any], probed: bytes | None = None) -> list[Any] | None:
        """Each line's own time as the JSON value for the time field, when every line has it
        under the same candidate name (and none under an earlier one), well inside the
        window; [] when no line has any; None otherwise. `probed`: the rows encoded by
        msgspec, where a name no row holds does not appear (its column is not read)."""
        if not self.candidates:
            return []
        for index, name in enumerate(self.candidates, start=1):  # a column at a time, in order
            if probed is not None and name + b":" not in probed:
                continue  # no row has it
            raws = list(map(attrgetter(f"probe.c{index}"), rows))
            absent = raws.count(msgspec.UNSET)
            if absent == len(raws):
                continue
            if absent:
                return None
            text = b"[" + b",".join(raws) + b"]"
            if b"\\" in text:
                return None  # an escape: the line path writes the string its own way
            if text[1:2] == b'"':
                try:
                    times = DATETIMES.decode(text)
                except (msgspec.DecodeError, msgspec.ValidationError):
                    return None
                return list(raws) if self.clock.well_inside(times) else None
            try:
                numbers = NUMBERS.decode(text)
            except (msgspec.DecodeError, msgspec.ValidationError):
                return None
            epochs = epoch_values(numbers)
            if epochs is None:
                return None
            values, earliest, latest = epochs
            if self.clock.outside(earliest) or self.clock.outside(latest):
                return None
            return values
        return []

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
        return splice_lines(block, len(probes), suffix)

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


def _join_at_braces(
    block: bytes, lines: int, head: bytes, values: list[Any], tail: bytes
) -> bytes | None:
    """Each of `lines` lines of `block` (one JSON object each, as msgspec vouched) with
    `head`, its value and `tail` (ending in ``}\n``) in place of its closing brace and
    newline, split at the braces: when the block holds one ``}`` a line (flat objects), each
    is its line's closing brace, and no body is sliced out of its line. None when the block
    holds more braces, or a line has anything after its brace or a space or ``{`` before it
    (`splice` writes those otherwise)."""
    parts = block.split(b"}")
    if len(parts) != lines + 1 or parts.pop() != b"\n":
        return None
    try:  # after each brace but the last, the next line
        if bytes(map(_FIRST, islice(parts, 1, None))) != b"\n" * (lines - 1):
            return None
    except IndexError:
        return None  # "}}": two braces side by side
    ends = bytes(map(_LAST, parts))  # the byte before each brace
    if any(before in ends for before in UNSPLICEABLE):
        return None
    closing = tail[:-1]  # the newline comes with the next part
    joined = b"".join(chain.from_iterable(zip(parts, repeat(head), values, repeat(closing))))
    return joined + b"\n"
