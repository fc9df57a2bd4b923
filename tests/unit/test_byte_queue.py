"""ByteQueue: bounded in bytes; `get` waits at most `max_wait`; closing drains then ends."""

from __future__ import annotations

import asyncio

import pytest

from agent.batch.queue import ByteQueue, QueueClosed


async def test_an_item_already_there_is_taken_even_with_no_time_to_wait() -> None:
    queue: ByteQueue[str] = ByteQueue(100)
    await queue.put("a", 10)
    assert await queue.get(0.0) == "a"
    assert queue.bytes == 0
    await asyncio.sleep(0)  # no timeout armed by that get may fire on this task later
    await asyncio.sleep(0)


async def test_an_empty_queue_gives_none_once_max_wait_passes() -> None:
    queue: ByteQueue[str] = ByteQueue(100)
    assert await queue.get(0.01) is None
    await queue.put("b", 10)
    assert await queue.get(0.01) == "b"


async def test_a_waiting_get_is_woken_by_a_put() -> None:
    queue: ByteQueue[str] = ByteQueue(100)
    waiting = asyncio.create_task(queue.get(None))
    await asyncio.sleep(0)
    assert not waiting.done()
    await queue.put("c", 10)
    assert await waiting == "c"


async def test_a_full_queue_holds_a_put_until_a_get_makes_room() -> None:
    queue: ByteQueue[str] = ByteQueue(100)
    await queue.put("d", 60)
    putting = asyncio.create_task(queue.put("e", 60))
    await asyncio.sleep(0)
    assert not putting.done() and len(queue) == 1
    assert await queue.get(None) == "d"
    await putting
    assert len(queue) == 1 and queue.bytes == 60


async def test_closing_drains_then_ends_and_refuses_puts() -> None:
    queue: ByteQueue[str] = ByteQueue(100)
    await queue.put("f", 10)
    await queue.close()
    with pytest.raises(QueueClosed):
        await queue.put("g", 10)
    assert await queue.get(5.0) == "f"
    assert await queue.get(5.0) is None
    assert queue.drained
