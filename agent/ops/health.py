"""Liveness, readiness and a one-line status, as pure functions of an `AgentSnapshot`.

Kept free of I/O so that `/healthz`, `/readyz`, sd_notify's STATUS= and `status` agree by
construction, and so every rule is tested with a hand-built snapshot.

Liveness means "the event loop answers": if the handler runs, the agent is alive.

Readiness means "the agent is reading": its reading task runs, the queue between the readers
and the senders moves, every source that found files can open at least one of them, and
every journald source has its journalctl child running. It
says nothing about Polaris: a DaemonSet rolled out with `maxUnavailable: 1` must not stall
because Polaris is down or a key was revoked, which every pod (old and new) would share.
Delivery health (auth failing, endpoint refusing, spool full, not delivering) is reported by
`delivery_problems`, shown as `/metrics` gauges, the `status` line and the shipped alerts.
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
DELIVERY_PROBLEMS: Final = (AUTH_FAILING, ENDPOINT_REFUSING, SPOOL_FULL, NOT_DELIVERING)

NOT_READING: Final = "not_reading"
"""The reading task is not running: before the pipeline starts, or after it ended."""
FILES_UNREADABLE: Final = "files_unreadable"
"""A source found files and could open none of them (permissions, a missing mount)."""
JOURNAL_DOWN: Final = "journal_down"
"""A journald source's journalctl child is not running (missing, failing, or between restarts
after a failure): that source reads nothing until it runs again."""
QUEUE_WEDGED: Final = "queue_wedged"
"""The queue holds data, nothing left it for `stall_after` seconds, and the spool could have
taken it: the pipeline is stuck for a reason of its own, not because Polaris is."""

DEFAULT_STALL_AFTER: Final = 60.0
"""Seconds pending work may go without an acknowledged request before it is `not_delivering`,
and the queue without moving before it is `queue_wedged`."""


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
    """Ready while the agent reads (see the module doc); never about Polaris."""
    checks = (
        (NOT_READING, not snapshot.reading),
        (FILES_UNREADABLE, files_unreadable(snapshot)),
        (JOURNAL_DOWN, journal_down(snapshot)),
        (QUEUE_WEDGED, queue_wedged(snapshot, stall_after=stall_after)),
    )
    reasons = tuple(reason for reason, failing in checks if failing)
    return Readiness(ready=not reasons, reasons=reasons)


def delivery_problems(
    snapshot: AgentSnapshot, *, stall_after: float = DEFAULT_STALL_AFTER
) -> tuple[str, ...]:
    """What keeps data from Polaris, in a fixed order: auth fails, the endpoint refuses
    everything, the spool is full, or pending work is not being delivered."""
    checks = (
        (AUTH_FAILING, snapshot.auth_failing),
        (ENDPOINT_REFUSING, bool(snapshot.endpoint_refusing)),
        (SPOOL_FULL, spool_full(snapshot)),
        (NOT_DELIVERING, not_delivering(snapshot, stall_after=stall_after)),
    )
    return tuple(reason for reason, failing in checks if failing)


def files_unreadable(snapshot: AgentSnapshot) -> bool:
    """Some source found files and holds none of them: it can read nothing at all."""
    return any(s.unreadable_files > 0 and s.files == 0 for s in snapshot.sources)


def journal_down(snapshot: AgentSnapshot) -> bool:
    """Some journald source has no journalctl child running to read it."""
    return any(s.journal and not s.journal.get("child_running", 0) for s in snapshot.sources)


def queue_wedged(snapshot: AgentSnapshot, *, stall_after: float = DEFAULT_STALL_AFTER) -> bool:
    """Data waits in the queue, none left it for `stall_after` seconds, and the spool had room.

    Without a spool, or with a full one, a queue that stops is Polaris' backpressure (shown as
    `not_delivering` / `spool_full`), not a reason to hold a rollout.
    """
    if snapshot.queue_bytes == 0 or snapshot.queue_idle_seconds <= stall_after:
        return False
    return snapshot.spool_max_bytes > 0 and not snapshot.spool_full


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
    reasons = readiness(snapshot, stall_after=stall_after).reasons + delivery_problems(
        snapshot, stall_after=stall_after
    )
    head = ", ".join(r.replace("_", " ") for r in reasons) if reasons else "shipping"
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
