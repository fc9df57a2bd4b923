"""The exposition an operator scrapes, parsed back and checked number by number."""

from __future__ import annotations

import dataclasses
import subprocess
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from agent import __version__
from agent.ops.events import Event, Events, Label
from agent.ops.metrics import DEAD_LETTER_REASONS, STATUSES, build_registry, render
from agent.ops.snapshot import AgentSnapshot, ConnectionSnapshot, SourceSnapshot

from .snapshots import healthy


def scrape(snapshot: AgentSnapshot, *, process_metrics: bool = True) -> list[Sample]:
    registry = build_registry(lambda: snapshot, process_metrics=process_metrics)
    text = render(registry).decode()
    return [s for family in text_string_to_metric_families(text) for s in family.samples]


def value(samples: list[Sample], name: str, **labels: str) -> float:
    matches = [s.value for s in samples if s.name == name and s.labels == labels]
    assert len(matches) == 1, f"{name}{labels}: {len(matches)} samples"
    return matches[0]


def names(samples: list[Sample]) -> set[str]:
    return {s.name for s in samples}


def test_reading_is_counted_per_source() -> None:
    samples = scrape(healthy())

    assert value(samples, "polaris_agent_read_lines_total", source="app") == 1200
    assert value(samples, "polaris_agent_read_lines_total", source="nginx") == 34
    assert value(samples, "polaris_agent_read_bytes_total", source="app") == 96_000
    assert value(samples, "polaris_agent_read_bytes_total", source="nginx") == 4_100
    assert value(samples, "polaris_agent_checkpoint_lag_bytes", source="app") == 512
    assert value(samples, "polaris_agent_open_files", source="app") == 2
    assert value(samples, "polaris_agent_tracked_files", source="app") == 3
    assert value(samples, "polaris_agent_tracked_files", source="nginx") == 1
    outcomes = "polaris_agent_parse_outcomes_total"
    assert value(samples, outcomes, source="nginx", outcome="unmatched") == 3
    assert value(samples, outcomes, source="nginx", outcome="too_late") == 1
    assert not [s for s in samples if s.name == outcomes and s.labels["source"] == "app"]


def test_delivery_counters_and_requests_by_status() -> None:
    samples = scrape(healthy())

    # Issue 15: delivery series carry the connection ("default" in `healthy`).
    assert value(samples, "polaris_agent_sent_events_total", connection="default") == 1234
    assert value(samples, "polaris_agent_sent_bytes_total", connection="default") == 98_765
    assert value(samples, "polaris_agent_posted_bytes_total") == 12_345
    requests = "polaris_agent_requests_total"
    assert value(samples, requests, connection="default", status="200") == 40
    assert value(samples, requests, connection="default", status="429") == 2
    assert value(samples, requests, connection="default", status="transport_error") == 1
    assert value(samples, "polaris_agent_retries_total") == 3
    assert value(samples, "polaris_agent_ratelimit_remaining_requests") == 57


def test_buffers_spool_and_losses() -> None:
    snapshot = healthy(
        spool_bytes=4096,
        spool_files=2,
        spool_corrupt_files=1,
        drops={"spool_full": 7},
        in_flight_batches=3,
    )
    samples = scrape(snapshot)

    assert value(samples, "polaris_agent_queue_bytes") == 12 * 1024
    assert value(samples, "polaris_agent_in_flight_batches") == 3
    assert value(samples, "polaris_agent_spool_bytes") == 4096
    assert value(samples, "polaris_agent_spool_files") == 2
    assert value(samples, "polaris_agent_spool_max_bytes") == 2**30
    assert value(samples, "polaris_agent_spool_corrupt_files_total") == 1
    assert value(samples, "polaris_agent_dead_letters_total", reason="invalid_json") == 2
    assert value(samples, "polaris_agent_dead_letters_total", reason="line_too_long") == 1
    assert value(samples, "polaris_agent_dropped_events_total", reason="spool_full") == 7


def test_latency_buckets_are_cumulative() -> None:
    samples = scrape(healthy())

    def bucket(le: str) -> float:
        return value(samples, "polaris_agent_request_duration_seconds_bucket", le=le)

    # Observed: 0.003, 0.02, 0.02, 45.0 (beyond the last bound of 30 s).
    assert bucket("0.005") == 1
    assert bucket("0.01") == 1
    assert bucket("0.025") == 3
    assert bucket("30.0") == 3
    assert bucket("+Inf") == 4
    assert value(samples, "polaris_agent_request_duration_seconds_count") == 4
    assert value(samples, "polaris_agent_request_duration_seconds_sum") == pytest.approx(45.043)


def test_health_gauges() -> None:
    samples = scrape(healthy(auth_failing=True, seconds_since_success=12.5))

    assert value(samples, "polaris_agent_auth_failing") == 1
    assert value(samples, "polaris_agent_last_success_age_seconds") == 12.5
    assert value(samples, "polaris_agent_uptime_seconds") == 3600
    assert value(samples, "polaris_agent_build_info", version=__version__) == 1
    assert value(scrape(healthy()), "polaris_agent_auth_failing") == 0


