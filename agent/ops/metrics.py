"""Prometheus metrics, read from one `AgentSnapshot` per scrape.

The hot path never touches prometheus_client: it bumps plain integers that the runtime
freezes into an `AgentSnapshot` on demand. This module only translates that value into metric
families, so a scrape costs one snapshot and nothing is counted twice or in two places.

Each agent gets its own `CollectorRegistry` (no module-level default registry), which keeps
tests and several agents in one process from seeing each other's numbers.

Names follow `polaris_agent_<what>_<unit>[_total]`. Label values are bounded: `source` and
`connection` come from the config, `status` from HTTP status codes, `reason` from a fixed set
in the code. Every label set the config or the code can name is shown from the first scrape
(as 0), so `increase()` and `rate()` see the first event instead of a series appearing at 1.
docs/metrics.md lists every metric; packaging/monitoring/ holds the alerts and dashboard.
Process metrics (`process_*`: RSS, CPU, open fds) keep their conventional unprefixed names,
because that is what every dashboard and alert rule expects.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from itertools import accumulate, product
from typing import Final

from prometheus_client import CollectorRegistry, ProcessCollector, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
)

from agent import __version__
from agent.ops.events import Event, EventCount
from agent.ops.families import counter, gauge, labelled_counter, metric_name
from agent.ops.health import DELIVERY_PROBLEMS, delivery_problems, readiness
from agent.ops.snapshot import AgentSnapshot, LatencySnapshot
from agent.ops.source_metrics import reading_metrics, source_metrics

CONTENT_TYPE: Final = CONTENT_TYPE_PLAIN_0_0_4
"""What `/metrics` answers with. `render` writes the classic text format (names are escaped to
legacy characters), so we declare version 0.0.4, which every Prometheus version parses."""

SnapshotFn = Callable[[], AgentSnapshot]

STATUSES: Final = ("200", "400", "401", "403", "413", "429", "503", "transport_error")
"""`requests_total` statuses shown per connection from the start (others appear when seen)."""

DEAD_LETTER_REASONS: Final = (
    "encoder_failed",
    "event_too_large",
    "http_rejected",
    "http_too_large",
    "invalid_json",
    "line_too_long",
    "parse_timeout",
    "too_deeply_nested",
    "too_early",
    "too_late",
    "unencodable",
)
"""Every reason the readers and the splitter write a dead letter for, shown from the start."""

DROP_REASONS: Final = ("spool_full",)

PRUNE_REASONS: Final = ("age", "size")
"""The `[dead_letter]` bounds that delete dead letters: `max_age`, `max_size`."""

ENDPOINT_REFUSALS: Final = ("blanket_refusal", "not_found", "redirect")
"""The reasons `endpoint_refusing` shows (agent.ship.errors' EndpointRefused but auth; ops may
not import ship, a test keeps the two equal), each at 0 until it happens."""


class SnapshotCollector:
    """A prometheus_client collector that turns one fresh snapshot into all agent metrics."""

    def __init__(self, snapshot: SnapshotFn) -> None:
        self._snapshot = snapshot

    def __repr__(self) -> str:
        return f"<SnapshotCollector {self._snapshot!r}>"

    def describe(self) -> Iterable[Metric]:
        """Nothing up front: registering must not call `snapshot()` before the agent runs."""
        return ()

    def collect(self) -> Iterator[Metric]:
        yield from snapshot_metrics(self._snapshot())


def build_registry(snapshot: SnapshotFn, *, process_metrics: bool = True) -> CollectorRegistry:
    """A registry holding only this agent's metrics (and, by default, its process metrics)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(snapshot))
    if process_metrics:
        ProcessCollector(registry=registry)
    return registry


def render(registry: CollectorRegistry) -> bytes:
    """The text exposition of `registry`; serve it with `CONTENT_TYPE`."""
    return generate_latest(registry)


