"""A queue bounded in bytes: when it is full, readers wait and the log files are the buffer."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import Generic, TypeVar

T = TypeVar("T")


class QueueClosed(Exception):
    """Raised by `put` after `close`: nothing more is accepted."""


class ByteQueue(Generic[T]):
    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self._items: deque[tuple[T, int]] = deque()
        self._changed = asyncio.Condition()
        self._closed = False
        self.last_taken = time.monotonic()  # when an item last left (or the queue was made)

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"<ByteQueue items={len(self._items)} bytes={self.bytes}/{self.max_bytes}>"

    async def put(self, item: T, size: int) -> None:
        """Wait for room, then enqueue. An item larger than the bound waits for an empty queue."""
        async with self._changed:
            if not self._room_for(size):  # the common case waits for nothing
                await self._changed.wait_for(lambda: self._room_for(size))
            if self._closed:
                raise QueueClosed
            self._items.append((item, size))
            self.bytes += size
            self._changed.notify_all()

    def _room_for(self, size: int) -> bool:
        return self._closed or not self._items or self.bytes + size <= self.max_bytes

    async def get(self, max_wait: float | None = None) -> T | None:
        """The next item; None when closed and drained, or when `max_wait` passes first.

        An item already there is taken without arming the timeout: at full speed that is
        every call (a timer pushed and cancelled per piece was most of the queue's cost)."""
        async with self._changed:
            if not (self._closed or self._items):
                try:
                    async with asyncio.timeout(max_wait):
                        await self._changed.wait_for(lambda: self._closed or bool(self._items))
                except TimeoutError:
                    return None
            if not self._items:
                return None
            item, size = self._items.popleft()
            self.bytes -= size
            self.last_taken = time.monotonic()
            self._changed.notify_all()
            return item

    @property
    def drained(self) -> bool:
        return self._closed and not self._items

    async def close(self) -> None:
        async with self._changed:
            self._closed = True
            self._changed.notify_all()
