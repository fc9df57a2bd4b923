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


async def test_a_get_that_times_out_or_is_cancelled_leaves_no_waiter_behind() -> None:
    queue: ByteQueue[str] = ByteQueue(100)
    assert await queue.get(0.01) is None
    waiting = asyncio.create_task(queue.get(None))
    await asyncio.sleep(0)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert "waiting=0" in repr(queue)
    await queue.put("h", 10)
    assert await queue.get(0.0) == "h"


async def test_taking_a_ready_item_makes_room_for_a_waiting_put() -> None:
    queue: ByteQueue[str] = ByteQueue(100)
    assert queue.take_ready() is None
    await queue.put("i", 60)
    putting = asyncio.create_task(queue.put("j", 60))
    await asyncio.sleep(0)
    assert not putting.done()
    assert queue.take_ready() == "i"
    await putting
    assert queue.take_ready() == "j" and queue.bytes == 0


async def test_closing_wakes_a_put_waiting_for_room_and_refuses_its_item() -> None:
    queue: ByteQueue[str] = ByteQueue(100)
    await queue.put("k", 60)
    putting = asyncio.create_task(queue.put("l", 60))
    await asyncio.sleep(0)
    await queue.close()
    with pytest.raises(QueueClosed):
        await putting
    assert await queue.get(None) == "k"
    assert await queue.get(None) is None and queue.drained


async def test_room_made_for_one_waiting_put_is_seen_by_every_waiting_put() -> None:
    """Two readers wait for room; what one item's leaving frees fits the second, not the
    first: the second must not wait for a later change (a wake-one queue would wake only
    the first, which waits again)."""
    queue: ByteQueue[str] = ByteQueue(100)
    await queue.put("m", 50)
    await queue.put("n", 50)
    big = asyncio.create_task(queue.put("big", 60))
    small = asyncio.create_task(queue.put("small", 40))
    await asyncio.sleep(0)
    assert queue.take_ready() == "m"
    for _ in range(3):
        await asyncio.sleep(0)
    assert small.done() and not big.done()
    assert [queue.take_ready(), queue.take_ready()] == ["n", "small"]
    await big
