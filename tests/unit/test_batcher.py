"""Batcher: a lone piece leaves after `max_wait` while the queue stays open; a full batch
seals itself at once; pieces already queued are batched without waiting."""

from __future__ import annotations

import asyncio

from agent.batch.batcher import Batcher
from agent.batch.queue import ByteQueue
from agent.records import Batch, FileId, Piece, Ticket


def piece(n: int, size: int = 10) -> Piece:
    return Piece(b"x" * (size - 1) + b"\n", 1, Ticket(FileId(1), n * size))


async def test_a_trickle_leaves_after_max_wait_without_more_lines_or_a_close() -> None:
    pieces: ByteQueue[Piece] = ByteQueue(1000)
    batches: asyncio.Queue[Batch | None] = asyncio.Queue(1)
    batcher = asyncio.create_task(Batcher(100, 0.01).run(pieces, batches))
    await pieces.put(piece(1), 10)
    async with asyncio.timeout(5):  # a bound on a hang, not a timing assert
        sealed = await batches.get()
    assert sealed is not None and sealed.events == 1 and not pieces.drained
    batches.task_done()
    await pieces.close()
    async with asyncio.timeout(5):
        assert await batches.get() is None
    batches.task_done()
    await batcher


async def test_queued_pieces_fill_batches_to_the_byte_and_the_rest_waits_for_the_close() -> None:
    pieces: ByteQueue[Piece] = ByteQueue(1000)
    for n in range(25):
        await pieces.put(piece(n), 10)
    batches: asyncio.Queue[Batch | None] = asyncio.Queue(1)
    batcher = asyncio.create_task(Batcher(100, 3600).run(pieces, batches))
    sizes = []
    for _ in range(2):
        async with asyncio.timeout(5):
            sealed = await batches.get()
        assert sealed is not None
        sizes.append(sealed.size)
        batches.task_done()
    await pieces.close()
    async with asyncio.timeout(5):
        last = await batches.get()
    batches.task_done()
    assert last is not None and [*sizes, last.size] == [100, 100, 50]
    assert await batches.get() is None
    batches.task_done()
    await batcher
