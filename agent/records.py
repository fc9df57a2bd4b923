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
    of offsets per line would cost the hot path; a refused event is rare.
    """

    __slots__ = ("_base", "_data", "_growth")

    def __init__(self, data: bytes, base: int, growth: int = 0) -> None:
        self._data = data
        self._base = base
        self._growth = growth

    def __len__(self) -> int:
        return self._data.count(b"\n")

    @overload
    def __getitem__(self, index: int) -> int: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[int]: ...
    def __getitem__(self, index: int | slice) -> int | Sequence[int]:
        if isinstance(index, slice):
            return list(self)[index]
        if index < 0:
            index += len(self)
        position = 0
        for _ in range(index):
            position = self._data.index(b"\n", position) + 1
        return self._base + position - index * self._growth

    def __iter__(self) -> Iterator[int]:
        position, index = 0, 0
        while position < len(self._data):
            yield self._base + position - index * self._growth
            position = self._data.index(b"\n", position) + 1
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
    chunks: list[bytes] = field(default_factory=list)
    size: int = 0
    events: int = 0
    tickets: list[Ticket] = field(default_factory=list)
    origins: list[Origin | None] = field(default_factory=list)  # one per chunk

    def add(self, piece: Piece) -> None:
        self.chunks.append(piece.data)
        self.size += len(piece.data)
        self.events += piece.events
        self.tickets.append(piece.ticket)
        self.origins.append(piece.origin)

    def payload(self) -> bytes:
        return b"".join(self.chunks)

    def locate(self, position: int) -> tuple[str, int]:
        """The file and offset of the event starting at byte `position` of the payload;
        ("", -1) when unknown. Only called for refused events, so it may be slow."""
        for chunk, origin in zip(self.chunks, self.origins, strict=True):
            if position < len(chunk):
                if origin is None:
                    return "", -1
                index = chunk.count(b"\n", 0, position)
                return origin.path, origin.offsets[index]
            position -= len(chunk)
        return "", -1

    def __repr__(self) -> str:
        return f"<Batch #{self.seq} events={self.events} bytes={self.size}>"
