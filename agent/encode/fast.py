"""Raw lines -> NDJSON events for sources that only forward JSON or wrap text: the hot path.

A JSON line is validated with ``orjson.loads`` (cheap) but forwarded as the original bytes;
static fields and a missing event time are spliced in before the closing brace instead of
re-serializing the object. Most blocks never reach the line path: a whole-block path
(`agent.encode.blocks`) vouches for all their lines at C speed.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any, Final

import msgspec
import orjson

from agent.config import SourceConfig
from agent.encode.blocks import JsonBlocks
from agent.encode.crlf import crlf_block
from agent.encode.cut import members, piece, splice
from agent.encode.halves import in_halves
from agent.encode.scan import (
    MAX_NESTING_DEPTH,
    ROW_SEPARATOR,
    TOO_DEEPLY_NESTED,
    BlockShape,
    renamable,
    rows_decoder,
    shape_rows_decoder,
    too_deep,
)
from agent.encode.textblocks import TextBlocks
from agent.encode.times import candidates, own_time
from agent.encode.values import NOTHING, NOW, Encoded, EncodedPiece, Rejected, json_text
from agent.encode.window import ReadClock, iso_utc
from agent.parse.timestamps import millis_from_datetime, time_parser

__all__ = ["MAX_NESTING_DEPTH", "Encoder", "iso_utc"]

INVALID_TIME: Final = "invalid_time"
RAW_TIME_SUFFIX: Final = "_raw"
"""An event's own time that no reader understands moves to ``<time_field>_raw``."""
UTF8_BOM: Final = b"\xef\xbb\xbf"
_CR: Final = b"\r"


def line_limit(source: SourceConfig, max_event_bytes: int) -> int:
    """The source's line limit, or less when a line that long could never fit a request."""
    return min(source.max_line_bytes, max_event_bytes - 1)


