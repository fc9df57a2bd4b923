"""The Events API rate limit: a fixed per-minute window, as Polaris reports it in headers."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

WINDOW_SECONDS = 60.0


@dataclass(frozen=True, slots=True)
class RateState:
    """What one Events response tells the client about the window it fell in."""

    allowed: bool
    limit: int
    remaining: int
    reset_seconds: int

    def headers(self) -> dict[str, str]:
        """The five headers Polaris puts on every Events API response."""
        return {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(self.reset_seconds),
            "X-RateLimit-Limit-Minute": str(self.limit),
            "X-RateLimit-Remaining-Minute": str(self.remaining),
        }


class FixedWindowRateLimiter:
    """A window opens at the first request and lasts 60 s; `limit` requests fit in it.

    A fixed window (not a sliding one) is what the `RateLimit-Reset` header describes: the
    client can wait exactly that long and get a full budget back.
    """

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._limit = per_minute
        self._clock = clock
        self.window_seconds = WINDOW_SECONDS  # tests shorten it to see resets in seconds
        self._window_start: float | None = None
        self._used = 0

    def __repr__(self) -> str:
        return f"<FixedWindowRateLimiter limit={self._limit} used={self._used}>"

    @property
    def limit(self) -> int:
        return self._limit

    def set_limit(self, per_minute: int) -> None:
        """Change the budget and start afresh, so a test sees exactly `per_minute` requests."""
        self._limit = per_minute
        self._window_start = None
        self._used = 0

    def acquire(self) -> RateState:
        """Count one request against the window; `allowed` is False once the budget is spent."""
        now = self._roll(self._clock())
        allowed = self._used < self._limit
        if allowed:
            self._used += 1
        return self._state(now, allowed)

    def peek(self) -> RateState:
        """The window as it stands, without counting a request (for answers like 401)."""
        return self._state(self._roll(self._clock()), True)

    def _roll(self, now: float) -> float:
        if self._window_start is None or now - self._window_start >= self.window_seconds:
            self._window_start = now
            self._used = 0
        return now

    def _state(self, now: float, allowed: bool) -> RateState:
        start = self._window_start if self._window_start is not None else now
        reset = max(0, math.ceil(start + self.window_seconds - now))
        return RateState(
            allowed=allowed,
            limit=self._limit,
            remaining=max(0, self._limit - self._used),
            reset_seconds=reset,
        )
