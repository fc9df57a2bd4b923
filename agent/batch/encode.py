"""Raw lines -> NDJSON events, as the source's options require and no more.

This is the per-line hot path. A JSON line is validated with ``orjson.loads`` (cheap) but
forwarded as the original bytes; static fields and a missing event time are spliced in before
the closing brace instead of re-serializing the object.
"""

from __future__ import annotations

import re
import time
from array import array
from bisect import bisect_right
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import accumulate, compress, repeat
from operator import add, attrgetter, sub
from typing import Any, Final

import msgspec
import orjson

from agent.config import SourceConfig
from agent.parse.timestamps import iso_from_millis, millis_from_datetime, time_parser
from agent.records import LineStarts

NOW = Callable[[], float]

MAX_NESTING_DEPTH: Final = 128
"""Arrays and objects nested deeper than this make a JSON line `too_deeply_nested` (dead
letter). Serde's default (Vector's JSON) is the same 128; orjson.dumps stops at 255, msgspec at
whatever is left of Python's recursion limit: with the bound checked first, no line can reach
either, whatever the stack depth of the caller."""

TOO_DEEPLY_NESTED: Final = "too_deeply_nested"
INVALID_TIME: Final = "invalid_time"
RAW_TIME_SUFFIX: Final = "_raw"
"""An event's own time that no reader understands moves to ``<time_field>_raw``."""


@dataclass(frozen=True, slots=True)
class Rejected:
    """A line that cannot become an event; it goes to a dead letter with `reason`."""

    reason: str
    offset: int  # where the line starts in its file
    data: bytes
    detail: str = ""


@dataclass(frozen=True, slots=True)
class EncodedPiece:
    data: bytes  # NDJSON, every event ending in a newline; may be empty
    events: int
    end_offset: int  # first file byte after the last line this piece covers
    offsets: Sequence[int]  # where each event's line starts, for dead letters of refused events


@dataclass(frozen=True, slots=True)
class Encoded:
    pieces: list[EncodedPiece]
    rejected: list[Rejected]
    blank: int  # empty lines: they carry nothing, so they are skipped (and counted)


def iso_utc(epoch: float) -> str:
    """``2026-11-26T01:02:03.456Z`` for a `time.time()` value."""
    return iso_from_millis(int(epoch * 1000))


