"""A queue bounded in bytes: when it is full, readers wait and the log files are the buffer."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class QueueClosed(Exception):
    """Raised by `put` after `close`: nothing more is accepted."""


class ByteQueue(Generic[T]):
    """Pieces between the readers and the batcher, bounded in bytes, in one event loop.

    A put with room and a take with an item there are plain calls, no lock and no await
    that suspends: at full speed that is nearly every piece (a lock taken and a condition
    notified per put and per get was about 180 Python calls per MB shipped). Only a side that
    must wait parks a future; every change wakes all of them, and each checks again.
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self._items: deque[tuple[T, int]] = deque()
        self._waiters: list[asyncio.Future[None]] = []
        self._closed = False
        self.last_taken = time.monotonic()  # when an item last left (or the queue was made)

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return (
            f"<ByteQueue items={len(self._items)} bytes={self.bytes}/{self.max_bytes}"
            f" waiting={len(self._waiters)}>"
        )

    async def put(self, item: T, size: int) -> None:
        """Wait for room, then enqueue. An item larger than the bound waits for an empty queue."""
        if not self._room_for(size):  # the common case waits for nothing
            await self._wait_until(lambda: self._room_for(size))
        if self._closed:
            raise QueueClosed
        self._items.append((item, size))
        self.bytes += size
        self._changed()

    def _room_for(self, size: int) -> bool:
        return self._closed or not self._items or self.bytes + size <= self.max_bytes

    def take_ready(self) -> T | None:
        """The next item when one is there, else None: no wait, no timer."""
        if not self._items:
            return None
        item, size = self._items.popleft()
        self.bytes -= size
        self.last_taken = time.monotonic()
        self._changed()
        return item

    async def get(self, max_wait: float | None = None) -> T | None:
        """The next item; None when closed and drained, or when `max_wait` passes first.

        An item already there is taken without arming the timeout: at full speed that is
        every call (a timer pushed and cancelled per piece was most of the queue's cost)."""
        if not (self._closed or self._items):
            try:
                async with asyncio.timeout(max_wait):
                    await self._wait_until(lambda: self._closed or bool(self._items))
            except TimeoutError:
                return None
        return self.take_ready()

    @property
    def drained(self) -> bool:
        return self._closed and not self._items

    async def close(self) -> None:
        self._closed = True
        self._changed()

    def _changed(self) -> None:
        """Wake every waiter (a put waiting for room, the batcher waiting for an item: a few
        at most), each to check its own condition again."""
        if not self._waiters:
            return
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    async def _wait_until(self, ready: Callable[[], bool]) -> None:
        loop = asyncio.get_running_loop()
        while not ready():
            waiter: asyncio.Future[None] = loop.create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            finally:
                if waiter in self._waiters:  # timed out or cancelled before it was woken
                    self._waiters.remove(waiter)