class Encoder:
    """Turns one file's blocks of whole lines into pieces of at most `piece_bytes`.

    Holds no line back (`pending_offset` is always None, `flush` has nothing to give), so
    every piece ends where its block ends. `strip_bom`: a UTF-8 byte order mark at offset 0
    is dropped (Polaris refuses it); the tailer asks for it, the path tests do not.
    """

    def __init__(
        self,
        source: SourceConfig,
        *,
        max_event_bytes: int,
        piece_bytes: int,
        now: NOW = time.time,
        strip_bom: bool = False,
    ) -> None:
        self._json = source.format == "json"
        self._time_field = source.time_field
        self._fields = dict(source.fields)
        self._fields_suffix = members(self._fields.items())
        self._max_event = max_event_bytes - 1  # room for the newline
        self._max_line = line_limit(source, max_event_bytes)
        self._piece_bytes = piece_bytes
        self._strip_bom = strip_bom
        self._candidates = candidates(source)
        self._clock = ReadClock(now, source.time_field, source.late_window, source.early_window)
        self._times = time_parser("auto", UTC)
        self._raw_time_key = source.time_field + RAW_TIME_SUFFIX
        self._time_key_json = json_text(source.time_field)
        self._time_unparsed = 0
        self._time_missing = 0
        limits = (self._max_line, self._max_event, piece_bytes, self._clock)
        self._rows: msgspec.json.Decoder[list[Any]] | None = None
        self._json_blocks: JsonBlocks | None = None
        if renamable((source.time_field, *self._fields, *self._candidates)):
            self._rows = rows_decoder(source.time_field, tuple(self._fields), self._candidates)
            self._json_blocks = JsonBlocks(
                self._rows,
                self._fields,
                *limits,
                time_key=self._time_key_json,
                candidates=tuple(map(json_text, self._candidates)),
                time_field=source.time_field,
                candidate_names=self._candidates,
            )
        self._text_blocks = TextBlocks(self._fields_suffix, *limits)
        self._whole = self._text_blocks.encode if not self._json else self._json_block_or_none

    def __repr__(self) -> str:
        kind = "json" if self._json else "text"
        return f"<Encoder {kind} max_line={self._max_line} piece_bytes={self._piece_bytes}>"

    @property
    def max_line_bytes(self) -> int:
        """The source's limit, or less when a line that long could never fit a request."""
        return self._max_line

    @property
    def pending_offset(self) -> int | None:
        return None  # nothing is ever held

    def next_flush(self) -> float | None:
        return None

    def flush(self, now: float | None = None, *, force: bool = False) -> Encoded:
        return NOTHING

    def take_counts(self) -> dict[str, int]:
        """Counter increments since the last call (only those that moved), named as the
        parsing path's (`ParsedEncoder.take_counts`): ``time_unparsed``, events whose own time
        no reader understood, sent with the read time and their value under
        ``<time_field>_raw``."""
        blocks = self._json_blocks
        missing = self._time_missing + (0 if blocks is None else blocks.missing)
        counts = {"time_unparsed": self._time_unparsed, "time_missing": missing}
        self._time_unparsed = self._time_missing = 0
        if blocks is not None:
            blocks.missing = 0
        return {name: count for name, count in counts.items() if count}

    def encode(self, block: bytes, start_offset: int) -> Encoded:
        """`block` holds whole lines, each ending in a newline, starting at `start_offset`."""
        if start_offset == 0 and self._strip_bom and block.startswith(UTF8_BOM):
            block, start_offset = block[len(UTF8_BOM) :], len(UTF8_BOM)
        self._clock.tick()
        return in_halves(
            self._block_path, self._line_by_line, block, start_offset, self._piece_bytes
        )

    def _block_path(self, block: bytes, start_offset: int) -> Encoded | None:
        """The whole-block path for JSON or text (None: it cannot vouch for `block`); a file
        of CRLF lines reads its blocks as LF lines (`agent.encode.crlf`)."""
        if _CR in block:  # memchr
            found = crlf_block(self._whole, block, start_offset)
            if found is not None:
                return found
        return self._whole(block, start_offset)

    def _json_block_or_none(self, block: bytes, start_offset: int) -> Encoded | None:
        """The whole-block JSON path, when the source's names allow it (`renamable`)."""
        blocks = self._json_blocks
        return None if blocks is None else blocks.encode(block, start_offset)

    def _json_block(self, block: bytes, start_offset: int) -> Encoded | None:
        """The whole-block JSON path alone (None: it cannot vouch for this block); a look,
        not a step: what it counts and the shape it learns are not kept."""
        blocks = self._json_blocks
        if blocks is None:
            return None
        missing, shape = blocks.missing, blocks.shape
        try:
            return blocks.encode(block, start_offset)
        finally:
            blocks.missing = missing
            if shape is None:
                blocks.shape = None
            else:
                blocks._learn(shape)

    def _text_block(self, block: bytes, start_offset: int) -> Encoded | None:
        """The whole-block text path over one slice alone (None: it cannot vouch for it)."""
        return self._text_blocks.block(block, start_offset)

    def _line_by_line(self, block: bytes, start_offset: int) -> Encoded:
        time_suffix = self._clock.time_suffix
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
                pieces.append(piece(events, starts, line_start))
                events, starts, piece_size = [], [], 0
            events.append(event)
            starts.append(line_start)
            piece_size += len(event) + 1
        pieces.append(piece(events, starts, offset))
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
            found = self._own_time(obj)
            if isinstance(found, str):
                return found
            suffix = found
        elif stamp is None or stamp == "":  # present but null or empty: Polaris would fail
            obj[key] = self._clock.stamp
            line = orjson.dumps(obj)
        else:
            millis = self._times.parse(stamp, self._clock.now_ms)
            if millis is None:
                if self._raw_time_key in obj:
                    return INVALID_TIME  # keeping the value would overwrite another
                obj[key], obj[self._raw_time_key] = self._clock.stamp, stamp
                self._time_unparsed += 1
                line = orjson.dumps(obj)
            else:
                outside = self._clock.outside(millis)
                if outside is not None:
                    return outside
        if self._fields:
            if any(key in obj for key in self._fields):
                suffix += members((k, v) for k, v in self._fields.items() if k not in obj)
            else:
                suffix += self._fields_suffix
        if not suffix:
            return line
        return splice(line, suffix)

    def _own_time(self, obj: dict[str, object]) -> bytes | str:
        """The time member for a line without the time field: its own time under the first
        candidate name that holds one (`agent.encode.times`), or else the read time (counted);
        a reason when its own time is outside the window."""
        for name in self._candidates:
            if name in obj:
                found = own_time(obj[name])
                if found is not None:
                    value, millis = found
                    outside = self._clock.outside(millis)
                    if outside is not None:
                        return outside
                    return b"," + self._time_key_json + b":" + value
        self._time_missing += 1
        return self._clock.time_suffix

    def _beyond_orjson(self, line: bytes, time_suffix: bytes) -> bytes | str:
        """A line orjson refuses that the whole-block check would pass: a number beyond a
        double's range (``1e400``; msgspec skips numbers without converting them, Polaris
        reads it as infinity). Decided as that check does, on this line alone: forwarded as
        written, with a missing time or static fields spliced in, when it is one object
        with an RFC 3339 time or an epoch number inside the windows, or none; else
        ``invalid_json`` (a line that would need re-writing cannot be, without a parser
        that reads it; nor can any such line of a source whose names msgspec cannot read,
        `renamable`)."""
        if self._rows is None:
            return "invalid_json"
        try:
            line.decode("utf-8")
            rows = self._rows.decode(b"".join((b"[[", line, ROW_SEPARATOR, b"{}]]")))
            probe = rows[0].probe if len(rows) == 2 else None
        except msgspec.ValidationError:  # (a DecodeError too: first)
            probe = self._text_timed_probe(line)  # as the block path reads text times
        except (UnicodeDecodeError, msgspec.DecodeError, RecursionError):
            return "invalid_json"
        if probe is None:
            return "invalid_json"
        stamp = probe.f0
        if stamp is None:
            return "invalid_json"
        suffix = b""
        if stamp is msgspec.UNSET:
            found = self._own_time_raw(probe)
            if found is None:
                return "invalid_json"
            if isinstance(found, str):
                return found
            suffix = found
        else:
            millis = (
                millis_from_datetime(stamp, UTC)
                if isinstance(stamp, datetime)
                else self._times.parse(stamp, self._clock.now_ms)  # a number, or text
            )
            if millis is None:
                return "invalid_json"  # its value would move to `_raw`: a re-write
            outside = self._clock.outside(millis)
            if outside is not None:
                return outside
        present = [
            getattr(probe, f"f{i}") is not msgspec.UNSET for i in range(1, len(self._fields) + 1)
        ]
        suffix += members(
            f for f, found in zip(self._fields.items(), present, strict=True) if not found
        )
        return splice(line, suffix) if suffix else line

    def _text_timed_probe(self, line: bytes) -> Any:
        """The probe of a line beyond orjson whose time is a string msgspec does not read as
        a datetime, read as `agent.encode.texttimes` reads such times (a source without
        static fields); None when it is not one object with such a time."""
        if self._fields:
            return None
        shape = BlockShape(has_time=True, time_kind="text")
        decoder = shape_rows_decoder(self._time_field, (), self._candidates, shape)
        try:
            rows = decoder.decode(b"".join((b"[[", line, b"]]")))
        except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
            return None
        return rows[0].probe if len(rows) == 1 else None

    def _own_time_raw(self, probe: Any) -> bytes | str | None:
        """`_own_time` for a line only msgspec reads, from its candidates' raw values in
        order (None when one before the first time is a value orjson refuses too: the line is
        ``invalid_json``)."""
        for index, name in enumerate(self._candidates, start=1):
            raw = getattr(probe, f"c{index}")
            if raw is msgspec.UNSET:
                continue
            try:
                value = orjson.loads(bytes(raw))
            except orjson.JSONDecodeError:
                return None
            if own_time(value) is not None:
                return self._own_time({name: value})
        return self._own_time({})

    def _text_event(self, line: bytes, time_suffix: bytes) -> bytes:
        message = orjson.dumps(line.decode("utf-8", "replace"))
        return b'{"message":' + message + time_suffix + self._fields_suffix + b"}"
