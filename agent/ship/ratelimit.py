"""Pacing by the RateLimit headers Polaris sends, shared by the whole sender pool.

The limit is per organisation and per minute. A 429 pauses every worker until the window
resets; otherwise requests flow freely while the window has plenty left, and are spread evenly
over the rest of the window once it runs low, so that the pool never asks for more than
`RateLimit-Remaining` allows.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Final

from agent.ship.retry import first_of

MAX_HEADER_WAIT: Final = 120.0
"""The longest wait any header (Retry-After, RateLimit-Reset) can impose, in seconds: twice
Polaris' one-minute rate-limit window. A larger value is taken as this cap, so a hostile or
broken `Retry-After: 99999999999` pauses the pool two minutes at most, never until restart."""

MIN_THROTTLE_WAIT: Final = 0.5
"""The shortest pause after a 429, in seconds, whatever the headers say (`Retry-After: 0`,
negative, `nan`, none). It doubles with each 429 in a row, up to `MAX_THROTTLE_FLOOR`, and
goes back to this after an answer that is not a 429: a 429 never makes a hot loop."""

MAX_THROTTLE_FLOOR: Final = 30.0
"""Where the doubling floor of consecutive 429s stops (the default `sender.retry_max`)."""

MAX_HEADER_COUNT: Final = 1_000_000_000
"""Request counts (RateLimit-Limit, -Remaining) above this are taken as this."""

_DEFAULT_THROTTLE_WAIT: Final = 1.0  # a 429 that names no wait at all


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
            header_seconds(headers.get("ratelimit-reset")),
        )


def _finite(value: str | None) -> float | None:
    """A header value as a finite, non-negative number, or None for anything else (garbage,
    nan, inf, an overflow like 1e309, a negative number): such a header is treated as absent."""
    if value is None or len(value) > 64:
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    if not math.isfinite(number) or number < 0:
        return None
    return number


def _number(value: str | None) -> int | None:
    number = _finite(value)
    return None if number is None else int(min(number, MAX_HEADER_COUNT))


def header_seconds(value: str | None) -> float | None:
    """A wait named by a header (delta-seconds, or an HTTP date for Retry-After), clamped to
    [0, MAX_HEADER_WAIT]; None when the value is absent, negative or not a number at all."""
    seconds = _finite(value)
    if seconds is None and value is not None:
        seconds = _seconds_until(value)
    return None if seconds is None else min(seconds, MAX_HEADER_WAIT)


def _seconds_until(date: str) -> float | None:
    """Seconds from now until an HTTP date (RFC 9110 allows one in Retry-After)."""
    try:
        when = parsedate_to_datetime(date)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    try:
        seconds = (when - datetime.now(UTC)).total_seconds()
    except OverflowError:
        return None
    return max(seconds, 0.0)


class Pacer:
    """One Polaris organization's request budget, as its answers tell it. One per host: a
    reload that moves the sender to another host moves it to that host's pacer, and
    `hand_over` lets go of whoever still waits here for this host's window."""

    def __init__(self, *, low_water: int = 10, clock: Callable[[], float] = time.monotonic) -> None:
        self._low_water = low_water
        self._clock = clock
        self._paused_until = 0.0
        self._throttles = 0  # 429s in a row that each began a pause: the floor doubles with them
        self._window_end = 0.0
        self._remaining: int | None = None
        self._spent = 0  # requests started since `_remaining` was observed
        self._next_slot = 0.0
        self.limit: int | None = None
        self._lock = asyncio.Lock()
        self._handed_over = asyncio.Event()  # set (and replaced) by `hand_over`

    @property
    def remaining(self) -> int | None:
        return self._remaining

    def observe(self, info: RateLimitInfo) -> None:
        if info.remaining is None:
            return
        now = self._clock()
        self.limit = info.limit
        window_end = now + (info.reset_secs if info.reset_secs is not None else 60.0)
        if self._remaining is None or now >= self._window_end or window_end > self._window_end + 1:
            self._window_end = window_end
            self._remaining = info.remaining
            self._spent = 0
        elif info.remaining < self._remaining - self._spent:
            self._remaining = info.remaining
            self._spent = 0

    def throttle(self, retry_after_secs: float | None) -> bool:
        """A 429: nobody sends before the window resets. The wait is the header's, but never
        below a floor that doubles with each 429 in a row (no hot loop on `Retry-After: 0`)
        nor above MAX_HEADER_WAIT. True when this began a new pause (worth one log line);
        the 429s other workers get within the same pause return False."""
        now = self._clock()
        new = now >= self._paused_until
        named = retry_after_secs
        if named is None or not math.isfinite(named):
            named = _DEFAULT_THROTTLE_WAIT
        if new:
            self._throttles += 1
        doublings = min(max(self._throttles - 1, 0), 32)
        floor = min(MIN_THROTTLE_WAIT * 2.0**doublings, MAX_THROTTLE_FLOOR)
        wait = min(max(named, floor), MAX_HEADER_WAIT)
        self._paused_until = max(self._paused_until, now + wait)
        self._remaining = 0
        self._spent = 0
        self._window_end = self._paused_until
        return new

    def relax(self) -> None:
        """An answer that was not a 429: the next 429's floor starts low again."""
        self._throttles = 0

    def paused_for(self, now: float) -> float:
        """Seconds from `now` before anyone may send again (0 when sending is allowed)."""
        until = self._paused_until
        if self._remaining is not None and self._remaining - self._spent <= 0:
            until = max(until, self._window_end)
        return max(until - now, 0.0)

    async def acquire(self, stop: asyncio.Event) -> bool:
        """Wait for the right to send one request. True when stopping instead. False also
        when `hand_over` ended the wait: the caller asks the pacer it sends by now (it may
        be this one again), not this host's window."""
        handed_over = self._handed_over  # the waiters queued on the lock now are let go too
        async with self._lock:
            while True:
                if stop.is_set():
                    return True  # even with budget left: stopping ends every loop
                if handed_over.is_set():
                    return False
                now = self._clock()
                wait = self._wait(now)
                if wait <= 0:
                    self._spent += 1
                    return False
                if await _sleep_unless(stop, handed_over, wait):
                    return True

    def hand_over(self) -> None:
        """The sender no longer sends to this pacer's host (a reload changed `polaris.url`):
        every `acquire` waiting now, for this host's `RateLimit-Remaining: 0` or a 429's
        pause, returns at once, so no request for the new host waits out the old host's
        window (up to MAX_HEADER_WAIT). What this pacer knows stays, for a reload back."""
        self._handed_over.set()
        self._handed_over = asyncio.Event()

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


async def _sleep_unless(stop: asyncio.Event, handed_over: asyncio.Event, delay: float) -> bool:
    """Sleep `delay` seconds, less if stopping or handed over. True when stopping."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(max(delay, 0.0)):
            await first_of(stop.wait(), handed_over.wait())
    return stop.is_set()
