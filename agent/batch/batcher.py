"""Pieces -> batches: seal at `max_bytes` of NDJSON or `max_wait` after the first event."""

from __future__ import annotations

import asyncio
import time

import structlog

from agent.batch.queue import ByteQueue
from agent.config import BatchConfig
from agent.records import Batch, Piece

log = structlog.get_logger("agent.batcher")


class Batcher:
    """A batch's linger timer starts at its first piece; a full batch seals itself. Pieces
    for different connections (a source may name its own) never share a batch."""

    def __init__(self, max_bytes: int, max_wait: float) -> None:
        self.max_bytes = max_bytes
        self.max_wait = max_wait
        self._seq = 0
        self._open: dict[str, tuple[Batch, float]] = {}  # connection -> (batch, deadline)

    def __repr__(self) -> str:
        held = sum(batch.size for batch, _ in self._open.values())
        return f"<Batcher open={len(self._open)} bytes={held} max={self.max_bytes}>"

    def reconfigure(self, batch: BatchConfig) -> None:
        """A reloaded `[batch]`: batches opened from now on seal at the new size and wait;
        open ones keep the deadline they were given."""
        self.max_bytes = batch.max_bytes
        self.max_wait = batch.max_wait

    async def run(self, pieces: ByteQueue[Piece], batches: asyncio.Queue[Batch | None]) -> None:
        """Until `pieces` is closed and drained; then the partial batches are sealed and a None
        tells the senders there is nothing more."""
        while True:
            piece = pieces.take_ready()  # at full speed there is one: no deadline to compute
            if piece is None:
                piece = await pieces.get(self._timeout())
            if piece is None:
                await self._seal_due(batches, everything=pieces.drained)
                if pieces.drained:
                    await batches.put(None)
                    return
                continue
            batch = self._batch_for(piece.connection)
            if batch.events and batch.size + len(piece.data) > self.max_bytes:
                await self._seal(piece.connection, batches)
                batch = self._batch_for(piece.connection)
            batch.add(piece)
            if batch.size >= self.max_bytes:
                await self._seal(piece.connection, batches)

    def _timeout(self) -> float | None:
        if not self._open:
            return None
        return max(0.0, min(deadline for _, deadline in self._open.values()) - time.monotonic())

    def _batch_for(self, connection: str) -> Batch:
        found = self._open.get(connection)
        if found is None:
            self._seq += 1
            found = self._open[connection] = (
                Batch(self._seq, connection),
                time.monotonic() + self.max_wait,
            )
        return found[0]

    async def _seal(self, connection: str, batches: asyncio.Queue[Batch | None]) -> None:
        """Hand the batch on and wait until a sender took it: a sealed batch waits in the
        queue, not also in the batcher, while the pieces behind it stay bounded."""
        batch, _ = self._open.pop(connection)
        await batches.put(batch)
        await batches.join()

    async def _seal_due(self, batches: asyncio.Queue[Batch | None], *, everything: bool) -> None:
        now = time.monotonic()
        for connection, (_, deadline) in list(self._open.items()):
            if everything or deadline <= now:
                await self._seal(connection, batches)
