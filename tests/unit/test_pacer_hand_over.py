"""A pacer whose host the sender left (a reload changed `polaris.url`) lets its waiters go.

The old host said `RateLimit-Remaining: 0` (or answered 429): every worker waits in that
host's pacer for its window to reset, up to two minutes. After a reload the requests go to
another host, whose budget is its own: `hand_over` ends those waits at once, and the caller
asks the pacer it sends by now. What the old pacer knows stays, for a reload back.
"""

from __future__ import annotations

import asyncio

from agent.ship.ratelimit import Pacer, RateLimitInfo

WINDOW = 60.0  # what the old host said is left of its window: far longer than any wait here


def exhausted(now: float = 1000.0) -> Pacer:
    pacer = Pacer(clock=lambda: now)
    pacer.observe(RateLimitInfo(limit=100, remaining=0, reset_secs=WINDOW))
    return pacer


async def test_every_waiter_of_a_pacer_handed_over_stops_waiting() -> None:
    pacer, stop = exhausted(), asyncio.Event()
    waiters = [asyncio.create_task(pacer.acquire(stop)) for _ in range(4)]  # one sleeps, 3 queue
    await asyncio.sleep(0)
    assert not any(w.done() for w in waiters)

    pacer.hand_over()

    async with asyncio.timeout(WINDOW / 4):  # a bound for a hang, not a speed claim
        results = await asyncio.gather(*waiters)
    assert results == [False, False, False, False]  # not stopping: ask the current pacer


async def test_a_pacer_handed_over_still_knows_its_hosts_window() -> None:
    pacer, stop = exhausted(), asyncio.Event()
    first = asyncio.create_task(pacer.acquire(stop))
    await asyncio.sleep(0)
    pacer.hand_over()
    assert await first is False

    later = asyncio.create_task(pacer.acquire(stop))  # after a reload back to this host
    await asyncio.sleep(0.05)
    assert not later.done()
    assert pacer.paused_for(1000.0) == WINDOW
    stop.set()
    assert await later is True


async def test_stopping_still_ends_the_wait_of_a_pacer_not_handed_over() -> None:
    pacer, stop = exhausted(), asyncio.Event()
    waiter = asyncio.create_task(pacer.acquire(stop))
    await asyncio.sleep(0)

    stop.set()

    assert await waiter is True
