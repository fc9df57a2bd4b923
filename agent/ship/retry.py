"""Waiting in the delivery path: capped, jittered exponential backoff that ends at shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Awaitable
from typing import Any


async def sleep_or_stop(stop: asyncio.Event, delay: float) -> bool:
    """Sleep `delay` seconds, or less if stopping. Returns True when stopping."""
    if stop.is_set():
        return True
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(max(delay, 0.0)):
            await stop.wait()
    return stop.is_set()


async def first_of(*waits: Awaitable[Any]) -> None:
    """Return when the first of several awaitables finishes; the others are cancelled."""
    tasks = [asyncio.ensure_future(w) for w in waits]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()


_JITTER = random.Random()


class Backoff:
    """Equal jitter: a random wait in [c/2, c] with c = min(cap, initial * 2**attempt); spreads
    a pool's retries so a recovering endpoint is not hit by all workers at once."""

    def __init__(self, initial: float, cap: float, rng: random.Random | None = None) -> None:
        self.initial = initial
        self.cap = cap
        self.attempt = 0
        self._rng = rng or _JITTER  # not a new Random per batch: seeding one reads urandom

    def next_delay(self) -> float:
        # The exponent stops growing long before 2**n overflows a float (an outage of a few
        # hours at a 30 s cap is thousands of attempts).
        ceiling = min(self.cap, self.initial * 2.0 ** min(self.attempt, 64))
        self.attempt += 1
        return self._rng.uniform(ceiling / 2, ceiling)

    def reset(self) -> None:
        self.attempt = 0