def test_unknown_values_are_absent_not_zero() -> None:
    """0 would read as "rate limit exhausted" / "succeeded just now"; absent is the truth."""
    samples = scrape(healthy(ratelimit_remaining=None, seconds_since_success=None))

    assert "polaris_agent_ratelimit_remaining_requests" not in names(samples)
    assert "polaris_agent_last_success_age_seconds" not in names(samples)


def test_process_metrics_are_in_the_agent_registry() -> None:
    samples = scrape(healthy())

    assert value(samples, "process_resident_memory_bytes") > 0
    assert value(samples, "process_open_fds") > 0
    assert "process_cpu_seconds_total" in names(samples)
    assert "process_cpu_seconds_total" not in names(scrape(healthy(), process_metrics=False))


def test_labels_are_bounded_and_names_prefixed() -> None:
    samples = scrape(healthy(drops={"spool_full": 1}), process_metrics=False)

    assert all(s.name.startswith("polaris_agent_") for s in samples)
    label_names = {name for s in samples for name in s.labels}
    assert label_names == {
        *("source", "status", "reason", "outcome", "le", "version"),
        *("connection", "operation"),  # issue 15
    }


def test_each_scrape_reads_one_fresh_snapshot() -> None:
    calls: list[int] = []

    def snapshot() -> AgentSnapshot:
        calls.append(1)
        return healthy(events_sent=len(calls))

    registry = build_registry(snapshot)
    assert calls == []  # registering does not read the agent

    for expected in (1, 2):
        text = render(registry).decode()
        samples = [s for f in text_string_to_metric_families(text) for s in f.samples]
        assert value(samples, "polaris_agent_sent_events_total", connection="default") == expected
    assert len(calls) == 2


def test_registries_are_independent() -> None:
    first = render(build_registry(lambda: healthy(events_sent=1)))
    second = render(build_registry(lambda: healthy(events_sent=2)))

    assert b'polaris_agent_sent_events_total{connection="default"} 1.0' in first
    assert b'polaris_agent_sent_events_total{connection="default"} 2.0' in second


def test_a_malformed_latency_snapshot_fails_loudly() -> None:
    broken = healthy().request_latency
    snapshot = healthy(request_latency=type(broken)(broken.bounds, (1, 2), 0.1))

    with pytest.raises(ValueError, match="2 counts for 12 bounds"):
        render(build_registry(lambda: snapshot))


def test_reading_and_sending_details_are_exported() -> None:
    """Counted by the tailer and the sender since long, shown since issue 16."""
    app, nginx = healthy().sources
    samples = scrape(
        healthy(
            sources=(dataclasses.replace(app, events=1150), nginx),
            truncations=2,
            held_copies=1,
            blank_lines=5,
            rejected_lines=6,
            unterminated_lines=1,
            splits=3,
            batches_delivered=40,
            batches_spooled=4,
        )
    )

    assert value(samples, "polaris_agent_read_events_total", source="app") == 1150
    assert value(samples, "polaris_agent_read_events_total", source="nginx") == 0
    assert value(samples, "polaris_agent_file_truncations_total") == 2
    assert value(samples, "polaris_agent_held_copies") == 1
    assert value(samples, "polaris_agent_blank_lines_total") == 5
    assert value(samples, "polaris_agent_rejected_lines_total") == 6
    assert value(samples, "polaris_agent_unterminated_lines_total") == 1
    assert value(samples, "polaris_agent_batch_splits_total") == 3
    assert value(samples, "polaris_agent_sent_batches_total") == 40
    assert value(samples, "polaris_agent_spooled_batches_total") == 4


def test_a_refusing_endpoint_is_a_gauge_with_its_reason() -> None:
    refusing = scrape(healthy(endpoint_refusing="not_found"))
    working = scrape(healthy())

    assert value(refusing, "polaris_agent_endpoint_refusing", reason="not_found") == 1
    assert value(working, "polaris_agent_endpoint_refusing", reason="") == 0  # "": no label


def test_delivery_is_counted_per_connection() -> None:
    samples = scrape(
        healthy(
            connections=(
                ConnectionSnapshot("audit", {"200": 3, "401": 1}, 30, 3000),
                ConnectionSnapshot("web", {"200": 9}, 900, 90_000),
            )
        )
    )

    sent = "polaris_agent_sent_events_total"
    assert value(samples, sent, connection="audit") == 30
    assert value(samples, sent, connection="web") == 900
    assert value(samples, "polaris_agent_sent_bytes_total", connection="web") == 90_000
    requests = "polaris_agent_requests_total"
    assert value(samples, requests, connection="audit", status="401") == 1
    assert value(samples, requests, connection="web", status="401") == 0  # shown before it happens