class Encoder:
    """Turns blocks of whole lines from one source into pieces of at most `piece_bytes`."""

    def __init__(
        self,
        source: SourceConfig,
        *,
        max_event_bytes: int,
        piece_bytes: int,
        now: NOW = time.time,
    ) -> None:
        self._json = source.format == "json"
        self._time_field = source.time_field
        self._time_key = orjson.dumps(source.time_field)
        self._fields = dict(source.fields)
        self._fields_suffix = _members(self._fields.items())
        self._max_event = max_event_bytes - 1  # room for the newline
        self._max_line = min(source.max_line_bytes, self._max_event)
        self._piece_bytes = piece_bytes
        self._now = now
        self._stamp = ""
        row = _row_type(source.time_field, list(self._fields))
        self._rows: msgspec.json.Decoder[list[Any]] = msgspec.json.Decoder(
            list[row]  # type: ignore[valid-type]
        )
        # Polaris silently drops events outside the job's late/early windows: refuse them here,
        # with a dead letter, instead.
        self._late_ms = int(source.late_window * 1000)
        self._early_ms = int(source.early_window * 1000)
        self._times = time_parser("auto", UTC)
        self._raw_time_key = source.time_field + RAW_TIME_SUFFIX
        self._now_ms = 0
        # Times safely inside the window, for whole blocks: aware, and naive (read as UTC).
        self._inside = (_EPOCH, _EPOCH)
        self._inside_naive = (_EPOCH.replace(tzinfo=None), _EPOCH.replace(tzinfo=None))
        self._time_unparsed = 0
        self._set_clock()

    @property
    def max_line_bytes(self) -> int:
        """The source's limit, or less when a line that long could never fit a request."""
        return self._max_line

    def take_counts(self) -> dict[str, int]:
        """Counter increments since the last call (only those that moved), named as the
        parsing path's (`ParsedEncoder.take_counts`): ``time_unparsed``, events whose own time
        no reader understood, sent with the read time and their value under
        ``<time_field>_raw``."""
        moved, self._time_unparsed = self._time_unparsed, 0
        return {"time_unparsed": moved} if moved else {}

    def encode(self, block: bytes, start_offset: int) -> Encoded:
        """`block` holds whole lines, each ending in a newline, starting at `start_offset`."""
        self._set_clock()
        whole = (self._json_block if self._json else self._text_blocks)(block, start_offset)
        if whole is not None:
            return whole
        return self._line_by_line(block, start_offset)

    def _set_clock(self) -> None:
        """The read time for events without one, and the window's edges, once per block."""
        now = self._now()
        self._stamp = iso_utc(now)
        self._time_suffix = b"," + self._time_key + b":" + orjson.dumps(self._stamp)
        self._now_ms = int(now * 1000)
        margin = 86400  # a day inside each edge: the line path rounds to milliseconds
        earliest = _EPOCH + timedelta(seconds=now - self._late_ms / 1000 + margin)
        latest = _EPOCH + timedelta(seconds=min(now + self._early_ms / 1000 - margin, _LAST))
        self._inside = (earliest, latest)
        self._inside_naive = (earliest.replace(tzinfo=None), latest.replace(tzinfo=None))

    def _text_blocks(self, block: bytes, start_offset: int) -> Encoded | None:
        """`_text_block` over slices of about TEXT_SLICE bytes: its per-line objects (str,
        bytes, offsets) are many, and a slice at a time keeps their peak memory small."""
        pieces: list[EncodedPiece] = []
        blank = 0
        position = 0
        while position < len(block):
            end = block.rfind(b"\n", position, position + TEXT_SLICE) + 1 or len(block)
            encoded = self._text_block(block[position:end], start_offset + position)
            if encoded is None:
                return None
            pieces += encoded.pieces
            blank += encoded.blank
            position = end
        return Encoded(pieces, [], blank)

    def _text_block(self, block: bytes, start_offset: int) -> Encoded | None:
        """Text lines without a Python step per line: the block is decoded once, each line
        JSON-escaped by `orjson.dumps` mapped over them, and the events joined around them;
        blank lines are masked out and a CR before the newline dropped, as line by line. A
        block with a long line or bytes that are not UTF-8 returns None and goes line by
        line."""
        if not _lines_within(block, self._max_line):
            return None
        tidy = b"\r" not in block and not _BLANK_LINE.search(block) and not block[:1].isspace()
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
        tail = self._time_suffix + self._fields_suffix + b"}\n"
        if max(map(len, messages)) + len(head) + len(tail) - 1 > self._max_event:
            return None
        data = head + (tail + head).join(messages) + tail
        sizes = list(accumulate(map(add, map(len, messages), repeat(len(head) + len(tail)))))
        return Encoded(_cut_events(data, sizes, starts, self._piece_bytes), [], blank)

    def _lines_and_starts(
        self, block: bytes, start_offset: int, *, tidy: bool
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

    def _json_block(self, block: bytes, start_offset: int) -> Encoded | None:
        """The common case at C speed: every line one JSON object whose time is an ISO string
        well inside Polaris' late/early window. The lines are forwarded as they are, cut into
        pieces, each piece validated by msgspec in one call (`_probe`); the static fields are
        spliced with one `bytes.replace`. Any other block (a blank, broken or long line, a
        CR, a missing or numeric time, a time near an edge) returns None and the line-by-line
        path decides each line; so does a block `_unremarkable` cannot vouch for."""
        if b"\r" in block or not _lines_within(block, self._max_line):
            return None
        if not _unremarkable(block):
            return None
        if self._fields:
            return self._json_block_with_fields(block, start_offset)
        pieces: list[EncodedPiece] = []
        position = 0
        while position < len(block):
            end = _piece_end(block, position, self._piece_bytes)
            data = block if position == 0 and end == len(block) else block[position:end]
            probes = self._probe(data)
            if probes is None:
                return None
            base = start_offset + position
            pieces.append(EncodedPiece(data, len(probes), base + len(data), LineStarts(data, base)))
            position = end
        return Encoded(pieces, [], 0)

    def _json_block_with_fields(self, block: bytes, start_offset: int) -> Encoded | None:
        probes = self._probe(block)
        if probes is None:
            return None
        spliced = self._splice_fields(block, probes)
        if spliced is None:
            return None
        growth = (len(spliced) - len(block)) // len(probes)
        return Encoded(_cut(spliced, start_offset, growth, self._piece_bytes), [], 0)

    def _probe(self, data: bytes) -> list[Any] | None:
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
        count, and `_unremarkable` sends any block holding one line by line.

        The time is decoded by msgspec as an RFC 3339 datetime, in C: anything else (a
        number, an object, a date that does not exist) fails the block, and the line path
        decides. msgspec bounds its own nesting only by what is left of the recursion limit;
        `_unremarkable` bounded it before, and a RecursionError is one more reason to go
        line by line, never an exception out of here.
        """
        rows_text = data.replace(b"\n", _ROW_SEPARATOR)
        lines = (len(rows_text) - len(data)) // (len(_ROW_SEPARATOR) - 1)
        try:
            rows = self._rows.decode(b"".join((b"[[", rows_text, b"{}]]")))
        except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
            return None
        rows.pop()
        if len(rows) != lines:
            return None
        times = list(map(_TIME, rows))
        if None in times or msgspec.UNSET in times:
            return None  # a time missing or null: decided line by line
        return rows if self._well_inside(times) else None

    def _well_inside(self, times: list[datetime]) -> bool:
        """Every time a day or more inside the late/early window (those near an edge are
        checked exactly, line by line). Naive times are read as UTC, as the line path does;
        naive and aware times in one block do not compare, and go line by line."""
        earliest, latest = self._inside if times[0].tzinfo else self._inside_naive
        try:
            return earliest < min(times) and max(times) < latest
        except TypeError:
            return False

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
        if not _lines_within(block, self._max_event - len(suffix)):
            return None
        # "}\n" ends lines only (a newline in a string is escaped): grown by one suffix per
        # object means every line ends in its brace, with no search of its own.
        spliced = block.replace(b"}\n", suffix + b"}\n")
        if len(spliced) != len(block) + len(suffix) * len(probes):
            return None
        return spliced

    def _common_suffix(self, probes: list[Any]) -> bytes | None:
        missing: list[tuple[str, object]] = []
        for index, (key, value) in enumerate(self._fields.items(), start=1):
            values = map(attrgetter(f"probe.f{index}"), probes)
            present = len(probes) - list(values).count(msgspec.UNSET)
            if present == 0:
                missing.append((key, value))
            elif present != len(probes):
                return None
        return _members(missing)

    def _line_by_line(self, block: bytes, start_offset: int) -> Encoded:
        time_suffix = self._time_suffix
        events: list[bytes] = []
        starts: list[int] = []
        piece_size = 0
        pieces: list[EncodedPiece] = []
        rejected: list[Rejected] = []
        blank = 0
        offset = start_offset
        to_event = self._json_event if self._json else self._text_event
        for line in block.split(b"\n")[:-1]:
            line_start = offset
            offset += len(line) + 1
            if line.endswith(b"\r"):
                line = line[:-1]
            if not line or line.isspace():
                blank += 1
                continue
            if len(line) > self._max_line:
                rejected.append(Rejected("line_too_long", line_start, line[: self._max_line]))
                continue
            event = to_event(line, time_suffix)
            if isinstance(event, str):
                rejected.append(Rejected(event, line_start, line))
                continue
            if len(event) > self._max_event:
                rejected.append(
                    Rejected("event_too_large", line_start, line, f"{len(event)} bytes encoded")
                )
                continue
            if events and piece_size + len(event) + 1 > self._piece_bytes:
                pieces.append(_piece(events, starts, line_start))
                events, starts, piece_size = [], [], 0
            events.append(event)
            starts.append(line_start)
            piece_size += len(event) + 1
        pieces.append(_piece(events, starts, offset))
        return Encoded(pieces, rejected, blank)

    def _json_event(self, line: bytes, time_suffix: bytes) -> bytes | str:
        """The event for one JSON line, or the reason it is refused.

        Nesting is bounded before anything recursive reads the line. The time: missing, null
        or empty gets the read time; one the agent can place (`auto`: ISO 8601, epoch numbers,
        the common log formats) is checked against the windows and left as it is; any other
        value (an object, a boolean, text that is no time) would fail or be dropped at
        Polaris, so the event gets the read time and keeps its value under
        ``<time_field>_raw``, counted as ``time_unparsed``."""
        if too_deep(line):
            return TOO_DEEPLY_NESTED
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError:
            return self._beyond_orjson(line, time_suffix)
        if type(obj) is not dict:
            return "not_a_json_object"
        suffix = b""
        key = self._time_field
        stamp = obj.get(key)
        if key not in obj:
            suffix = time_suffix
        elif stamp is None or stamp == "":  # present but null or empty: Polaris would fail
            obj[key] = self._stamp
            line = orjson.dumps(obj)
        else:
            millis = self._times.parse(stamp, self._now_ms)
            if millis is None:
                if self._raw_time_key in obj:
                    return INVALID_TIME  # keeping the value would overwrite another
                obj[key], obj[self._raw_time_key] = self._stamp, stamp
                self._time_unparsed += 1
                line = orjson.dumps(obj)
            else:
                outside = self._outside_window(millis)
                if outside is not None:
                    return outside
        if self._fields:
            if any(key in obj for key in self._fields):
                suffix += _members((k, v) for k, v in self._fields.items() if k not in obj)
            else:
                suffix += self._fields_suffix
        if not suffix:
            return line
        return _splice(line, suffix)

    def _beyond_orjson(self, line: bytes, time_suffix: bytes) -> bytes | str:
        """A line orjson refuses that the whole-block check would pass: a number beyond a
        double's range (``1e400``; msgspec skips numbers without converting them, Polaris
        reads it as infinity). Decided as that check does, on this line alone: forwarded as
        written, with a missing time or static fields spliced in, when it is one object
        with an RFC 3339 time inside the windows, or none; else ``invalid_json`` (a line
        that would need re-writing cannot be, without a parser that reads it)."""
        try:
            line.decode("utf-8")
            rows = self._rows.decode(b"".join((b"[[", line, _ROW_SEPARATOR, b"{}]]")))
        except (UnicodeDecodeError, msgspec.DecodeError, msgspec.ValidationError, RecursionError):
            return "invalid_json"
        if len(rows) != 2:
            return "invalid_json"
        probe = rows[0].probe
        stamp = probe.f0
        if stamp is None:
            return "invalid_json"
        suffix = b""
        if stamp is msgspec.UNSET:
            suffix = time_suffix
        else:
            outside = self._outside_window(millis_from_datetime(stamp, UTC))
            if outside is not None:
                return outside
        present = [
            getattr(probe, f"f{i}") is not msgspec.UNSET for i in range(1, len(self._fields) + 1)
        ]
        suffix += _members(
            f for f, found in zip(self._fields.items(), present, strict=True) if not found
        )
        return _splice(line, suffix) if suffix else line

    def _outside_window(self, millis: int) -> str | None:
        """ "too_late" / "too_early" for a time Polaris would drop silently."""
        if millis < self._now_ms - self._late_ms:
            return "too_late"
        if millis > self._now_ms + self._early_ms:
            return "too_early"
        return None

    def _text_event(self, line: bytes, time_suffix: bytes) -> bytes:
        message = orjson.dumps(line.decode("utf-8", "replace"))
        return b'{"message":' + message + time_suffix + self._fields_suffix + b"}"


def _members(fields: Iterable[tuple[str, object]]) -> bytes:
    """``,"k":v`` for each field: what `_splice` inserts."""
    return b"".join(b"," + orjson.dumps(k) + b":" + orjson.dumps(v) for k, v in fields)


def _splice(line: bytes, suffix: bytes) -> bytes:
    """Insert `suffix` (``,"k":v...``) before the object's closing brace."""
    body = line.rstrip()[:-1].rstrip()
    if body.endswith(b"{"):
        return body + suffix[1:] + b"}"
    return body + suffix + b"}"