def snapshot_metrics(snap: AgentSnapshot) -> Iterator[Metric]:
    """Every agent metric family for one snapshot, in a stable order."""
    yield _info()
    yield from source_metrics(snap.sources)
    yield from reading_metrics(snap)
    yield from _delivery_metrics(snap)
    yield from _buffer_metrics(snap)
    yield from _loss_metrics(snap)
    yield _latency_histogram(snap.request_latency)
    yield from _health_metrics(snap)
    yield from _event_metrics(snap.events)


def _info() -> Metric:
    info = InfoMetricFamily(metric_name("build"), "The running polaris-agent version.")
    info.add_metric([], {"version": __version__})
    return info


def _delivery_metrics(snap: AgentSnapshot) -> Iterator[Metric]:
    sent_events = CounterMetricFamily(
        metric_name("sent_events"),
        "Events acknowledged by Polaris, by connection.",
        labels=["connection"],
    )
    sent_bytes = CounterMetricFamily(
        metric_name("sent_bytes"),
        "Uncompressed NDJSON bytes acknowledged by Polaris, by connection.",
        labels=["connection"],
    )
    requests = CounterMetricFamily(
        metric_name("requests"),
        "Requests to the Events API by connection and HTTP status, or transport_error when no "
        "answer came.",
        labels=["connection", "status"],
    )
    for connection in snap.connections:
        sent_events.add_metric([connection.name], connection.events_sent)
        sent_bytes.add_metric([connection.name], connection.bytes_sent)
        for status in sorted({*connection.requests, *STATUSES}):
            requests.add_metric([connection.name, status], connection.requests.get(status, 0))
    yield sent_events
    yield sent_bytes
    yield counter(
        "posted_bytes",
        "Request body bytes put on the wire (compressed when gzip is on), every attempt counted.",
        snap.bytes_posted,
    )
    yield requests
    yield counter("retries", "Requests sent again after a retryable failure.", snap.retries)
    yield counter(
        "sent_batches",
        "Batches acknowledged by Polaris (each half of a split batch counts).",
        snap.batches_delivered,
    )
    yield counter(
        "batch_splits",
        "Batches cut in two because Polaris refused them (413, or 400 to isolate bad events).",
        snap.splits,
    )
    yield counter(
        "spooled_batches",
        "Batches written to the disk spool because Polaris could not take them in time.",
        snap.batches_spooled,
    )
    if snap.ratelimit_remaining is not None:
        yield gauge(
            "ratelimit_remaining_requests",
            "RateLimit-Remaining from the last Polaris answer: requests left in this minute's "
            "window, shared by the whole organisation.",
            snap.ratelimit_remaining,
        )


def _buffer_metrics(snap: AgentSnapshot) -> Iterator[Metric]:
    yield gauge(
        "queue_bytes",
        "Encoded events waiting between the readers and the batcher; at its limit readers pause.",
        snap.queue_bytes,
    )
    yield gauge(
        "in_flight_batches",
        "Sealed batches waiting for a sender or inside a request.",
        snap.in_flight_batches,
    )
    yield gauge(
        "queue_max_bytes", "Configured queue capacity (queue.max_bytes).", snap.queue_max_bytes
    )
    yield gauge("spool_bytes", "Bytes held in the disk spool for retry.", snap.spool_bytes)
    yield gauge("spool_files", "Batches held in the disk spool.", snap.spool_files)
    yield gauge(
        "spool_max_bytes", "Configured spool capacity (spool.max_size).", snap.spool_max_bytes
    )
    yield counter(
        "spool_corrupt_files",
        "Spool files found unreadable and quarantined since start; their data was not sent.",
        snap.spool_corrupt_files,
    )


