"""Every observable happening is one named event that logs and counts in one call.

    RELOAD_REJECTED = Event("reload_rejected", "A SIGHUP found a config with problems.")
    events.emit(RELOAD_REJECTED, problems=[...])

logs `reload_rejected` with its fields (structlog, at the event's level) and adds one to the
counter that /metrics shows as `polaris_agent_reload_rejected_total`. A log line and its count
can no longer disagree, and a new happening is one declaration.

Labels are bounded, as Vector's internal events are: an event names its label keys, and a
label whose allowed values are declared counts any other value as `other`, so a hostile log
line or header can never grow the number of series. Labels without declared values must come
from the config (a source name) or from the code.

This module imports nothing from the agent: every stage may emit events (ARCHITECTURE.md), and
an `Events` belongs to one agent, so two agents in one process (tests) count apart.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal

import structlog

Level = Literal["debug", "info", "warning", "error"]
OTHER: Final = "other"
"""The label value a value outside an event's declared set is counted as."""


@dataclass(frozen=True, slots=True)
class Label:
    """A label key; `values`, when given, is the closed set of values it may take."""

    name: str
    values: frozenset[str] | None = None

    def bounded(self, value: object) -> str:
        text = str(value)
        if self.values is not None and text not in self.values:
            return OTHER
        return text


@dataclass(frozen=True, slots=True)
class Event:
    """A kind of happening: its log event name, counter name, level and label keys."""

    name: str  # the log event, and the counter `polaris_agent_<name>_total`
    help: str  # the counter's help text: what happened, and what to do about it
    level: Level = "info"
    labels: tuple[Label, ...] = ()

    def key(self, fields: Mapping[str, Any]) -> tuple[str, ...]:
        """The bounded label values of one occurrence, in the order of `labels`."""
        return tuple(label.bounded(fields.get(label.name, "")) for label in self.labels)


@dataclass(frozen=True, slots=True)
class EventCount:
    """How often one event happened, per combination of label values."""

    event: Event
    counts: Mapping[tuple[str, ...], int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.counts.values())


class Events:
    """One agent's event counters, and its logger. `declare` makes an event show as 0 in
    /metrics before it first happens, which alert rules on `increase()` need."""

    def __init__(self, logger: Any = None) -> None:
        self._log = logger if logger is not None else structlog.get_logger("agent")
        self._counts: dict[str, dict[tuple[str, ...], int]] = {}
        self._events: dict[str, Event] = {}

    def __repr__(self) -> str:
        total = sum(sum(counts.values()) for counts in self._counts.values())
        return f"<Events kinds={len(self._events)} emitted={total}>"

    def declare(self, *events: Event) -> None:
        for event in events:
            self._known(event)

    def emit(self, event: Event, /, **fields: Any) -> None:
        """Count one `event` under its bounded labels and log it with every field."""
        counts = self._known(event)
        key = event.key(fields)
        counts[key] = counts.get(key, 0) + 1
        getattr(self._log, event.level)(event.name, **fields)

    def count(self, event: Event, **labels: str) -> int:
        """How often `event` happened with these label values (all of them when none)."""
        counts = self._counts.get(event.name, {})
        if not labels:
            return sum(counts.values())
        return counts.get(event.key(labels), 0)

    def snapshot(self) -> tuple[EventCount, ...]:
        """Every declared or emitted event with its counts, ordered by name."""
        return tuple(
            EventCount(self._events[name], dict(self._counts[name]))
            for name in sorted(self._events)
        )

    def _known(self, event: Event) -> dict[tuple[str, ...], int]:
        known = self._events.setdefault(event.name, event)
        if known != event:
            raise ValueError(f"two different events are named {event.name!r}")
        return self._counts.setdefault(event.name, {})
