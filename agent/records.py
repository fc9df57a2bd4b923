"""Values that move between the stages of the pipeline.

    files ──► readers ──► Piece ──► ByteQueue ──► Batcher ──► Batch ──► senders ──► Polaris
                              │                                  │
                           Ticket ◄──────── acknowledged ◄────────┘

A reader never hands on single lines: it hands on *pieces*, runs of whole encoded events from
one file, because per-line objects would cost more than the rest of the pipeline together.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NewType

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
class Piece:
    """Whole encoded events from one file; `data` is NDJSON, every event ending in a newline."""

    data: bytes
    events: int
    ticket: Ticket

    def __repr__(self) -> str:
        return f"<Piece file={self.ticket.file} events={self.events} bytes={len(self.data)}>"


@dataclass(slots=True)
class Batch:
    """What one request carries, with the tickets it makes safe when acknowledged."""

    seq: int
    chunks: list[bytes] = field(default_factory=list)
    size: int = 0
    events: int = 0
    tickets: list[Ticket] = field(default_factory=list)

    def add(self, piece: Piece) -> None:
        self.chunks.append(piece.data)
        self.size += len(piece.data)
        self.events += piece.events
        self.tickets.append(piece.ticket)

    def payload(self) -> bytes:
        return b"".join(self.chunks)

    def __repr__(self) -> str:
        return f"<Batch #{self.seq} events={self.events} bytes={self.size}>"
