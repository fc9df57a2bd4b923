"""Backoff: jittered, capped, and still a number after a day of retries."""

from __future__ import annotations

import random

from agent.ship.retry import Backoff


def test_delays_grow_then_stay_within_the_cap_with_jitter() -> None:
    backoff = Backoff(0.2, 30.0, random.Random(1))
    delays = [backoff.next_delay() for _ in range(12)]
    assert 0.1 <= delays[0] <= 0.2
    assert all(15.0 <= d <= 30.0 for d in delays[8:])
    assert len(set(delays[8:])) > 1  # jitter spreads a pool's retries


def test_thousands_of_attempts_never_overflow() -> None:
    """An outage of hours is thousands of attempts; 2**attempt once overflowed a float."""
    backoff = Backoff(0.05, 0.5, random.Random(2))
    for _ in range(5000):
        delay = backoff.next_delay()
    assert 0.25 <= delay <= 0.5