_TIME = attrgetter("probe.f0")
_ROW_SEPARATOR = b"]\n,["
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_LAST: Final = 253_402_300_799  # 9999-12-31T23:59:59Z, the last second datetime can hold

_OPENERS_ONLY: Final = bytes(b for b in range(256) if b not in b"[{\n")
"""What `bytes.translate` deletes to leave only a block's ``[``, ``{`` and newlines."""
_BRACKETS_ONLY: Final = bytes(b for b in range(256) if b not in b"[{]}")
_STEPS: Final = bytes.maketrans(b"[{]}", b"\x02\x02\x00\x00")  # minus one: +1 / -1
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"?')
"""A JSON string, or an unterminated one to the end of the line: one pass, no backtracking."""
_ROW_BREAK = re.compile(rb"\}[ \t]*\][ \t]*,[ \t]*\[[ \t]*\{")
"""A line holding this could start a row of its own in `_probe` (a literal first: the
search skips from one ``}`` to the next in C)."""


def _unremarkable(block: bytes) -> bool:
    """Nothing in `block` that msgspec's whole-block check could pass and the line path
    refuse: bytes that are not UTF-8 (msgspec does not check strings it skips), a line with
    more than `MAX_NESTING_DEPTH` ``[``/``{`` (nesting can be no deeper than that count), or
    a `_ROW_BREAK`. Each a scan in C (about 0.8 ms a MB in all); False only costs the
    line-by-line path."""
    if not block.isascii():
        try:
            block.decode("utf-8")
        except UnicodeDecodeError:
            return False
    if not _lines_within(block.translate(None, _OPENERS_ONLY), MAX_NESTING_DEPTH):
        return False
    return _ROW_BREAK.search(block) is None


