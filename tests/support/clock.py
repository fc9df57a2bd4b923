"""A clock a test can stop and move by hand, for the parts that take one: the dev-server's
fault windows and rate limiter today, the agent's stages once they accept one."""

from __future__ import annotations

import time
from collections.abc import Callable

Clock = Callable[[], float]
"""Seconds on a monotonic scale, as `time.monotonic` gives them."""


class TestClock:
    """Runs with `time.monotonic` until `pause`d; `advance` moves it on. A paused clock makes
    a fault window end when the test says so, not when the machine gets round to it."""

    __test__ = False  # not a test class, whatever its name says to pytest

    def __init__(self) -> None:
        self._offset = 0.0
        self._paused_at: float | None = None

    def __call__(self) -> float:
        if self._paused_at is not None:
            return self._paused_at
        return time.monotonic() + self._offset

    def __repr__(self) -> str:
        state = "paused" if self._paused_at is not None else "running"
        return f"<TestClock {state} now={self():.3f}>"

    def pause(self) -> None:
        self._paused_at = self()

    def resume(self) -> None:
        if self._paused_at is not None:
            self._offset = self._paused_at - time.monotonic()
            self._paused_at = None

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("a monotonic clock does not go back")
        if self._paused_at is not None:
            self._paused_at += seconds
        else:
            self._offset += seconds
