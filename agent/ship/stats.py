"""The sender's numbers: counted per request (never per line), reported as a frozen value."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from agent.snapshots import ConnectionSnapshot, LatencyHistogram, LatencySnapshot


@dataclass(slots=True)
class ConnectionStats:
    """One connection's share of the numbers below (the /metrics `connection` label)."""

    requests: dict[str, int] = field(default_factory=dict)  # by status, or transport_error
    events_delivered: int = 0
    bytes_delivered: int = 0

    def frozen(self, name: str) -> ConnectionSnapshot:
        return ConnectionSnapshot(
            name, dict(self.requests), self.events_delivered, self.bytes_delivered
        )


@dataclass(slots=True)
class SendStats:
    """Counted per request, never per line: cheap enough for the hot path."""

    requests: dict[int, int] = field(default_factory=dict)  # by HTTP status
    transport_errors: int = 0
    retries: int = 0
    splits: int = 0
    batches_delivered: int = 0
    batches_spooled: int = 0
    events_delivered: int = 0
    bytes_delivered: int = 0  # uncompressed NDJSON
    bytes_posted: int = 0  # on the wire
    latency: LatencyHistogram = field(default_factory=LatencyHistogram)
    connections: dict[str, ConnectionStats] = field(default_factory=dict)

    def connection(self, name: str) -> ConnectionStats:
        found = self.connections.get(name)
        if found is None:
            found = self.connections[name] = ConnectionStats()
        return found


@dataclass(frozen=True, slots=True)
class SenderSnapshot:
    """What `Sender.snapshot()` reports: /metrics, /readyz and the STATUS line read this."""

    requests: Mapping[int, int]
    transport_errors: int
    retries: int
    splits: int
    batches_delivered: int
    batches_spooled: int
    events_delivered: int
    bytes_delivered: int
    bytes_posted: int
    latency: LatencySnapshot
    auth_failing: bool
    endpoint_refusing: str  # reason of the last EndpointRefused but auth; "" once it works
    last_success: float  # time.monotonic() of the last acknowledged request; 0 before
    outage: bool  # live batches go straight to the spool
    in_flight: int  # batches taken by a worker and not yet safe
    ratelimit_remaining: int | None  # of the default connection
    connections: tuple[ConnectionSnapshot, ...] = ()  # every connection posted to, by name