def nesting_depth(text: bytes) -> int:
    """How deep arrays and objects nest in `text`, brackets in strings not counted: a scan
    in C (strings removed, brackets kept, a running sum), no recursion. For text that is not
    JSON the count is still a bound that depends on the bytes only."""
    brackets = _STRING.sub(b"", text).translate(None, _BRACKETS_ONLY).translate(_STEPS)
    return max(accumulate(map(sub, brackets, repeat(1))), default=0)


def too_deep(line: bytes) -> bool:
    """Deeper than `MAX_NESTING_DEPTH`; counted exactly only for a line with that many
    ``[``/``{`` (no line with fewer can be so deep)."""
    if line.count(b"[") + line.count(b"{") <= MAX_NESTING_DEPTH:
        return False
    return nesting_depth(line) > MAX_NESTING_DEPTH


_BLANK_LINE = re.compile(rb"\n[ \t\x0b\x0c\r]*\n")  # a line of whitespace only
TEXT_SLICE = 64 * 1024


def _row_type(time_field: str, field_names: list[str]) -> type:
    """``[object]``, one line's row, holding a struct with only what the whole-block check
    looks at: the time (`f0`, an RFC 3339 datetime: anything else fails the block; None when
    null, UNSET when absent) and
    the static field names (`f1`..., UNSET when absent); other keys are validated, not
    built. Neither is tracked by the garbage collector: a million of them a second would
    only keep it busy."""
    fields: list[tuple[str, Any, Any]] = [("f0", datetime | None, msgspec.UNSET)]
    fields += [(f"f{i}", Any, msgspec.UNSET) for i in range(1, len(field_names) + 1)]
    names = [time_field, *field_names]
    probe = msgspec.defstruct(
        "Probe", fields, rename={f"f{i}": name for i, name in enumerate(names)}, gc=False
    )
    return msgspec.defstruct(
        "Row", [("probe", probe)], array_like=True, forbid_unknown_fields=True, gc=False
    )


