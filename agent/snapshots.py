"""Counters the stages keep and the frozen values they report, shared across layers.

A stage (tail, ship) counts in plain integers and reports a frozen value from `snapshot()`;
`ops` turns those values into /metrics, /readyz and the STATUS line. The types both sides
name live here, outside `ops`, so a stage never imports the code that presents it.
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
    events: int = 0  # lines (or assembled records) that became events
    unreadable_files: int = 0  # paths found that could not be opened (permissions, ...)
    open_failures: int = 0  # paths that became unopenable (each logged once as open_failed)
    read_failures: int = 0  # reads of an open file that failed (read_failed)
    journal: Mapping[str, int] = field(default_factory=dict)  # a journald source's numbers


@dataclass(frozen=True, slots=True)
class ConnectionSnapshot:
    """What was sent to one Polaris connection (the default or a source's own)."""

    name: str
    requests: Mapping[str, int]  # by HTTP status ("200", "429", ...) or "transport_error"
    events_sent: int = 0  # acknowledged by Polaris
    bytes_sent: int = 0  # uncompressed NDJSON acknowledged
