"""A named event logs and counts in one call; its labels stay bounded."""

from __future__ import annotations

import pytest
import structlog

from agent.ops.events import OTHER, Event, Events, Label

SPOOLED = Event(
    "batch_spooled",
    "A batch went to the spool.",
    level="warning",
    labels=(Label("why", frozenset({"deadline", "outage"})), Label("source")),
)
STARTED = Event("agent_started", "Started.")


def test_one_call_logs_the_event_with_every_field_and_counts_it() -> None:
    events = Events()

    with structlog.testing.capture_logs() as logs:
        events.emit(SPOOLED, why="outage", source="app", batch=7)

    assert logs == [
        {
            "event": "batch_spooled",
            "log_level": "warning",
            "why": "outage",
            "source": "app",
            "batch": 7,
        }
    ]
    assert events.count(SPOOLED) == 1
    assert events.count(SPOOLED, why="outage", source="app") == 1
    assert events.count(SPOOLED, why="deadline", source="app") == 0


def test_a_value_outside_the_declared_set_is_counted_as_other_but_logged_as_is() -> None:
    events = Events()

    with structlog.testing.capture_logs() as logs:
        for hostile in ("x" * 300, "\x1b[31m", "deadline "):
            events.emit(SPOOLED, why=hostile, source="app")

    [count] = events.snapshot()
    assert count.counts == {(OTHER, "app"): 3}
    assert [log["why"] for log in logs] == ["x" * 300, "\x1b[31m", "deadline "]


def test_declared_events_are_reported_before_they_happen() -> None:
    events = Events()
    events.declare(STARTED, SPOOLED)

    assert [(c.event.name, c.total) for c in events.snapshot()] == [
        ("agent_started", 0),
        ("batch_spooled", 0),
    ]


def test_two_agents_count_apart() -> None:
    first, second = Events(), Events()

    with structlog.testing.capture_logs():
        first.emit(STARTED)

    assert (first.count(STARTED), second.count(STARTED)) == (1, 0)


def test_two_different_events_cannot_share_a_name() -> None:
    events = Events()
    events.declare(STARTED)

    with pytest.raises(ValueError, match="agent_started"):
        events.emit(Event("agent_started", "Another meaning.", level="error"))
