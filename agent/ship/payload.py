"""`Payload`: what one request carries, as a value the whole ship chain passes around.

A payload is NDJSON events for one connection, held as the NDJSON itself, as its gzip, or
both, plus where each event came from (for dead letters and the spool). A live batch becomes
one when a worker takes it; a spool file is read back as one. Its compressed form is what
goes on the wire and what the spool writes, as it is: nothing inflates a payload except a
split, a dead letter, the origins of a spool write, or an endpoint that takes no gzip.

Origins come in two shapes, both cheap to keep: a batch's pieces (runs of bytes, each from
one file, with offsets computed from the NDJSON only when asked) and a spool file's (runs of
events, offsets listed).
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final

from agent.records import Batch, LineStarts, Origin
from agent.ship.compress import gunzip

Span = tuple[int, int]
"""[start, end) byte range of a payload's NDJSON."""

UNKNOWN: Final = ("", -1)
"""The (path, offset) of an event whose origin was not kept."""


class PayloadDamaged(Exception):
    """A compressed payload that does not inflate (a spool file written wrong)."""


@dataclass(frozen=True, slots=True)
class PieceOrigins:
    """A batch's origins: runs of `size` bytes of NDJSON, each from one file (None: unknown).
    Lazy offsets (`LineStarts`) are kept unbound and read the NDJSON given to each call, so
    a payload whose NDJSON was dropped for its gzip holds no second copy of it."""

    runs: tuple[tuple[int, Origin | None], ...]

    def locate(self, body: bytes, position: int) -> tuple[str, int]:
        begin = 0
        for size, origin in self.runs:
            if position < begin + size:
                if origin is None:
                    return UNKNOWN
                offsets = _bound(origin, body, begin)
                index = body.count(b"\n", begin, position)
                # a piece with more lines than offsets (a hand-made spool or letter): unknown
                return (origin.path, offsets[index]) if index < len(offsets) else UNKNOWN
            begin += size
        return UNKNOWN

    def select(self, body: bytes, spans: Sequence[Span]) -> tuple[Origin, ...]:
        if list(spans) == [(0, len(body))] and all(o is not None for _, o in self.runs):
            begin, whole = 0, []
            for size, origin in self.runs:
                assert origin is not None
                whole.append(Origin(origin.path, _bound(origin, body, begin)))
                begin += size
            return tuple(whole)
        return _by_event(self, body, spans)


@dataclass(frozen=True, slots=True)
class EventOrigins:
    """A spool file's origins: the events in order, `len(origin.offsets)` from each origin."""

    origins: tuple[Origin, ...] = ()

    def locate(self, body: bytes, position: int) -> tuple[str, int]:
        index = body.count(b"\n", 0, position)
        for origin in self.origins:
            if index < len(origin.offsets):
                return origin.path, origin.offsets[index]
            index -= len(origin.offsets)
        return UNKNOWN

    def select(self, body: bytes, spans: Sequence[Span]) -> tuple[Origin, ...]:
        if list(spans) == [(0, len(body))]:
            return self.origins
        return _by_event(self, body, spans)


Origins = PieceOrigins | EventOrigins


