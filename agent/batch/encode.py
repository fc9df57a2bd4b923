"""Raw lines -> NDJSON events, as the source's options require and no more.

This is the per-line hot path. A JSON line is validated with ``orjson.loads`` (cheap) but
forwarded as the original bytes; static fields and a missing event time are spliced in before
the closing brace instead of re-serializing the object.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

import orjson

from agent.config import SourceConfig

NOW = Callable[[], float]


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
    offsets: list[int]  # where each event's line starts, for dead letters of refused events


@dataclass(frozen=True, slots=True)
class Encoded:
    pieces: list[EncodedPiece]
    rejected: list[Rejected]
    blank: int  # empty lines: they carry nothing, so they are skipped (and counted)


def iso_utc(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


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

    @property
    def max_line_bytes(self) -> int:
        """The source's limit, or less when a line that long could never fit a request."""
        return self._max_line

    def encode(self, block: bytes, start_offset: int) -> Encoded:
        """`block` holds whole lines, each ending in a newline, starting at `start_offset`."""
        self._stamp = iso_utc(self._now())
        time_suffix = b"," + self._time_key + b":" + orjson.dumps(self._stamp)
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
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError:
            return "invalid_json"
        if type(obj) is not dict:
            return "not_a_json_object"
        suffix = b""
        stamp = obj.get(self._time_field)
        if stamp is None or stamp == "":
            if self._time_field in obj:  # present but null or empty: Polaris would fail on it
                obj[self._time_field] = self._stamp
                line = orjson.dumps(obj)
            else:
                suffix = time_suffix
        if self._fields:
            if any(key in obj for key in self._fields):
                suffix += _members((k, v) for k, v in self._fields.items() if k not in obj)
            else:
                suffix += self._fields_suffix
        if not suffix:
            return line
        return _splice(line, suffix)

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


def _piece(events: list[bytes], starts: list[int], end_offset: int) -> EncodedPiece:
    data = b"\n".join(events) + b"\n" if events else b""
    return EncodedPiece(data, len(events), end_offset, starts)