def _loss_metrics(snap: AgentSnapshot) -> Iterator[Metric]:
    yield labelled_counter(
        "dead_letters",
        "Lines or events written to dead-letter files in data_dir instead of Polaris, by reason.",
        "reason",
        snap.dead_letters,
        DEAD_LETTER_REASONS,
    )
    yield labelled_counter(
        "dead_letters_pruned",
        "Dead letters deleted to keep within [dead_letter] max_age or max_size, by reason "
        "(age, size): records, oldest files first. Size pruning deletes what nobody replayed.",
        "reason",
        snap.dead_letters_pruned,
        PRUNE_REASONS,
    )
    yield labelled_counter(
        "dropped_events",
        "Events given up without a dead letter, by reason (e.g. spool_full). Should stay 0.",
        "reason",
        snap.drops,
        DROP_REASONS,
    )


def _latency_histogram(latency: LatencySnapshot) -> Metric:
    """The snapshot counts per bucket; Prometheus buckets are cumulative (`le`)."""
    if len(latency.counts) != len(latency.bounds) + 1:
        raise ValueError(
            f"latency snapshot has {len(latency.counts)} counts for {len(latency.bounds)} bounds"
        )
    edges = [str(float(bound)) for bound in latency.bounds] + ["+Inf"]
    return HistogramMetricFamily(
        metric_name("request_duration_seconds"),
        "Time from sending a request to the Events API until its answer (or failure).",
        buckets=list(zip(edges, accumulate(latency.counts), strict=True)),
        sum_value=latency.total_seconds,
    )


def _health_metrics(snap: AgentSnapshot) -> Iterator[Metric]:
    yield gauge(
        "ready",
        "1 while /readyz answers 200: the agent reads (its reading task runs, the queue moves, "
        "each source can open its files). Says nothing about Polaris: see delivery_problem.",
        1 if readiness(snap).ready else 0,
    )
    problems = delivery_problems(snap)
    problem = GaugeMetricFamily(
        metric_name("delivery_problem"),
        "1 while data cannot reach Polaris for this reason: auth_failing, endpoint_refusing, "
        "spool_full, not_delivering (work pending, no acknowledgement for 60 s).",
        labels=["reason"],
    )
    for reason in DELIVERY_PROBLEMS:
        problem.add_metric([reason], 1 if reason in problems else 0)
    yield problem
    yield gauge(
        "auth_failing",
        "1 while Polaris answers 401/403 (data is kept and retried): check polaris.api_key.",
        1 if snap.auth_failing else 0,
    )
    if snap.seconds_since_success is not None:
        yield gauge(
            "last_success_age_seconds",
            "Seconds since Polaris last acknowledged a request; absent before the first.",
            snap.seconds_since_success,
        )
    refusing = GaugeMetricFamily(
        metric_name("endpoint_refusing"),
        "1 while the Events API refuses everything for a reason retrying cannot fix (redirect, "
        "not_found, blanket 400): data is kept; fix polaris.url or the connection.",
        labels=["reason"],
    )
    for reason in sorted({*ENDPOINT_REFUSALS, snap.endpoint_refusing}):
        refusing.add_metric([reason], 1 if reason and reason == snap.endpoint_refusing else 0)
    yield refusing
    yield gauge("uptime_seconds", "Seconds since the agent started.", snap.uptime_seconds)


def _event_metrics(events: Iterable[EventCount]) -> Iterator[Metric]:
    """One counter per named event (agent.ops.events), labelled as the event declares; every
    combination of declared label values is there (0) before it first happens."""
    for count in events:
        event = count.event
        family = CounterMetricFamily(
            metric_name(event.name), event.help, labels=[label.name for label in event.labels]
        )
        if event.labels:
            for key in sorted({*count.counts, *declared_keys(event)}):
                family.add_metric(list(key), count.counts.get(key, 0))
        else:
            family.add_metric([], count.total)
        yield family


def declared_keys(event: Event) -> Iterator[tuple[str, ...]]:
    """Every combination of `event`'s declared label values; none when a label has no closed
    set (its values come from the config or the code, and appear when first counted)."""
    if any(label.values is None for label in event.labels):
        return
    yield from product(*(sorted(label.values or ()) for label in event.labels))
