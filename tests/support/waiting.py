"""Waiting on conditions, never for a fixed time: a test says what it waits for, and a
timeout names it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

POLL_SECS = 0.05
"""How often a condition is looked at again: a poll, not a guess at how long something takes."""


@dataclass(frozen=True, slots=True)
class Condition:
    """Something a test waits for, with the words a timeout reports."""

    what: str
    check: Callable[[], bool]

    def __call__(self) -> bool:
        return self.check()

    def __repr__(self) -> str:
        return f"<Condition {self.what}>"


async def wait_until(*conditions: Condition, within: float = 30) -> None:
    """Return once every condition holds; AssertionError naming those that did not."""
    deadline = time.monotonic() + within
    while True:
        pending = [c for c in conditions if not c()]
        if not pending:
            return
        if time.monotonic() > deadline:
            raise AssertionError(
                f"timed out after {within} s waiting for " + "; ".join(c.what for c in pending)
            )
        await asyncio.sleep(POLL_SECS)


async def eventually(check: Callable[[], object], within: float = 30, what: str = "") -> None:
    """`wait_until` for a bare callable (kept for the many scenarios written with it)."""
    await wait_until(Condition(what or repr(check), lambda: bool(check())), within=within)


def settled(read: Callable[[], object], what: str, polls: int = 5) -> Condition:
    """`read()` has given the same value `polls` looks in a row: what is being started has
    finished changing it (e.g. the descriptors a process opens as it starts)."""
    seen: list[object] = []

    def check() -> bool:
        seen.append(read())
        del seen[:-polls]
        return len(seen) == polls and all(v == seen[0] for v in seen)

    return Condition(f"{what} settled", check)
