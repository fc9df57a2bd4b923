"""Hand-built `AgentSnapshot`s: every number is chosen here, so tests can assert exact output."""

from __future__ import annotations

import dataclasses
from typing import Any

from agent.ops.snapshot import (
    AgentSnapshot,
    ConnectionSnapshot,
    LatencyHistogram,
    SourceSnapshot,
)


def latency() -> LatencyHistogram:
    """Four requests: one fast, two at 20 ms, one past the last bound (+Inf)."""
    histogram = LatencyHistogram()
    for seconds in (0.003, 0.02, 0.02, 45.0):
        histogram.observe(seconds)
    return histogram


def healthy(**changes: Any) -> AgentSnapshot:
    """A busy agent that delivers: ready, nothing failing. `changes` override fields.

    Unless `connections` is given, everything sent went to one connection, "default"."""
    snapshot = AgentSnapshot(
        sources=(
            SourceSnapshot(
                name="app",
                lines_read=1200,
                bytes_read=96_000,
                checkpoint_lag_bytes=512,
                open_files=2,
                files=3,
            ),
            SourceSnapshot(
                name="nginx",
                lines_read=34,
                bytes_read=4_100,
                checkpoint_lag_bytes=0,
                open_files=1,
                files=1,
                parsing={"unmatched": 3, "too_late": 1},
            ),
        ),
        events_sent=1234,
        bytes_sent=98_765,
        bytes_posted=12_345,
        requests={"200": 40, "429": 2, "transport_error": 1},
        retries=3,
        ratelimit_remaining=57,
        queue_bytes=12 * 1024,
        in_flight_batches=1,
        spool_bytes=0,
        spool_files=0,
        spool_max_bytes=2**30,
        spool_corrupt_files=0,
        dead_letters={"invalid_json": 2, "line_too_long": 1},
        drops={},
        request_latency=latency().frozen(),
        auth_failing=False,
        seconds_since_success=0.4,
        uptime_seconds=3600.0,
    )
    snapshot = dataclasses.replace(snapshot, **changes)
    if "connections" in changes:
        return snapshot
    default = ConnectionSnapshot(
        "default", dict(snapshot.requests), snapshot.events_sent, snapshot.bytes_sent
    )
    return dataclasses.replace(snapshot, connections=(default,))
