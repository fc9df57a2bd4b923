"""Values that move between the stages of the pipeline.

    files ──► readers ──► Piece ──► ByteQueue ──► Batcher ──► Batch ──► senders ──► Polaris
                              │                                  │
                           Ticket ◄──────── acknowledged ◄────────┘

A reader never hands on single lines: it hands on *pieces*, runs of whole encoded events from
one file, because per-line objects would cost more than the rest of the pipeline together.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import NewType, overload

FileId = NewType("FileId", int)
"""A tracked file for the life of the process: one per (content identity, generation)."""


@dataclass(slots=True, eq=False)
class Ticket:
    """The promise that a stretch of a file ends at `end_offset`; done once it is safe.

    Safe means acknowledged by Polaris (or written to a dead letter). The ack tracker turns
    tickets finishing in any order into a checkpoint that only ever covers a safe prefix.
    """

    file: FileId
    end_offset: int
    done: bool = False

    def __repr__(self) -> str:
        state = "done" if self.done else "pending"
        return f"<Ticket file={self.file} end={self.end_offset} {state}>"


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a piece's events came from: kept so that an event Polaris refuses can be
    dead-lettered with its file and offset, long after the reader moved on."""

    path: str
    offsets: Sequence[int]  # where each event's line starts in the file, one per event


class LineStarts(Sequence[int]):
    """The file offsets of a piece's events, computed only when asked for.

    For a piece whose events are its file's lines in order, each grown by the same spliced
    suffix, event k starts at `base + (its position in data) - k * growth`. Building a list
    of offsets per line would cost the hot path; a refused event is rare. The piece's bytes
    are `data[begin:end]`: once a batch joins its pieces, the offsets read the joined body
    (`within`) and the pieces themselves can be freed.
    """

    __slots__ = ("_base", "_begin", "_cr", "_data", "_end", "_growth", "_known")

    def __init__(
        self,
        data: bytes,
        base: int,
        growth: int = 0,
        begin: int = 0,
        end: int | None = None,
        known: list[list[int]] | None = None,
        cr: int = 0,
    ) -> None:
        self._data = data
        self._base = base
        self._growth = growth
        self._begin = begin
        self._end = len(data) if end is None else end
        self._cr = cr
        """1 when each line held a CR before its newline that the events do not show
        (`agent.encode.crlf`): every line is a byte longer in the file."""
        self._known: list[list[int]] = [] if known is None else known
        """Empty until an offset is asked for; then all of them (one list, shared with every
        rebinding): a 413 split looks up each event of the half it keeps, and walking the
        piece from its start for each was quadratic (~1 s of CPU for a 1 MB batch)."""

    def within(self, body: bytes, begin: int) -> LineStarts:
        """The same offsets, read from `body`, where this piece's bytes start at `begin`."""
        size = self._end - self._begin
        return type(self)(
            body, self._base, self._growth, begin, begin + size, self._known, self._cr
        )

    def after_crs(self, lines_before: int) -> LineStarts:
        """These offsets for a piece cut from a block read with its CRLFs made LFs: each line
        is a byte longer in the file, and `lines_before` lines of the block came before."""
        size = self._end - self._begin
        return type(self)(
            self._data, self._base + lines_before, self._growth, self._begin,
            self._begin + size, None, 1,
        )  # fmt: skip

    def __len__(self) -> int:
        if self._known:
            return len(self._known[0])
        return self._data.count(b"\n", self._begin, self._end)

    @overload
    def __getitem__(self, index: int) -> int: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[int]: ...
    def __getitem__(self, index: int | slice) -> int | Sequence[int]:
        return self._offsets()[index]

    def __iter__(self) -> Iterator[int]:
        return iter(self._offsets())

    def _offsets(self) -> list[int]:
        if not self._known:
            self._known.append(list(self._read_back()))
        return self._known[0]

    def _read_back(self) -> Iterator[int]:
        position, index = self._begin, 0
        while position < self._end:
            yield self._base + position - self._begin - index * (self._growth - self._cr)
            position = self._data.index(b"\n", position, self._end) + 1
            index += 1


@dataclass(frozen=True, slots=True)
class Piece:
    """Whole encoded events from one file; `data` is NDJSON, every event ending in a newline."""

    data: bytes
    events: int
    ticket: Ticket
    origin: Origin | None = None
    connection: str = ""  # the source's own Polaris connection; "" = polaris.connection

    def __repr__(self) -> str:
        return f"<Piece file={self.ticket.file} events={self.events} bytes={len(self.data)}>"


@dataclass(slots=True)
class Batch:
    """What one request carries, with the tickets it makes safe when acknowledged."""

    seq: int
    connection: str = ""  # "" = polaris.connection
    chunks: list[bytes] = field(default_factory=list)  # until `payload` joins them
    size: int = 0
    events: int = 0
    tickets: list[Ticket] = field(default_factory=list)
    origins: list[Origin | None] = field(default_factory=list)  # one per chunk
    sizes: list[int] = field(default_factory=list)  # one per chunk
    body: bytes | None = None  # the joined chunks, once `payload` was called

    def add(self, piece: Piece) -> None:
        data = piece.data
        size = len(data)
        self.chunks.append(data)
        self.sizes.append(size)
        self.size += size
        self.events += piece.events
        self.tickets.append(piece.ticket)
        self.origins.append(piece.origin)

    def payload(self) -> bytes:
        """The NDJSON body. Joining frees the pieces: a batch in flight holds its bytes once,
        not twice (the lazy offsets of its origins read the body instead)."""
        if self.body is not None:
            return self.body
        self.body = b"".join(self.chunks)
        self.chunks = []
        begin = 0
        for index, (size, origin) in enumerate(zip(self.sizes, self.origins, strict=True)):
            if origin is not None and isinstance(origin.offsets, LineStarts):
                moved = origin.offsets.within(self.body, begin)
                self.origins[index] = Origin(origin.path, moved)
            begin += size
        return self.body

    def locate(self, position: int) -> tuple[str, int]:
        """The file and offset of the event starting at byte `position` of the payload;
        ("", -1) when unknown. Only called for refused events, so it may be slow."""
        body = self.payload()
        begin = 0
        for size, origin in zip(self.sizes, self.origins, strict=True):
            if position < begin + size:
                if origin is None:
                    return "", -1
                index = body.count(b"\n", begin, position)
                return origin.path, origin.offsets[index]
            begin += size
        return "", -1

    def __repr__(self) -> str:
        return f"<Batch #{self.seq} events={self.events} bytes={self.size}>"
