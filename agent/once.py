"""`run --once`: when a backfill gives up, and the exit code it ends with.

A backfill run by a Kubernetes Job or a cron line must fail when its data did not reach
Polaris, not retry a refused key forever. `watch_stall` ends the run when Polaris accepted
nothing for `once_timeout` while data waits to be sent (a refused key, an unreachable or
failing endpoint): the agent stops as on SIGTERM (what is not delivered goes to the spool or
stays behind the checkpoint) and `outcome` says 1. A slow but moving backfill is never cut:
the bound is on time without progress, not on the whole run.

A refused key ends the run much sooner (`AuthRefusal`): an operator with a wrong key learns it
in about `AUTH_PATIENCE` seconds, not after `once_timeout`, from an error that names the status
and what to do. The bound tolerates a key still being propagated: the key must have been
refused continuously (no success in between) for `AUTH_PATIENCE` and at least twice, the last
refusal that long after the first, so a key that starts working within it never ends a run.
An endpoint that refuses everything for a reason retrying cannot fix (a connection that does
not exist, a redirect, a blanket 400: `EndpointRefusal`) ends it under the same bound.
Nothing is lost either way: the agent stops as on SIGTERM.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from agent.ops.events import Event, Events
from agent.ops.snapshot import AgentSnapshot
from agent.ship.retry import sleep_or_stop

DEFAULT_ONCE_TIMEOUT: Final = 300.0
AUTH_PATIENCE: Final = 15.0
"""Seconds a key must stay refused (from its first refusal to a later one, nothing accepted
in between) before `run --once` gives up on it: longer than a new key takes to propagate."""
AUTH_STATUSES: Final = ("401", "403")
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
ONCE_AUTH_REFUSED: Final = Event(
    "once_auth_refused",
    "`run --once` stopped: Polaris refused the credentials (401/403) on every try for "
    "AUTH_PATIENCE (15 s). Nothing is lost (spooled, or read again): fix polaris.api_key "
    "(or [polaris.oauth]) and run again. The run exits 1.",
    level="error",
)
ONCE_ENDPOINT_REFUSED: Final = Event(
    "once_endpoint_refused",
    "`run --once` stopped: the Events API refused every try for AUTH_PATIENCE (15 s) for a "
    "reason retrying cannot fix (reason: not_found, redirect, blanket_refusal). Nothing is "
    "lost: fix polaris.url or the connection and run again. The run exits 1.",
    level="error",
)
EVENTS: Final = (ONCE_GAVE_UP, ONCE_INCOMPLETE, ONCE_AUTH_REFUSED, ONCE_ENDPOINT_REFUSED)
KEPT: Final = (
    " Nothing was lost: what was read is in the spool or behind the checkpoint, and the next "
    "run sends it."
)
AUTH_HINT: Final = (
    "Polaris refused the credentials: check polaris.api_key (or the [polaris.oauth] client id "
    "and secret) and that it may write to the connection, then run --once again." + KEPT
)
ENDPOINT_HINTS: Final = {
    "not_found": "The connection does not exist: create it (polaris-agent setup) or fix "
    "polaris.connection (or the source's connection), then run --once again.",
    "redirect": "polaris.url answers with a redirect (the console's address rather than the "
    "API's?); redirects are never followed: fix polaris.url, then run --once again.",
    "blanket_refusal": "Every request was refused alike (400): is the connection a push "
    "streaming one? Fix it or polaris.connection, then run --once again.",
}


def _waiting(snap: AgentSnapshot) -> bool:
    """Data read and not yet delivered: in the queue, in a request, or in the spool."""
    return snap.queue_bytes > 0 or snap.in_flight_batches > 0 or snap.spool_files > 0


def _auth_refusals(snap: AgentSnapshot) -> int:
    """Tries refused for the credentials so far: 401/403 answers, plus the tries that got no
    answer and no transport error (the OAuth token endpoint refused the client, so nothing
    was posted; the sender times every try, answered or not)."""
    answered = sum(snap.requests.values())
    unanswered = max(snap.request_latency.count - answered, 0)
    return sum(snap.requests.get(status, 0) for status in AUTH_STATUSES) + unanswered


def _refusal_status(before: AgentSnapshot | None, snap: AgentSnapshot) -> int | None:
    """The status of the latest refusals (403 wins a tie: it names a permission, not a key);
    None when only the OAuth token endpoint refused."""
    for status in reversed(AUTH_STATUSES):
        previous = before.requests.get(status, 0) if before is not None else 0
        if snap.requests.get(status, 0) > previous:
            return int(status)
    return None


@dataclass(slots=True)
class Refusal:
    """One episode of refusals that retrying cannot fix, as `run --once` watches it: from the
    first snapshot that shows its flag until a success (or the flag clears). Subclasses say
    which flag and which tries count."""

    patience: float = AUTH_PATIENCE
    first_at: float | None = None  # when the episode was first seen
    last_at: float = 0.0  # when a further refusal was last seen
    refusals: int = 0  # refusals seen in this episode
    counted: int = 0  # `tries` at the last look
    delivered: int = -1  # events acknowledged at the last look
    status: int | None = None
    seen: AgentSnapshot | None = field(default=None, repr=False)  # the last look

    def failing(self, snap: AgentSnapshot) -> bool:
        raise NotImplementedError

    def tries(self, snap: AgentSnapshot) -> int:
        raise NotImplementedError

    def observe(self, snap: AgentSnapshot, now: float) -> bool:
        """True when the refusal has lasted long enough, over more than one try, to give up."""
        previous, self.seen = self.seen, snap
        counted = self.tries(snap)
        if snap.events_sent != self.delivered:  # a success since the last look: a new episode
            self.first_at, self.delivered = None, snap.events_sent
        if not self.failing(snap):
            self.first_at, self.counted = None, counted
            return False
        if self.first_at is None:  # the refusal that set the flag, and any since the last look
            self.first_at = self.last_at = now
            self.refusals = max(counted - self.counted, 1)
            self.status = _refusal_status(previous, snap)
        elif counted > self.counted:
            self.refusals += counted - self.counted
            self.last_at = now
            self.status = _refusal_status(previous, snap) or self.status
        self.counted = counted
        return self.refusals >= 2 and self.last_at - self.first_at >= self.patience


@dataclass(slots=True)
class AuthRefusal(Refusal):
    """The credentials refused (401/403, or the OAuth token endpoint)."""

    def failing(self, snap: AgentSnapshot) -> bool:
        return snap.auth_failing

    def tries(self, snap: AgentSnapshot) -> int:
        return _auth_refusals(snap)


@dataclass(slots=True)
class EndpointRefusal(Refusal):
    """The Events API refuses everything for a reason retrying cannot fix (a missing
    connection, a redirect, a blanket 400): every try while it says so counts."""

    def failing(self, snap: AgentSnapshot) -> bool:
        return bool(snap.endpoint_refusing)

    def tries(self, snap: AgentSnapshot) -> int:
        return snap.request_latency.count


async def watch_stall(
    snapshot: Callable[[], AgentSnapshot],
    events: Events,
    stop: Callable[[str], None],
    done: asyncio.Event,
    patience: float,
    clock: Callable[[], float] = time.monotonic,
    auth_patience: float = AUTH_PATIENCE,
) -> bool:
    """Call `stop("once_timeout")` when nothing was delivered for `patience` seconds while data
    waited, or `stop("auth_refused")` when the key stayed refused for `auth_patience` (see
    `AuthRefusal`); True when it did either. Ends when `done` is set."""
    tick = min(max(min(patience, auth_patience) / 10, 0.05), 1.0)
    delivered = -1
    since = clock()
    refusal = AuthRefusal(auth_patience)
    refused = EndpointRefusal(auth_patience)
    while not await sleep_or_stop(done, tick):
        snap = snapshot()
        if refused.observe(snap, clock()):
            assert refused.first_at is not None
            reason = snap.endpoint_refusing
            events.emit(
                ONCE_ENDPOINT_REFUSED,
                reason=reason,
                refusals=refused.refusals,
                refused_for_seconds=round(refused.last_at - refused.first_at, 1),
                hint=ENDPOINT_HINTS.get(reason, ENDPOINT_HINTS["blanket_refusal"]) + KEPT,
                queue_bytes=snap.queue_bytes,
                in_flight_batches=snap.in_flight_batches,
                spool_files=snap.spool_files,
            )
            stop("endpoint_refused")
            return True
        if refusal.observe(snap, clock()):
            assert refusal.first_at is not None
            events.emit(
                ONCE_AUTH_REFUSED,
                status=refusal.status,
                refused_by="events_api" if refusal.status else "oauth_token_endpoint",
                refusals=refusal.refusals,
                refused_for_seconds=round(refusal.last_at - refusal.first_at, 1),
                hint=AUTH_HINT,
                queue_bytes=snap.queue_bytes,
                in_flight_batches=snap.in_flight_batches,
                spool_files=snap.spool_files,
            )
            stop("auth_refused")
            return True
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
