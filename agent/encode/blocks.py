"""The whole-block JSON paths: a block of lines encoded without a Python step per line.

Each returns None for a block it cannot vouch for, and the encoder then decides line by line
(`Encoder._line_by_line`); both paths must agree on every line (tests/unit/test_encode_fuzz.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from itertools import accumulate, chain, islice, repeat
from operator import add, attrgetter, itemgetter
from typing import Any, Literal

import msgspec

from agent.encode.cut import (
    UNSPLICEABLE,
    braces_close_lines,
    cut,
    cut_events,
    format_at_braces,
    members,
    piece_end,
    splice_formatted,
    splice_lines,
    suffix_at_braces,
)
from agent.encode.scan import (
    ROW_SEPARATOR,
    BlockShape,
    OwnKind,
    TimeKind,
    lines_within,
    shallow,
    shape_lines_decoder,
    shape_rows_decoder,
    unremarkable,
)
from agent.encode.texttimes import first_time_is_text, text_times_inside
from agent.encode.times import DATETIMES, ISO_FORMAT, NUMBERS, epoch_millis, epoch_values, iso_args
from agent.encode.values import Encoded, EncodedPiece
from agent.encode.window import ReadClock
from agent.records import LineStarts

_TIME = attrgetter("probe.f0")  # of a row (`JsonBlocks.probe`)
_OWN = attrgetter("probe.t")
_LINE_TIME = attrgetter("f0")  # of a line's probe (`_flat_rows`)
_LINE_OWN = attrgetter("t")
_EVENTS = attrgetter("events")
_ISO_WIDTH = len(b'"2025-11-25T00:00:00.000Z"')  # an epoch's value: years 2000 to 9999
_DECODING = (msgspec.DecodeError, msgspec.ValidationError, RecursionError)
_FIRST = itemgetter(0)
_LAST = itemgetter(-1)
_BEFORE_LAST = itemgetter(-2)
_BODY = itemgetter(slice(None, -1))


FoundKind = Literal["iso", "int", "float", "numbers"]
"""How a block's time field is written: one shape's `OwnKind`, or ints and floats (no shape)."""


@dataclass(frozen=True, slots=True)
class OwnTimes:
    """The lines' own times, as the general path found them: the values for the time field
    (none: no line has one), the 1-based candidate they are under and how they are written
    (None: numbers of both types, a shape not learnt)."""

    values: list[Any]
    candidate: int
    kind: OwnKind | None


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
    time_field: str = "timestamp"
    candidate_names: tuple[str, ...] = ()  # `candidates`, as names
    shape: BlockShape | None = None  # what every line of the last block had in common
    _shaped_rows: msgspec.json.Decoder[list[Any]] | None = None  # rows of that shape
    _shaped_lines: msgspec.json.Decoder[Any] | None = None  # its lines, for `_flat_rows`
    _shape_fields: bytes = b""  # the static fields no line of that shape has, as members

    def encode(self, block: bytes, start_offset: int) -> Encoded | None:
        """A block of the shape the file's last block had (`BlockShape`) is read with a row
        type that requires it: one decode vouches for every line, and a line that differs
        fails it, so that the block is read again as any block (`_general`)."""
        if b"\r" in block or not lines_within(block, self.max_line):
            return None
        if not unremarkable(block):
            return None
        shape = self.shape
        if shape is not None:
            encoded = self._shaped(block, start_offset, shape)
            if encoded is not None:
                return encoded
            self.shape = None  # learnt again from a block the general path reads
        encoded = self._general(block, start_offset)
        if encoded is None and not self.fields and first_time_is_text(block, self.time_field):
            return self._text_timed(block, start_offset)
        return encoded

    def _learn(self, shape: BlockShape) -> None:
        """Remember `shape` for the next block."""
        self.shape = shape
        names = tuple(self.fields)
        self._shaped_rows = shape_rows_decoder(self.time_field, names, self.candidate_names, shape)
        self._shaped_lines = shape_lines_decoder(
            self.time_field, names, self.candidate_names, shape
        )
        absent = zip(self.fields.items(), shape.present, strict=True)
        self._shape_fields = members(field for field, present in absent if not present)

    def _shaped(self, block: bytes, start_offset: int, shape: BlockShape) -> Encoded | None:
        """`block` when every line has `shape`, without a Python step per line; None
        otherwise. The decode vouched for the columns; what is left is the time's window
        (and own times' conversion) and one splice. A block to splice whose braces close its
        lines (`braces_close_lines`: flat objects, the common case; the splice needs that
        check anyway) is read straight from its bytes (`_flat_rows`); any other as rows."""
        assert self._shaped_rows is not None and self._shaped_lines is not None
        fields = self._shape_fields
        if shape.has_time and not fields:
            return self._as_written(block, start_offset, shape.time_kind)
        flat = braces_close_lines(block)
        if flat:
            found = _flat_rows(self._shaped_lines, block)
            time, own_time = _LINE_TIME, _LINE_OWN
        elif shape.candidate:
            return None  # own times are spliced only where braces close lines
        else:
            found = _rows_in_chunks(self._shaped_rows, block)
            time, own_time = _TIME, _OWN
        if found is None:
            return None
        rows, ends = found
        lines = len(rows)
        if shape.has_time:
            if not self._inside_as(list(map(time, rows)), shape.time_kind):
                return None
            return self._spliced(block, start_offset, lines, fields, flat)
        if not shape.candidate:
            suffix = self.clock.time_suffix + fields
            encoded = self._spliced(block, start_offset, lines, suffix, flat)
            if encoded is not None:
                self.missing += lines
            return encoded
        own = list(map(own_time, rows))
        found_args = self._iso_args(own) if shape.kind == "iso" else self._epoch_args(own)
        if found_args is None:
            return None
        value, width, args = found_args
        if width is None:  # ISO times of several widths (Go's RFC3339Nano trims zeros)
            # (its join splits the block into lines and counts them against `lines`)
            return self._with_own_times(block, start_offset, lines, list(args), fields)
        head = b"," + self.time_key + b":"
        growth = len(head) + width + len(fields)
        if not lines_within(block, self.max_event - growth):
            return None
        insert = head + value + fields.replace(b"%", b"%%")
        data = _splice_chunks(block, ends, lines, insert, args)
        if data is None:
            return None
        return _counted(cut(data, start_offset, growth, self.piece_bytes), lines)

    def _as_written(self, block: bytes, start_offset: int, kind: TimeKind) -> Encoded | None:
        """`block` of a shape with the time and no field to add: forwarded as it is, cut
        into pieces where the line path cuts them, each piece read as it is cut (in chunks:
        `_rows_in_chunks`), so that its rows number its events (no count of newlines); None
        when a piece cannot be vouched for or a time is not well inside the window."""
        assert self._shaped_rows is not None
        pieces: list[EncodedPiece] = []
        times: list[Any] = []
        position = 0
        while position < len(block):
            end = piece_end(block, position, self.piece_bytes)
            data = block if position == 0 and end == len(block) else block[position:end]
            # a piece of up to two chunks is read whole: one row text less to build, no
            # slice of it to copy (~0.07 ms/MB on the bench's 125 KB pieces)
            found = _rows_in_chunks(self._shaped_rows, data, 2 * DECODE_CHUNK)
            if found is None:
                return None
            rows = found[0]
            times += map(_TIME, rows)
            base = start_offset + position
            pieces.append(EncodedPiece(data, len(rows), start_offset + end, LineStarts(data, base)))
            position = end
        if not pieces or not self._inside_as(times, kind):
            return None
        return Encoded(pieces, [], 0)

    def _inside_as(self, times: list[Any], kind: TimeKind) -> bool:
        """Every time of a block read with a shape's row type (times written as `kind`) well
        inside the window."""
        if kind == "iso":
            return self.clock.well_inside(times)
        if kind == "text":
            return text_times_inside(times, self.clock.inside_millis)
        return self.clock.epochs_well_inside(times)

    def _text_timed(self, block: bytes, start_offset: int) -> Encoded | None:
        """`block` read as lines whose time field is text of one ordered shape
        (`agent.encode.texttimes`), forwarded as written; the shape is kept for the next
        block when it holds."""
        self._learn(BlockShape(has_time=True, time_kind="text"))
        encoded = self._as_written(block, start_offset, "text")
        if encoded is None:
            self.shape = None
        return encoded

    def _time_kind(self, times: list[Any]) -> FoundKind | None:
        """How the time field's values are written when every one is well inside the window
        (`ReadClock.well_inside`, or `epochs_well_inside` for numbers); None otherwise (the
        line path decides, or no line has the time). ``"numbers"``: ints and floats, well
        inside but no shape to learn. Datetimes are tried first: the common case pays one
        check."""
        if self.clock.well_inside(times):
            return "iso"
        if not self.clock.epochs_well_inside(times):
            return None
        kinds = set(map(type, times))
        return "int" if kinds == {int} else "float" if kinds == {float} else "numbers"

    def _iso_args(self, strings: list[str]) -> tuple[bytes, int | None, tuple[object, ...]] | None:
        """ISO times as the line path writes each (`own_time`: orjson's text of the string,
        which for an RFC 3339 time is the string in quotes, escapes or not in the line), when
        each is one RFC 3339 string well inside the window: the format (`"%b"`), the values'
        one width with quotes (None: several) and the values (with quotes when several)."""
        try:
            text = "\n".join(strings).encode()
        except UnicodeEncodeError:
            return None  # a lone surrogate: no time
        if b'"' in text or b"\\" in text:
            return None  # no time holds either; quotes alone would not write it
        try:  # a string holding a newline makes more times than strings
            times = DATETIMES.decode(b'["' + text.replace(b"\n", b'","') + b'"]')
        except _DECODING:
            return None
        if len(times) != len(strings) or not self.clock.well_inside(times):
            return None
        values = text.split(b"\n")
        widths = set(map(len, values))
        if len(widths) == 1:
            return b'"%b"', widths.pop() + 2, tuple(values)
        quoted = (b'"' + text.replace(b"\n", b'"\n"') + b'"').split(b"\n")
        return b"%b", None, tuple(quoted)

    def _epoch_args(
        self, numbers: list[Any]
    ) -> tuple[bytes, int | None, tuple[object, ...]] | None:
        """Epoch numbers as ISO values (`ISO_FORMAT`, from each second written once), when
        each is a plausible epoch inside the window (exactly: these are the line path's own
        milliseconds)."""
        found = epoch_millis(numbers)
        if found is None:
            return None
        if self.clock.outside(found.earliest) or self.clock.outside(found.latest):
            return None
        return ISO_FORMAT, _ISO_WIDTH, tuple(iso_args(found.millis, found.ordered))

    def _spliced(
        self, block: bytes, start_offset: int, lines: int, suffix: bytes, flat: bool
    ) -> Encoded | None:
        """`suffix` before every line's closing brace, in one replace; `flat`: the block's
        braces close its lines (checked), its `lines` read by `_flat_rows` and still to be
        counted (`_counted`), else read as rows (counted) and spliced by `splice_lines`."""
        if not lines_within(block, self.max_event - len(suffix)):
            return None
        if flat:
            data = suffix_at_braces(block, suffix)
            return _counted(cut(data, start_offset, len(suffix), self.piece_bytes), lines)
        spliced = splice_lines(block, lines, suffix)
        if spliced is None:
            return None
        return Encoded(cut(spliced, start_offset, len(suffix), self.piece_bytes, lines), [], 0)

    def _general(self, block: bytes, start_offset: int) -> Encoded | None:
        """Any block, its shape not known (`encode` checked what it can first), at C speed
        in the common case: every line one JSON object whose time is an ISO string well
        inside Polaris' late/early window. The lines are forwarded as they are, cut into
        pieces, each piece validated by msgspec in one call (`probe`); the static fields are
        spliced with one `bytes.replace`. Any other block (a blank, broken or long line, a
        CR, a missing or numeric time, a time near an edge) returns None and the line-by-line
        path decides each line. What the block had in common is learnt (`_learn`)."""
        if self.fields:
            return self._with_fields(block, start_offset)
        pieces: list[EncodedPiece] = []
        kinds: set[FoundKind] = set()
        position = 0
        while position < len(block):
            end = piece_end(block, position, self.piece_bytes)
            data = block if position == 0 and end == len(block) else block[position:end]
            probes = self._rows(data)
            if probes is None:
                return None  # the block as a whole cannot be read either
            kind = self._time_kind(list(map(_TIME, probes)))
            if kind is None:
                if position != 0:
                    return None
                # maybe no line has the time: the rest read once, not the whole block again
                rest = self._rows(block[end:]) if end < len(block) else []
                if rest is None:
                    return None
                return self._without_time(block, start_offset, probes + rest)
            kinds.add(kind)
            base = start_offset + position
            pieces.append(EncodedPiece(data, len(probes), base + len(data), LineStarts(data, base)))
            position = end
        if len(kinds) == 1 and (learnt := kinds.pop()) != "numbers":
            self._learn(BlockShape(has_time=True, time_kind=learnt))
        return Encoded(pieces, [], 0)

    def _with_fields(self, block: bytes, start_offset: int) -> Encoded | None:
        probes = self._rows(block)
        if probes is None:
            return None
        kind = self._time_kind(list(map(_TIME, probes)))
        if kind is None:
            return self._without_time(block, start_offset, probes)
        spliced = self._splice_fields(block, probes)
        if spliced is None:
            return None
        present = self._presence(probes)
        if present is not None and kind != "numbers":
            self._learn(BlockShape(has_time=True, present=present, time_kind=kind))
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
        earlier one), each line gets that value (`times`), spliced in one ``%``. None for
        any other block: the line path decides. `rows` are the block's (`_rows`). What the
        block had in common is learnt for the next one (`_learn`)."""
        if not rows:
            return None
        probed = msgspec.json.encode(rows)  # what the rows hold, by name, in one call
        if len(probed) == 5 * len(rows) + 1:  # [[{}],[{}],...]
            present = (False,) * len(self.fields)  # no line has any of them
            own: OwnTimes | None = OwnTimes([], 0, "iso")
        else:
            if list(map(_TIME, rows)).count(msgspec.UNSET) != len(rows):
                return None
            found = self._presence(rows)
            if found is None:
                return None
            present = found
            own = self._own_times(rows, probed)
        if own is None:
            return None
        fields = members(
            f for f, there in zip(self.fields.items(), present, strict=True) if not there
        )
        if not own.values:  # no line has a time of its own: the read time, one splice
            suffix = self.clock.time_suffix + fields
            if not lines_within(block, self.max_event - len(suffix)):
                return None
            spliced = splice_lines(block, len(rows), suffix)
            if spliced is None:
                return None
            self.missing += len(rows)
            self._learn(BlockShape(has_time=False, present=present))
            return Encoded(cut(spliced, start_offset, len(suffix), self.piece_bytes), [], 0)
        encoded = self._with_own_times(block, start_offset, len(rows), own.values, fields)
        if encoded is not None and own.kind is not None:
            self._learn(BlockShape(False, present, own.candidate, own.kind))
        return encoded

    def _with_own_times(
        self, block: bytes, start_offset: int, lines: int, values: list[Any], fields: bytes
    ) -> Encoded | None:
        """Each of `lines` lines with its own time's value (and the static `fields`) before
        its closing brace: one ``%`` when the values are of one width, else one join of the
        lines' bodies and values, cut event by event."""
        head, tail = b"," + self.time_key + b":", fields + b"}\n"  # around each value
        values = list(map(bytes, values))
        widths = set(map(len, values))
        growth: int | None = None
        if len(widths) == 1:  # times written alike (the common case): each line grows alike
            growth = len(head) + widths.pop() + len(tail) - 2
            if not lines_within(block, self.max_event - growth):
                return None
            insert = head + b"%b" + fields.replace(b"%", b"%%")
            data = splice_formatted(block, lines, insert, tuple(values))
            if data is not None:
                return Encoded(cut(data, start_offset, growth, self.piece_bytes, lines), [], 0)
        rows = block.split(b"\n")  # one byte: a memchr from line to line
        rows.pop()
        if len(rows) != lines or bytes(map(_LAST, rows)) != b"}" * len(rows):
            return None  # every line must end in its brace
        ends = bytes(map(_BEFORE_LAST, rows))  # the byte before each closing brace
        if any(before in ends for before in UNSPLICEABLE):
            return None
        bodies = list(map(_BODY, rows))
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

    def _own_times(self, rows: list[Any], probed: bytes | None = None) -> OwnTimes | None:
        """Each line's own time as the JSON value for the time field, when every line has it
        under the same candidate name (and none under an earlier one), well inside the
        window; no values when no line has any; None otherwise. `probed`: the rows encoded
        by msgspec, where a name no row holds does not appear (its column is not read)."""
        if not self.candidates:
            return OwnTimes([], 0, "iso")
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
                return OwnTimes(raws, index, "iso") if self.clock.well_inside(times) else None
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
            kinds = set(map(type, numbers))
            kind: OwnKind | None = (
                "int" if kinds == {int} else "float" if kinds == {float} else None
            )
            return OwnTimes(values, index, kind)
        return OwnTimes([], 0, "iso")

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
        present = self._presence(probes)
        if present is None:
            return None
        return members(
            f for f, there in zip(self.fields.items(), present, strict=True) if not there
        )

    def _presence(self, probes: list[Any]) -> tuple[bool, ...] | None:
        """Each static field: in every line (True) or in none; None when only in some."""
        present: list[bool] = []
        for index in range(1, len(self.fields) + 1):
            values = map(attrgetter(f"probe.f{index}"), probes)
            count = len(probes) - list(values).count(msgspec.UNSET)
            if count not in (0, len(probes)):
                return None
            present.append(count != 0)
        return tuple(present)


DECODE_CHUNK = 64 * 1024
"""Rows are read, and values spliced, this much at a time: the row text and its rows stay in
the CPU's cache (a 375 KB block read whole costs about 1.5x as much), and a splice's
``%`` writes no buffer big enough to be mapped afresh (page faults: about 1.5x again)."""


def _rows_in_chunks(
    decoder: msgspec.json.Decoder[list[Any]], block: bytes, chunk_bytes: int = DECODE_CHUNK
) -> tuple[list[Any], list[tuple[int, int]]] | None:
    """`_rows_without_sentinel` of `block`, `chunk_bytes` of whole lines at a time, and
    where each chunk ends, with its number of lines."""
    rows: list[Any] = []
    ends: list[tuple[int, int]] = []
    position = 0
    while position < len(block):
        end = piece_end(block, position, chunk_bytes)
        whole = position == 0 and end == len(block)
        chunk = _rows_without_sentinel(decoder, block if whole else block[position:end])
        if chunk is None:
            return None
        rows += chunk
        ends.append((end, len(chunk)))
        position = end
    return (rows, ends) if rows else None


def _splice_chunks(
    block: bytes, ends: list[tuple[int, int]], lines: int, insert: bytes, args: tuple[object, ...]
) -> bytes | None:
    """`splice_formatted` over `block`, whose braces close its lines (`braces_close_lines`,
    checked), a chunk at a time (`_flat_rows`' `ends`), each with its lines' share of `args`,
    `lines` lines in all: the ``%`` checks that each chunk holds a brace per line read."""
    per_line = len(args) // lines
    parts: list[bytes] = []
    start, first = 0, 0
    for end, count in ends:
        chunk = block if start == 0 and end == len(block) else block[start:end]
        done = first + count * per_line
        part = format_at_braces(chunk, insert, args[first:done])
        if part is None:
            return None
        parts.append(part)
        start, first = end, done
    return parts[0] if len(parts) == 1 else b"".join(parts)


def _flat_rows(
    decoder: msgspec.json.Decoder[Any], block: bytes
) -> tuple[list[Any], list[tuple[int, int]]] | None:
    """Each line of `block` as its probe (`shape_lines_decoder`), read with ``decode_lines``
    straight from the block's bytes a `DECODE_CHUNK` of whole lines at a time, and where each
    chunk ends, with its number of probes; None when msgspec refuses a chunk or a line is
    nested too deep (`shallow`).

    For a block whose braces close its lines (`braces_close_lines`, checked by the caller):
    each object's closing brace is then the last byte of a line, one line's at most, so the
    objects lie in lines of their own, in order, and they number the lines exactly when each
    line holds one object. ``decode_lines`` takes any whitespace for a line break (a blank
    line is skipped; an object may span lines), so the caller must still count the block's
    newlines and compare (`_counted`: the pieces' own counts). No row text is built."""
    view = memoryview(block)
    rows: list[Any] = []
    ends: list[tuple[int, int]] = []
    position = 0
    while position < len(block):
        end = piece_end(block, position, DECODE_CHUNK)
        try:
            chunk = decoder.decode_lines(view[position:end])
        except _DECODING:
            return None
        rows += chunk
        ends.append((end, len(chunk)))
        position = end
    if not rows:
        return None
    # Once `_counted` has vouched for a line per object, each line's only ``}`` closes its
    # object: no object nests in another, so only arrays can nest (`shallow` assumes a line
    # per object too: with more objects than lines, `_counted` refuses).
    return (rows, ends) if b"[" not in block or shallow(block, len(rows)) else None


def _counted(pieces: list[EncodedPiece], lines: int) -> Encoded | None:
    """`pieces` as the block's events when they hold `lines` events, counted by `cut` in their
    bytes: the check `_flat_rows` leaves to its caller (a blank line, or an object spanning
    lines, makes the count differ). None otherwise."""
    if sum(map(_EVENTS, pieces)) != lines:
        return None
    return Encoded(pieces, [], 0)


def _rows_without_sentinel(
    decoder: msgspec.json.Decoder[list[Any]], data: bytes
) -> list[Any] | None:
    """One row per line of `data` (whole lines: it ends in a newline), read by `decoder`, as
    `JsonBlocks.probe` reads them but without the last row standing in for the last
    separator's element (a shaped row requires members ``{}`` has not): the separator's
    ``,[`` is left out instead. None when that cannot be vouched for."""
    rows_text = data.replace(b"\n", ROW_SEPARATOR)
    lines = (len(rows_text) - len(data)) // (len(ROW_SEPARATOR) - 1)
    try:
        rows = decoder.decode(b"".join((b"[[", memoryview(rows_text)[:-2], b"]")))
    except _DECODING:
        return None
    return rows if len(rows) == lines and shallow(data, lines) else None


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