class Payload:
    """NDJSON events for one connection: `body`, its `gzipped` form, or both; a value.

    Equal payloads carry the same events from the same origins to the same connection,
    however they are held."""

    __slots__ = ("_body", "_gzipped", "_size", "connection", "events", "origins")

    def __init__(
        self,
        connection: str,
        body: bytes | None,
        events: int,
        origins: Origins | tuple[Origin, ...] = (),
        *,
        gzipped: bytes | None = None,
        size: int | None = None,
    ) -> None:
        if body is None and gzipped is None:
            raise ValueError("a payload needs its body or its gzip")
        self.connection = connection
        self.events = events
        self.origins: Origins = (
            origins if isinstance(origins, PieceOrigins | EventOrigins) else EventOrigins(origins)
        )
        self._body = body
        self._gzipped = gzipped
        self._size = size

    @classmethod
    def of_batch(cls, batch: Batch, connection: str) -> Payload:
        """The payload of a live batch: its joined pieces and their origins."""
        body = batch.payload()
        runs: list[tuple[int, Origin | None]] = []
        for size, origin in zip(batch.sizes, batch.origins, strict=True):
            if origin is not None and isinstance(origin.offsets, LineStarts):
                origin = Origin(origin.path, origin.offsets.within(b"", 0))  # unbound
            runs.append((size, origin))
        return cls(connection, body, batch.events, PieceOrigins(tuple(runs)), size=len(body))

    def __repr__(self) -> str:
        form = "gzip" if self._gzipped is not None else "ndjson"
        return f"<Payload {self.connection} events={self.events} bytes={self.size} {form}>"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Payload):
            return NotImplemented
        return (self.connection, self.events, self.origins, self.body) == (
            other.connection,
            other.events,
            other.origins,
            other.body,
        )

    __hash__ = None  # type: ignore[assignment]

    @property
    def size(self) -> int:
        """Bytes of NDJSON (what `bytes_delivered` counts), known without inflating: from the
        gzip trailer when only the gzip is held."""
        if self._size is None:
            if self._body is not None:
                self._size = len(self._body)
            else:
                assert self._gzipped is not None
                self._size = int.from_bytes(self._gzipped[-4:], "little")
        return self._size

    @property
    def gzipped(self) -> bytes | None:
        """The compressed form, when there is one."""
        return self._gzipped

    @property
    def body(self) -> bytes:
        """The NDJSON, inflated from the gzip when only that is held (not kept: a new copy
        per call, so call it once and pass the bytes on). PayloadDamaged if it won't inflate."""
        if self._body is not None:
            return self._body
        assert self._gzipped is not None
        try:
            return gunzip(self._gzipped)
        except (OSError, EOFError, zlib.error) as exc:
            raise PayloadDamaged(f"gzip body does not inflate: {exc}") from None

    def compressed(self, gzipped: bytes) -> Payload:
        """This payload holding only `gzipped` (its NDJSON dropped: all a retry needs)."""
        return Payload(
            self.connection, None, self.events, self.origins, gzipped=gzipped, size=self.size
        )

    def inflated(self) -> Payload:
        """This payload holding its NDJSON (for an endpoint that takes no gzip)."""
        if self._body is not None:
            return self
        return Payload(self.connection, self.body, self.events, self.origins, size=self.size)

    def locate(self, position: int, body: bytes | None = None) -> tuple[str, int]:
        """The source file and offset of the event at byte `position` of the NDJSON."""
        return self.origins.locate(self.body if body is None else body, position)

    def part(self, body: bytes, span: Span) -> Payload:
        """The events in `span` of `body` (this payload's NDJSON), as a payload of their own:
        a split half. Its origins are not kept: the splitter locates through the whole."""
        start, end = span
        piece = body[start:end]
        return Payload(self.connection, piece, piece.count(b"\n"), size=end - start)

    def rest(self, body: bytes, spans: Sequence[Span]) -> Payload:
        """The events in `spans` of `body` with their origins: what is left to spool after a
        split delivered or dead-lettered the others."""
        if list(spans) == [(0, len(body))]:
            return self
        rest = b"".join(body[a:b] for a, b in spans)
        origins = self.origins.select(body, spans)
        return Payload(self.connection, rest, rest.count(b"\n"), origins, size=len(rest))


def _bound(origin: Origin, body: bytes, begin: int) -> Sequence[int]:
    """`origin`'s offsets reading `body`, where its run starts at `begin`."""
    offsets = origin.offsets
    return offsets.within(body, begin) if isinstance(offsets, LineStarts) else offsets


def _by_event(origins: Origins, body: bytes, spans: Iterable[Span]) -> tuple[Origin, ...]:
    """The origins of the events in `spans`, one event at a time: only after a split."""
    runs: list[tuple[str, list[int]]] = []
    for start, end in spans:
        position = start
        while position < end:
            path, offset = origins.locate(body, position)
            if runs and runs[-1][0] == path:
                runs[-1][1].append(offset)
            else:
                runs.append((path, [offset]))
            position = body.index(b"\n", position, end) + 1
    return tuple(Origin(path, offsets) for path, offsets in runs)
