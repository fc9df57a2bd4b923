"""Pacing by the RateLimit headers Polaris sends, shared by the whole sender pool.

The limit is per organisation and per minute. A 429 pauses every worker until the window
resets; otherwise requests flow freely while the window has plenty left, and are spread evenly
over the rest of the window once it runs low, so that the pool never asks for more than
`RateLimit-Remaining` allows.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from agent.ship.retry import sleep_or_stop


@dataclass(frozen=True, slots=True)
class RateLimitInfo:
    limit: int | None
    remaining: int | None
    reset_secs: float | None

    @classmethod
    def from_headers(cls, headers: dict[str, str]) -> RateLimitInfo:
        return cls(
            _number(headers.get("ratelimit-limit") or headers.get("x-ratelimit-limit-minute")),
            _number(
                headers.get("ratelimit-remaining") or headers.get("x-ratelimit-remaining-minute")
            ),
            _float(headers.get("ratelimit-reset")),
        )


def _float(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _number(value: str | None) -> int | None:
    number = _float(value)
    return int(number) if number is not None else None


class Pacer:
    def __init__(self, *, low_water: int = 10) -> None:
        self._low_water = low_water
        self._paused_until = 0.0
        self._window_end = 0.0
        self._remaining: int | None = None
        self._spent = 0  # requests started since `_remaining` was observed
        self._next_slot = 0.0
        self.limit: int | None = None
        self._lock = asyncio.Lock()

    @property
    def remaining(self) -> int | None:
        return self._remaining

    def observe(self, info: RateLimitInfo) -> None:
        if info.remaining is None:
            return
        now = time.monotonic()
        self.limit = info.limit
        window_end = now + (info.reset_secs if info.reset_secs is not None else 60.0)
        if self._remaining is None or now >= self._window_end or window_end > self._window_end + 1:
            self._window_end = window_end
            self._remaining = info.remaining
            self._spent = 0
        elif info.remaining < self._remaining - self._spent:
            self._remaining = info.remaining
            self._spent = 0

    def throttle(self, retry_after_secs: float | None) -> None:
        """A 429: nobody sends before the window resets."""
        now = time.monotonic()
        wait = retry_after_secs if retry_after_secs is not None else 1.0
        self._paused_until = max(self._paused_until, now + max(wait, 0.0))
        self._remaining = 0
        self._spent = 0
        self._window_end = self._paused_until

    async def acquire(self, stop: asyncio.Event) -> bool:
        """Wait for the right to send one request. True when stopping instead."""
        async with self._lock:
            while True:
                now = time.monotonic()
                wait = self._wait(now)
                if wait <= 0:
                    self._spent += 1
                    return False
                if await sleep_or_stop(stop, wait):
                    return True

    def _wait(self, now: float) -> float:
        if now < self._paused_until:
            return self._paused_until - now
        if self._remaining is None or now >= self._window_end:
            self._remaining = None  # the window reset: unknown until the next answer
            return 0.0
        left = self._remaining - self._spent
        if left <= 0:
            return self._window_end - now
        if left > self._low_water:
            return 0.0
        spacing = (self._window_end - now) / left
        if now < self._next_slot:
            return self._next_slot - now
        self._next_slot = now + spacing
        return 0.0
