"""What the running agent knows about itself, as one immutable value.

The hot path only bumps plain integers (per chunk, per request); `/metrics`, `/readyz`,
`polaris-agent status` and the sd_notify STATUS line all read an `AgentSnapshot` built on
demand, so none of them costs anything between scrapes and none can disagree with another.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from agent.ops.events import EventCount
from agent.snapshots import (
    ConnectionSnapshot,
    LatencyHistogram,
    LatencySnapshot,
    SourceSnapshot,
)

__all__ = [
    "AgentSnapshot",
    "ConnectionSnapshot",
    "LatencyHistogram",
    "LatencySnapshot",
    "SourceSnapshot",
]


@dataclass(frozen=True, slots=True)
class AgentSnapshot:
    """Every fact the operator-facing surfaces show. Counters only ever grow."""

    sources: tuple[SourceSnapshot, ...]
    events_sent: int  # acknowledged by Polaris
    bytes_sent: int  # uncompressed NDJSON acknowledged
    bytes_posted: int  # request bodies on the wire, every answered attempt (compressed if gzip)
    requests: Mapping[str, int]  # by HTTP status ("200", "429", ...) or "transport_error"
    retries: int
    ratelimit_remaining: int | None  # from the last RateLimit-Remaining header seen
    queue_bytes: int  # encoded events between the readers and the batcher
    in_flight_batches: int  # sealed batches waiting for or inside a request
    spool_bytes: int
    spool_files: int
    spool_max_bytes: int
    spool_corrupt_files: int  # quarantined since start
    dead_letters: Mapping[str, int]  # by reason (invalid_json, line_too_long, rejected_4xx, ...)
    drops: Mapping[str, int]  # events given up without a dead letter, by reason (spool_full)
    request_latency: LatencySnapshot
    auth_failing: bool  # the last answer was 401/403
    seconds_since_success: float | None  # None before the first acknowledged request
    uptime_seconds: float
    endpoint_refusing: str = ""  # why the endpoint refuses everything (redirect, not_found, ...)
    held_copies: int = 0  # new files waiting to be told apart from copies of tracked ones
    truncations: int = 0  # files found shorter than their read offset, read again from 0
    blank_lines: int = 0  # empty lines skipped (fast path)
    rejected_lines: int = 0  # lines the readers dead-lettered (too long, not JSON, too late...)
    unterminated_lines: int = 0  # last lines never ended, of files let go
    splits: int = 0  # refused or too large batches cut in halves
    batches_delivered: int = 0  # acknowledged requests' batches (halves count apart)
    batches_spooled: int = 0  # batches written to the spool
    events: tuple[EventCount, ...] = ()  # every named event's count (agent.ops.events)
    connections: tuple[ConnectionSnapshot, ...] = ()  # every configured connection, by name
    reading: bool = True  # the reading task runs (false before the start and after the end)
    queue_max_bytes: int = 0  # queue.max_bytes
    queue_idle_seconds: float = 0.0  # since an item last left the queue (or it was made)
    dead_letters_pruned: Mapping[str, int] = field(default_factory=dict)  # by bound: size, age

    @property
    def spool_full(self) -> bool:
        return self.spool_max_bytes > 0 and self.spool_bytes >= self.spool_max_bytes

    @property
    def open_files(self) -> int:
        return sum(s.open_files for s in self.sources)
