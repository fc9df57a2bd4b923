"""Filesystem notifications as a hint to look sooner; the periodic scan stays the truth."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable

import structlog

log = structlog.get_logger("agent.watch")

DEBOUNCE_MS = 20  # watchfiles' default of 1600 ms would be most of our latency budget
STEP_MS = 20  # how often the watcher thread wakes: 5 ms cost ~1.5% of a core when idle
RETRY_SECS = 60.0  # after a failure to watch, how long polling alone goes on before a retry
Roots = Callable[[], tuple[frozenset[str], bool]]
"""The directories to watch now, and whether any of them needs watching recursively."""


async def watch_hints(roots: Roots, wake: asyncio.Event, stop: asyncio.Event) -> None:
    """Set `wake` whenever something changes under the current roots.

    When watching fails (a missing directory, inotify limits exhausted) the scan interval
    alone keeps the agent correct, only slower; the watch is retried when the roots change
    and every RETRY_SECS.

    watchfiles (and the anyio its thread runs on) is imported here, not with the module: a
    `run --once` that reads to the end without waiting never loads them.
    """
    import watchfiles

    while not stop.is_set():
        watched = _existing(roots)
        if not watched[0]:
            if await _wait_for_change(roots, watched, stop):
                return
            continue
        try:
            async for changes in watchfiles.awatch(
                *sorted(watched[0]),
                debounce=DEBOUNCE_MS,
                step=STEP_MS,
                stop_event=stop,
                recursive=watched[1],
                rust_timeout=1000,
                yield_on_timeout=True,
                ignore_permission_denied=True,
                watch_filter=None,
            ):
                if changes:
                    wake.set()
                if _existing(roots) != watched:
                    break
        except (OSError, RuntimeError) as exc:
            log.warning(
                "watch_unavailable", error=str(exc), fallback="polling", retry_in=RETRY_SECS
            )
            if await _wait_for_change(roots, watched, stop, give_up_after=RETRY_SECS):
                return


def _existing(roots: Roots) -> tuple[frozenset[str], bool]:
    dirs, recursive = roots()
    return frozenset(d for d in dirs if os.path.isdir(d)), recursive


async def _wait_for_change(
    roots: Roots,
    watched: tuple[frozenset[str], bool],
    stop: asyncio.Event,
    give_up_after: float | None = None,
) -> bool:
    """Look every few seconds until the roots differ from `watched` (or `give_up_after`
    seconds pass: inotify limits free up when other processes exit); True when stopping."""
    deadline = None if give_up_after is None else time.monotonic() + give_up_after
    while not stop.is_set():
        if deadline is not None and time.monotonic() >= deadline:
            return False
        try:
            async with asyncio.timeout(5.0):
                await stop.wait()
        except TimeoutError:
            pass
        if _existing(roots) != watched:
            return False
    return True
