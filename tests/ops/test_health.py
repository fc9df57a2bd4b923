"""Readiness rules and the sd_notify status line, from hand-built snapshots."""

from __future__ import annotations

import pytest

from agent.ops.health import (
    Liveness,
    Readiness,
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


def test_failing_auth_is_not_ready() -> None:
    assert readiness(healthy(auth_failing=True)) == Readiness(False, ("auth_failing",))


def test_a_full_spool_is_not_ready() -> None:
    full = healthy(spool_bytes=2**30, spool_files=900, spool_max_bytes=2**30)

    assert readiness(full) == Readiness(False, ("spool_full",))
    assert readiness(healthy(spool_bytes=2**30 - 1, spool_max_bytes=2**30)).ready


def test_no_spool_configured_is_never_full() -> None:
    assert readiness(healthy(spool_bytes=0, spool_max_bytes=0)).ready


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

    expected = Readiness(False, ("not_delivering",)) if stalled else Readiness(True, ())
    assert readiness(snapshot) == expected


def test_stall_after_is_configurable() -> None:
    snapshot = healthy(in_flight_batches=1, seconds_since_success=20.0)

    assert readiness(snapshot).ready
    assert readiness(snapshot, stall_after=10.0).reasons == ("not_delivering",)


def test_every_reason_is_reported_in_a_stable_order() -> None:
    snapshot = healthy(
        auth_failing=True,
        spool_bytes=100,
        spool_max_bytes=100,
        seconds_since_success=600.0,
    )

    assert readiness(snapshot).reasons == ("auth_failing", "spool_full", "not_delivering")


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
