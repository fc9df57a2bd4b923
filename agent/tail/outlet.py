"""Where encoded lines leave the tailer: dead letters, tickets in file order, one callback.

The tailer is the only writer of tickets: it issues them in file order as pieces leave,
which is what lets the ack tracker turn out-of-order deliveries into in-order checkpoints.
A dead letter is written before any ticket that could make its line safe.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from agent.encode import Encoded, LineEncoder
from agent.records import FileId, Origin, Piece, Ticket
from agent.state.acks import AckTracker
from agent.state.deadletter import DeadLetters
from agent.tail.handoff import Handoffs
from agent.tail.reader import LongLine, Reader
from agent.tail.stats import TailStats

Emit = Callable[[Piece], Awaitable[None]]
"""The tailer's one outlet: a piece of encoded events with its ticket. The runtime hands it
to the queue; awaiting it is the back-pressure that stops reading when the queue is full."""


class Outlet:
    """Turns an encoder's result into dead letters, tickets and emitted pieces, and counts."""

    def __init__(
        self,
        acks: AckTracker,
        dead_letters: DeadLetters,
        emit: Emit,
        handoffs: Handoffs,
        stats: TailStats,
    ) -> None:
        self._acks = acks
        self._dead_letters = dead_letters
        self._emit = emit
        self._handoffs = handoffs
        self._stats = stats

    def __repr__(self) -> str:
        return f"<Outlet events={self._stats.events} rejected={self._stats.rejected}>"

    async def ship(
        self, reader: Reader, encoded: Encoded, encoder: LineEncoder, connection: str
    ) -> None:
        """Dead letters first (written before any ticket can make them safe), then a ticket
        per piece, in file order: what the ack tracker turns into checkpoints."""
        self._count(reader, encoded, encoder)
        for rejected in encoded.rejected:
            self._dead_letters.write(
                rejected.reason, reader.path, rejected.offset, rejected.data, rejected.detail
            )
        for piece in encoded.pieces:
            ticket = self.issue(reader.file_id, piece.end_offset)
            if piece.events == 0:
                self._acks.complete(ticket)  # nothing to send: safe as soon as earlier ones are
                continue
            origin = Origin(reader.path, piece.offsets)
            await self._emit(Piece(piece.data, piece.events, ticket, origin, connection))
        self._handoffs.released(reader.file_id, encoder.pending_offset)

    def issue(self, file_id: FileId, end_offset: int) -> Ticket:
        ticket = self._acks.issue(file_id, end_offset)
        self._handoffs.observe(file_id, ticket)
        return ticket

    def _count(self, reader: Reader, encoded: Encoded, encoder: LineEncoder) -> None:
        events = sum(p.events for p in encoded.pieces)
        stats = self._stats
        stats.events += events
        stats.rejected += len(encoded.rejected)
        stats.blank_lines += encoded.blank
        per_source = stats.source(reader.source)
        per_source.events += events
        for name, moved in encoder.take_counts().items():
            per_source.parsing[name] = per_source.parsing.get(name, 0) + moved

    def long_line(self, reader: Reader, line: LongLine, *, held: bool) -> None:
        """A line over the limit, read through without being held: once its newline is
        seen, dead-lettered with its head, length and offset, and the checkpoint may pass
        it (unless the encoder `held` earlier lines: its next piece covers it). Until then
        (the file ends inside it) nothing moves: a restart skips it again."""
        if not line.complete:
            return
        assert line.resume_at is not None
        per_source = self._stats.source(reader.source)
        per_source.lines += 1
        per_source.bytes_read += line.resume_at - line.start
        self._stats.bytes_read += line.resume_at - line.start
        self._stats.rejected += 1
        self._dead_letters.write(
            "line_too_long",
            reader.path,
            line.start,
            line.head,
            f"{line.length} bytes, longer than max_line_bytes={reader.max_line_bytes};"
            f" first {len(line.head)} bytes kept",
        )
        if not held:
            self._acks.complete(self.issue(reader.file_id, line.resume_at))
