"""What the running agent knows about itself, as one immutable value.

The hot path only bumps plain integers (per chunk, per request); `/metrics`, `/readyz`,
`polaris-agent status` and the sd_notify STATUS line all read an `AgentSnapshot` built on
demand, so none of them costs anything between scrapes and none can disagree with another.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

LATENCY_BOUNDS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
"""Request latency buckets in seconds: loopback to a slow Polaris region, up to the timeout."""


@dataclass(slots=True)
class LatencyHistogram:
    """Counts of request durations per bucket; `counts[-1]` is the +Inf bucket.

    Counts are per bucket (not cumulative); the exporter makes them cumulative.
    """

    bounds: tuple[float, ...] = LATENCY_BOUNDS
    counts: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BOUNDS) + 1))
    total_seconds: float = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bisect_left(self.bounds, seconds)] += 1
        self.total_seconds += seconds

    def frozen(self) -> LatencySnapshot:
        return LatencySnapshot(self.bounds, tuple(self.counts), self.total_seconds)


@dataclass(frozen=True, slots=True)
class LatencySnapshot:
    bounds: tuple[float, ...]
    counts: tuple[int, ...]  # per bucket, len(bounds) + 1, the last one is +Inf
    total_seconds: float

    @property
    def count(self) -> int:
        return sum(self.counts)


@dataclass(frozen=True, slots=True)
class SourceSnapshot:
    """One configured source (`[[sources]]` entry), summed over its files."""

    name: str
    lines_read: int  # lines that became events, were dead-lettered or were blank
    bytes_read: int  # file bytes consumed
    checkpoint_lag_bytes: int  # bytes on disk beyond the checkpoint: read-but-unsafe + unread
    open_files: int
    files: int  # files tracked (open or closed for inactivity)
    parsing: Mapping[str, int] = field(default_factory=dict)  # unmatched, time_unparsed, ...


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

    @property
    def spool_full(self) -> bool:
        return self.spool_max_bytes > 0 and self.spool_bytes >= self.spool_max_bytes

    @property
    def open_files(self) -> int:
        return sum(s.open_files for s in self.sources)
