"""Liveness, readiness and a one-line status, as pure functions of an `AgentSnapshot`.

Kept free of I/O so that `/healthz`, `/readyz`, sd_notify's STATUS= and `status` agree by
construction, and so every rule is tested with a hand-built snapshot.

Liveness means "the event loop answers": if the handler runs, the agent is alive. Anything
that restarting cannot fix (a bad API key, a full spool, an unreachable Polaris) is a
readiness concern instead, so an orchestrator reports it without killing a process that is
holding undelivered data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

from agent.ops.snapshot import AgentSnapshot

AUTH_FAILING: Final = "auth_failing"
ENDPOINT_REFUSING: Final = "endpoint_refusing"
"""A redirect, a missing connection (404) or a blanket 400: a configuration error to fix."""
SPOOL_FULL: Final = "spool_full"
NOT_DELIVERING: Final = "not_delivering"

DEFAULT_STALL_AFTER: Final = 60.0
"""Seconds pending work may go without an acknowledged request before we stop being ready."""


@dataclass(frozen=True, slots=True)
class Liveness:
    status: Literal["alive"] = "alive"


@dataclass(frozen=True, slots=True)
class Readiness:
    ready: bool
    reasons: tuple[str, ...]  # stable short names, in a fixed order; empty when ready


def liveness() -> Liveness:
    """Alive whenever this runs: the caller is the event loop answering a probe."""
    return Liveness()


def readiness(snapshot: AgentSnapshot, *, stall_after: float = DEFAULT_STALL_AFTER) -> Readiness:
    """Ready unless auth fails, the endpoint refuses everything, the spool is full, or pending
    work is not being delivered."""
    checks = (
        (AUTH_FAILING, snapshot.auth_failing),
        (ENDPOINT_REFUSING, bool(snapshot.endpoint_refusing)),
        (SPOOL_FULL, spool_full(snapshot)),
        (NOT_DELIVERING, not_delivering(snapshot, stall_after=stall_after)),
    )
    reasons = tuple(reason for reason, failing in checks if failing)
    return Readiness(ready=not reasons, reasons=reasons)


def spool_full(snapshot: AgentSnapshot) -> bool:
    """The spool cannot take another batch. A capacity of 0 means no spool, never full."""
    return snapshot.spool_max_bytes > 0 and snapshot.spool_full


def has_pending_work(snapshot: AgentSnapshot) -> bool:
    """Data waiting for Polaris: in a request, queued, or on disk in the spool (an outage)."""
    return snapshot.in_flight_batches > 0 or snapshot.queue_bytes > 0 or snapshot.spool_files > 0


def not_delivering(snapshot: AgentSnapshot, *, stall_after: float = DEFAULT_STALL_AFTER) -> bool:
    """Work is waiting and nothing was acknowledged for `stall_after` seconds.

    Before the first success, the agent's uptime stands in for the time since success, so a
    freshly started agent gets `stall_after` seconds to deliver its first batch.

    Known limit: after an idle spell longer than `stall_after`, the first new batch reads as
    stalled until its request succeeds (milliseconds, usually). The snapshot does not say how
    long the oldest pending work has waited; a field for that would remove the blip.
    """
    if not has_pending_work(snapshot):
        return False
    since = snapshot.seconds_since_success
    waited = snapshot.uptime_seconds if since is None else since
    return waited > stall_after


def status_line(snapshot: AgentSnapshot, *, stall_after: float = DEFAULT_STALL_AFTER) -> str:
    """One short line for sd_notify STATUS= (shown by `systemctl status`)."""
    state = readiness(snapshot, stall_after=stall_after)
    head = "shipping" if state.ready else ", ".join(r.replace("_", " ") for r in state.reasons)
    parts = [
        f"{snapshot.events_sent} events sent",
        f"queue {format_bytes(snapshot.queue_bytes)}",
        f"spool {format_bytes(snapshot.spool_bytes)}",
    ]
    dead = sum(snapshot.dead_letters.values())
    if dead:
        parts.append(f"{dead} dead letters")
    return f"{head}: {', '.join(parts)}"


_UNITS: Final = ("KiB", "MiB", "GiB", "TiB", "PiB")


def format_bytes(count: int) -> str:
    """`512 B`, `12 KiB`, `1.5 MiB`: binary units, at most one decimal."""
    if count < 1024:
        return f"{count} B"
    value = float(count)
    for unit in _UNITS:
        value /= 1024
        if round(value, 1) < 1024 or unit == _UNITS[-1]:
            return f"{value:.1f}".removesuffix(".0") + f" {unit}"
    raise AssertionError("unreachable: the last unit always returns")