def test_every_label_set_is_shown_from_the_first_scrape() -> None:
    """A series born at 1 is invisible to increase(): the first dead letter, the first 401."""
    app = SourceSnapshot("app", 0, 0, 0, 0, 0)
    samples = scrape(
        healthy(
            sources=(app,),
            connections=(ConnectionSnapshot("default", {}),),
            requests={},
            dead_letters={},
            drops={},
            events_sent=0,
        ),
        process_metrics=False,
    )

    assert value(samples, "polaris_agent_sent_events_total", connection="default") == 0
    for status in STATUSES:
        assert (
            value(samples, "polaris_agent_requests_total", connection="default", status=status) == 0
        )
    for reason in DEAD_LETTER_REASONS:
        assert value(samples, "polaris_agent_dead_letters_total", reason=reason) == 0
    assert value(samples, "polaris_agent_dropped_events_total", reason="spool_full") == 0
    for operation in ("open", "read"):
        errors = "polaris_agent_file_errors_total"
        assert value(samples, errors, source="app", operation=operation) == 0
    for reason in ("auth_failing", "endpoint_refusing", "spool_full", "not_delivering"):
        assert value(samples, "polaris_agent_delivery_problem", reason=reason) == 0


def test_file_errors_and_unreadable_files_per_source() -> None:
    app, nginx = healthy().sources
    locked = dataclasses.replace(nginx, unreadable_files=2, open_failures=3, read_failures=1)
    samples = scrape(healthy(sources=(app, locked)))

    assert value(samples, "polaris_agent_unreadable_files", source="nginx") == 2
    assert value(samples, "polaris_agent_unreadable_files", source="app") == 0
    errors = "polaris_agent_file_errors_total"
    assert value(samples, errors, source="nginx", operation="open") == 3
    assert value(samples, errors, source="nginx", operation="read") == 1


def test_ready_and_delivery_problems_are_gauges() -> None:
    outage = scrape(healthy(auth_failing=True, seconds_since_success=600.0))
    stopped = scrape(healthy(reading=False))

    assert value(outage, "polaris_agent_ready") == 1  # readiness is about reading
    assert value(outage, "polaris_agent_delivery_problem", reason="auth_failing") == 1
    assert value(outage, "polaris_agent_delivery_problem", reason="not_delivering") == 1
    assert value(outage, "polaris_agent_delivery_problem", reason="spool_full") == 0
    assert value(stopped, "polaris_agent_ready") == 0
    assert value(scrape(healthy(queue_max_bytes=2**24)), "polaris_agent_queue_max_bytes") == 2**24


REJECTED = Event("reload_rejected", "A reload was refused.", "error")
OUTCOME = Event(
    "probe_answered", "A probe.", labels=(Label("outcome", frozenset({"ok", "failed"})),)
)


def counted_events() -> Events:
    events = Events()
    events.declare(REJECTED, OUTCOME)
    events.emit(OUTCOME, outcome="ok")
    events.emit(OUTCOME, outcome="ok")
    events.emit(OUTCOME, outcome="\x1b[31m hostile")
    return events


def test_each_named_event_is_a_counter() -> None:
    samples = scrape(healthy(events=counted_events().snapshot()))

    assert value(samples, "polaris_agent_reload_rejected_total") == 0  # declared: shown as 0
    assert value(samples, "polaris_agent_probe_answered_total", outcome="ok") == 2
    assert value(samples, "polaris_agent_probe_answered_total", outcome="other") == 1


@pytest.mark.parametrize(
    "snapshot",
    [
        pytest.param(healthy(), id="busy"),
        pytest.param(
            healthy(
                sources=(),
                requests={},
                dead_letters={},
                ratelimit_remaining=None,
                seconds_since_success=None,
            ),
            id="just-started",
        ),
        pytest.param(healthy(drops={"spool_full": 3}, auth_failing=True), id="failing"),
        pytest.param(
            healthy(endpoint_refusing="redirect", events=counted_events().snapshot()),
            id="refusing-with-events",
        ),
    ],
)
def test_promtool_accepts_the_exposition(promtool: Path, snapshot: AgentSnapshot) -> None:
    exposition = render(build_registry(lambda: snapshot))

    result = subprocess.run(
        [str(promtool), "check", "metrics"],
        input=exposition,
        capture_output=True,
        timeout=60,
        check=False,
    )

    assert (result.returncode, result.stdout, result.stderr) == (0, b"", b"")


def test_dead_letters_pruned_by_a_bound_are_counted_by_reason() -> None:
    samples = scrape(healthy(dead_letters_pruned={"size": 40}), process_metrics=False)

    pruned = "polaris_agent_dead_letters_pruned_total"
    assert value(samples, pruned, reason="size") == 40
    assert value(samples, pruned, reason="age") == 0  # shown before the first
    assert value(scrape(healthy(), process_metrics=False), pruned, reason="size") == 0
