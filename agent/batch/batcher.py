"""Pieces -> batches: seal at `max_bytes` of NDJSON or `max_wait` after the first event."""

from __future__ import annotations

import asyncio
import time

import structlog

from agent.batch.queue import ByteQueue
from agent.records import Batch, Piece

log = structlog.get_logger("agent.batcher")


class Batcher:
    """A batch's linger timer starts at its first piece; a full batch seals itself."""

    def __init__(self, max_bytes: int, max_wait: float) -> None:
        self.max_bytes = max_bytes
        self.max_wait = max_wait
        self._seq = 0

    async def run(self, pieces: ByteQueue[Piece], batches: asyncio.Queue[Batch | None]) -> None:
        """Until `pieces` is closed and drained; then the partial batch is sealed and a None
        tells the senders there is nothing more."""
        batch = self._new()
        deadline = 0.0
        while True:
            timeout = None if not batch.events else max(0.0, deadline - time.monotonic())
            piece = await pieces.get(timeout)
            if piece is None:
                if batch.events:
                    await batches.put(batch)
                    batch = self._new()
                if pieces.drained:
                    await batches.put(None)
                    return
                continue
            if batch.events and batch.size + len(piece.data) > self.max_bytes:
                await batches.put(batch)
                batch = self._new()
            if not batch.events:
                deadline = time.monotonic() + self.max_wait
            batch.add(piece)
            if batch.size >= self.max_bytes:
                await batches.put(batch)
                batch = self._new()

    def _new(self) -> Batch:
        self._seq += 1
        return Batch(self._seq)
