"""Readiness rules and the sd_notify status line, from hand-built snapshots."""

from __future__ import annotations

import dataclasses

import pytest

from agent.ops.health import (
    Liveness,
    Readiness,
    delivery_problems,
    format_bytes,
    liveness,
    readiness,
    status_line,
)

from .snapshots import healthy


def test_alive_whenever_asked() -> None:
    assert liveness() == Liveness(status="alive")


def test_a_delivering_agent_is_ready() -> None:
    assert readiness(healthy()) == Readiness(ready=True, reasons=())


# Issue 15: readiness is "the agent reads"; what keeps data from Polaris is a delivery
# problem (a metric, the status line, an alert), so a Polaris outage or a revoked key, which
# old and new pods share, never stalls a `maxUnavailable: 1` DaemonSet rollout. Until issue 15
# these four made /readyz answer 503; the assertions below moved from `readiness` to
# `delivery_problems` on purpose.


def test_failing_auth_is_a_delivery_problem_not_unreadiness() -> None:
    snapshot = healthy(auth_failing=True)

    assert delivery_problems(snapshot) == ("auth_failing",)
    assert readiness(snapshot) == Readiness(True, ())


def test_a_full_spool_is_a_delivery_problem() -> None:
    full = healthy(spool_bytes=2**30, spool_files=900, spool_max_bytes=2**30)

    assert delivery_problems(full) == ("spool_full",)
    assert readiness(full).ready
    assert delivery_problems(healthy(spool_bytes=2**30 - 1, spool_max_bytes=2**30)) == ()


def test_no_spool_configured_is_never_full() -> None:
    assert delivery_problems(healthy(spool_bytes=0, spool_max_bytes=0)) == ()


@pytest.mark.parametrize(
    ("in_flight", "queue", "spooled", "since", "uptime", "stalled"),
    [
        pytest.param(1, 0, 0, 61.0, 3600.0, True, id="in-flight-for-too-long"),
        pytest.param(0, 4096, 0, 61.0, 3600.0, True, id="queued-for-too-long"),
        pytest.param(0, 0, 3, 61.0, 3600.0, True, id="spooled-in-an-outage-for-too-long"),
        pytest.param(1, 4096, 3, 59.0, 3600.0, False, id="recent-success"),
        pytest.param(0, 0, 0, 3600.0, 3600.0, False, id="idle-is-not-stalled"),
        pytest.param(1, 0, 0, None, 61.0, True, id="never-succeeded-since-start"),
        pytest.param(1, 0, 0, None, 30.0, False, id="just-started"),
    ],
)
def test_pending_work_without_success_is_not_delivering(
    in_flight: int, queue: int, spooled: int, since: float | None, uptime: float, stalled: bool
) -> None:
    snapshot = healthy(
        in_flight_batches=in_flight,
        queue_bytes=queue,
        spool_files=spooled,
        seconds_since_success=since,
        uptime_seconds=uptime,
    )

    assert delivery_problems(snapshot) == (("not_delivering",) if stalled else ())
    assert readiness(snapshot).ready


def test_stall_after_is_configurable() -> None:
    snapshot = healthy(in_flight_batches=1, seconds_since_success=20.0)

    assert delivery_problems(snapshot) == ()
    assert delivery_problems(snapshot, stall_after=10.0) == ("not_delivering",)


def test_every_delivery_problem_is_reported_in_a_stable_order() -> None:
    snapshot = healthy(
        auth_failing=True,
        spool_bytes=100,
        spool_max_bytes=100,
        seconds_since_success=600.0,
    )

    assert delivery_problems(snapshot) == ("auth_failing", "spool_full", "not_delivering")


def test_a_polaris_outage_with_a_spool_keeps_the_agent_ready() -> None:
    """The queue moves into the spool; nothing was acknowledged for ten minutes."""
    outage = healthy(
        seconds_since_success=600.0, spool_files=40, spool_bytes=2**20, queue_idle_seconds=0.5
    )

    assert readiness(outage) == Readiness(True, ())
    assert delivery_problems(outage) == ("not_delivering",)


def test_not_reading_is_not_ready() -> None:
    assert readiness(healthy(reading=False)) == Readiness(False, ("not_reading",))


def test_a_source_that_can_open_none_of_its_files_is_not_ready() -> None:
    app, nginx = healthy().sources
    locked = dataclasses.replace(nginx, unreadable_files=2, files=0, open_files=0)
    some_open = dataclasses.replace(nginx, unreadable_files=2, files=1)

    assert readiness(healthy(sources=(app, locked))) == Readiness(False, ("files_unreadable",))
    assert readiness(healthy(sources=(app, some_open))).ready


def test_a_journal_source_whose_journalctl_is_not_running_is_not_ready() -> None:
    app, nginx = healthy().sources
    following = dataclasses.replace(nginx, journal={"entries": 10, "child_running": 1})
    down = dataclasses.replace(nginx, journal={"entries": 10, "child_running": 0})

    assert readiness(healthy(sources=(app, following))).ready
    assert readiness(healthy(sources=(app, down))) == Readiness(False, ("journal_down",))


@pytest.mark.parametrize(
    ("queue", "idle", "spool", "wedged"),
    [
        pytest.param(4096, 61.0, {}, True, id="stuck-with-room-in-the-spool"),
        pytest.param(4096, 59.0, {}, False, id="moved-recently"),
        pytest.param(0, 3600.0, {}, False, id="empty-and-idle"),
        pytest.param(4096, 61.0, {"spool_max_bytes": 0}, False, id="no-spool-is-backpressure"),
        pytest.param(4096, 61.0, {"spool_bytes": 2**30}, False, id="full-spool-is-backpressure"),
    ],
)
def test_a_queue_that_stops_moving_for_no_delivery_reason_is_wedged(
    queue: int, idle: float, spool: dict[str, int], wedged: bool
) -> None:
    snapshot = healthy(queue_bytes=queue, queue_idle_seconds=idle, **spool)

    expected = Readiness(False, ("queue_wedged",)) if wedged else Readiness(True, ())
    assert readiness(snapshot) == expected


def test_status_line_while_shipping() -> None:
    snapshot = healthy(dead_letters={}, queue_bytes=12 * 1024, spool_bytes=0)

    assert status_line(snapshot) == "shipping: 1234 events sent, queue 12 KiB, spool 0 B"


def test_status_line_names_problems_and_dead_letters() -> None:
    snapshot = healthy(auth_failing=True, spool_bytes=3 * 2**20 // 2)

    assert status_line(snapshot) == (
        "auth failing: 1234 events sent, queue 12 KiB, spool 1.5 MiB, 3 dead letters"
    )


@pytest.mark.parametrize(
    ("count", "text"),
    [
        (0, "0 B"),
        (1023, "1023 B"),
        (1024, "1 KiB"),
        (1536, "1.5 KiB"),
        (2**20 - 1, "1 MiB"),
        (5 * 2**30, "5 GiB"),
        (3 * 2**50, "3 PiB"),
        (2**60, "1024 PiB"),
    ],
)
def test_format_bytes(count: int, text: str) -> None:
    assert format_bytes(count) == text