def _lines_within(block: bytes, limit: int) -> bool:
    """No line of `block` is longer than `limit`: a jump of about `limit` bytes per step."""
    position, size = 0, len(block)
    while position < size:
        newline = block.rfind(b"\n", position, position + limit + 1)
        if newline == -1:
            return False
        position = newline + 1
    return True


def _cut_events(
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


def _cut(data: bytes, start_offset: int, growth: int, piece_bytes: int) -> list[EncodedPiece]:
    """Pieces of at most `piece_bytes` (or one event) from `data`, whose k-th event is the
    k-th line at `start_offset` grown by `growth` bytes."""
    pieces: list[EncodedPiece] = []
    position, events_before, size = 0, 0, len(data)
    while position < size:
        end = _piece_end(data, position, piece_bytes)
        chunk = data[position:end]
        events = chunk.count(b"\n")
        base = start_offset + position - events_before * growth
        events_before += events
        end_offset = start_offset + end - events_before * growth
        pieces.append(EncodedPiece(chunk, events, end_offset, LineStarts(chunk, base, growth)))
        position = end
    return pieces


def _piece_end(data: bytes, position: int, piece_bytes: int) -> int:
    """Where the piece starting at `position` ends: after the last whole line within
    `piece_bytes`, or after its first line when that alone is longer."""
    end = position + piece_bytes
    if end >= len(data):
        return len(data)
    newline = data.rfind(b"\n", position, end)
    return (newline if newline != -1 else data.index(b"\n", end)) + 1


def _piece(events: list[bytes], starts: list[int], end_offset: int) -> EncodedPiece:
    data = b"\n".join(events) + b"\n" if events else b""
    return EncodedPiece(data, len(events), end_offset, starts)
