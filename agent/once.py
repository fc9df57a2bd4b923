"""`run --once`: when a backfill gives up, and the exit code it ends with.

A backfill run by a Kubernetes Job or a cron line must fail when its data did not reach
Polaris, not retry a refused key forever. `watch_stall` ends the run when Polaris accepted
nothing for `once_timeout` while data waits to be sent (a refused key, an unreachable or
failing endpoint): the agent stops as on SIGTERM (what is not delivered goes to the spool or
stays behind the checkpoint) and `outcome` says 1. A slow but moving backfill is never cut:
the bound is on time without progress, not on the whole run.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Final

from agent.ops.events import Event, Events
from agent.ops.snapshot import AgentSnapshot
from agent.ship.retry import sleep_or_stop

DEFAULT_ONCE_TIMEOUT: Final = 300.0
EXIT_OK: Final = 0
EXIT_FAILED: Final = 1

ONCE_GAVE_UP: Final = Event(
    "once_gave_up",
    "`run --once` stopped: Polaris accepted nothing for --once-timeout while data waited "
    "(refused key, unreachable or failing endpoint). The run exits 1.",
    level="error",
)
ONCE_INCOMPLETE: Final = Event(
    "once_incomplete",
    "`run --once` ended with data not delivered: it exits 1 (read again, or replayed from "
    "the spool, by the next run).",
    level="error",
)
EVENTS: Final = (ONCE_GAVE_UP, ONCE_INCOMPLETE)


def _waiting(snap: AgentSnapshot) -> bool:
    """Data read and not yet delivered: in the queue, in a request, or in the spool."""
    return snap.queue_bytes > 0 or snap.in_flight_batches > 0 or snap.spool_files > 0


async def watch_stall(
    snapshot: Callable[[], AgentSnapshot],
    events: Events,
    stop: Callable[[str], None],
    done: asyncio.Event,
    patience: float,
    clock: Callable[[], float] = time.monotonic,
) -> bool:
    """Call `stop("once_timeout")` when nothing was delivered for `patience` seconds while data
    waited; True when it did. Ends when `done` is set."""
    tick = min(max(patience / 10, 0.05), 1.0)
    delivered = -1
    since = clock()
    while not await sleep_or_stop(done, tick):
        snap = snapshot()
        if snap.events_sent != delivered or not _waiting(snap):
            delivered, since = snap.events_sent, clock()
            continue
        if clock() - since >= patience:
            events.emit(
                ONCE_GAVE_UP,
                seconds=patience,
                auth_failing=snap.auth_failing,
                endpoint_refusing=snap.endpoint_refusing or None,
                events_delivered=snap.events_sent,
                queue_bytes=snap.queue_bytes,
                in_flight_batches=snap.in_flight_batches,
                spool_files=snap.spool_files,
            )
            stop("once_timeout")
            return True
    return False


def outcome(snap: AgentSnapshot, events: Events, *, gave_up: bool, unacknowledged: int) -> int:
    """The exit code of `run --once`: 0 when everything read was delivered (or dead-lettered)
    and nothing waits in the spool; else 1, said as `once_incomplete`."""
    if not gave_up and unacknowledged == 0 and snap.spool_files == 0:
        return EXIT_OK
    events.emit(
        ONCE_INCOMPLETE,
        gave_up=gave_up,
        unacknowledged=unacknowledged,
        spool_files=snap.spool_files,
        events_delivered=snap.events_sent,
    )
    return EXIT_FAILED
