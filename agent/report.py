"""The agent's numbers in one `AgentSnapshot`, composed from the components' own reports.

Each component answers `snapshot()` with what it counts; this is the one place that puts them
together for `/status`, `/metrics`, the status line and the health checks, so the runtime
never reads a component's fields.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from agent.config import Config
from agent.ops.snapshot import AgentSnapshot, ConnectionSnapshot
from agent.ship.spool import SpoolStats

if TYPE_CHECKING:
    from agent.runtime import Agent


def compose_snapshot(agent: Agent) -> AgentSnapshot:
    """One `AgentSnapshot` from the components' own reports (their `snapshot()`s)."""
    tail = agent.tailer.snapshot()
    sender = agent.delivery.sender
    send = sender.snapshot()
    spool = agent.delivery.spool
    spooled = spool.stats if spool is not None else SpoolStats()
    requests = {str(status): count for status, count in send.requests.items()}
    if send.transport_errors:
        requests["transport_error"] = send.transport_errors
    now = time.monotonic()
    return AgentSnapshot(
        sources=tail.sources + agent.journals.snapshot(),
        events_sent=send.events_delivered,
        bytes_sent=send.bytes_delivered,
        bytes_posted=send.bytes_posted,
        requests=requests,
        retries=send.retries,
        ratelimit_remaining=send.ratelimit_remaining,
        queue_bytes=agent.queue.bytes,
        in_flight_batches=send.in_flight + agent.batches.qsize(),
        spool_bytes=spooled.bytes,
        spool_files=spooled.files,
        spool_max_bytes=spool.max_bytes if spool is not None else 0,
        spool_corrupt_files=spooled.corrupt,
        dead_letters=agent.dead_letters.snapshot(),
        dead_letters_pruned=agent.dead_letters.pruned_snapshot(),
        drops={"spool_full": spooled.dropped_events},
        request_latency=send.latency,
        auth_failing=send.auth_failing,
        endpoint_refusing=send.endpoint_refusing,
        seconds_since_success=now - send.last_success if send.last_success else None,
        uptime_seconds=now - agent.started,
        held_copies=tail.held_copies,
        truncations=tail.truncations,
        blank_lines=tail.blank_lines,
        rejected_lines=tail.rejected,
        unterminated_lines=tail.unterminated_lines,
        splits=send.splits,
        batches_delivered=send.batches_delivered,
        batches_spooled=send.batches_spooled,
        events=agent.events.snapshot(),
        connections=_connections(agent.config, send.connections),
        reading=agent.reading,
        queue_max_bytes=agent.queue.max_bytes,
        queue_idle_seconds=now - agent.queue.last_taken,
    )


def _connections(
    config: Config, sent: tuple[ConnectionSnapshot, ...]
) -> tuple[ConnectionSnapshot, ...]:
    """Every configured connection (shown as 0 before its first request), and any other one
    posted to (a spool file written for a connection since removed from the config)."""
    by_name = {c.name: c for c in sent}
    for name in {config.polaris.connection, *(s.connection for s in config.sources)}:
        if name:
            by_name.setdefault(name, ConnectionSnapshot(name, {}))
    return tuple(by_name[name] for name in sorted(by_name))


def stop_summary(snap: AgentSnapshot, unacknowledged: int) -> dict[str, object]:
    """What the `agent_stopped` event says: how the run went, in one line of the log."""
    return {
        "seconds": round(snap.uptime_seconds, 3),
        "events_read": sum(s.events for s in snap.sources),
        "events_delivered": snap.events_sent,
        "batches_spooled": snap.batches_spooled,
        "spooled_files_left": snap.spool_files,
        "dead_letters": sum(snap.dead_letters.values()),
        "unacknowledged": unacknowledged,
    }
