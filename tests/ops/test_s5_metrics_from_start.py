"""docs/metrics.md promises label sets "there from the first scrape": every dead-letter reason,
the common request statuses, every delivery_problem reason, and every named event's counter
at 0 before it first happens. A series that appears only at its first event is invisible to
`increase()`/`rate()` (no earlier sample) and trips `absent()` alerts. Scraped here from a real
agent (a child process) that has read nothing and sent nothing yet; the closed label sets of
labelled events are checked on the exposition itself.
"""

from __future__ import annotations

import itertools
import re
import socket
from collections.abc import Callable
from pathlib import Path

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from agent.devserver import DevServer
from agent.kube.cache import KUBERNETES_API_FAILED, KUBERNETES_LISTED
from agent.ops.events import Events
from agent.ops.metrics import ENDPOINT_REFUSALS, build_registry, render
from agent.runtime import AGENT_STOPPING
from agent.ship.errors import AuthFailed, EndpointRefused
from tests.ops.snapshots import healthy
from tests.support.config import CONNECTION
from tests.support.endpoint import dev_server, log_dir
from tests.support.process import AgentProcess, make_agent
from tests.support.waiting import eventually

__all__ = ["dev_server", "log_dir", "make_agent"]

DOC = Path(__file__).resolve().parents[2] / "docs" / "metrics.md"
Series = dict[tuple[str, frozenset[tuple[str, str]]], float]


def series(text: str) -> Series:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def at_zero(found: Series, name: str, **labels: str) -> bool:
    return found.get((name, frozenset(labels.items()))) == 0


def documented_row(metric: str) -> str:
    [row] = [line for line in DOC.read_text().splitlines() if line.startswith(f"| `{metric}` |")]
    return row


def documented_dead_letter_reasons() -> list[str]:
    meaning = documented_row("polaris_agent_dead_letters").split("|")[4]
    return re.findall(r"`([a-z_]+)`", meaning)


def documented_events() -> list[str]:
    section = DOC.read_text().split("## Named events")[1].split("\n## ")[0]
    return [
        name
        for row in section.splitlines()
        if row.startswith("| `")
        for name in re.findall(r"`([a-z_]+)`", row.split("|")[1])
    ]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def test_documented_label_sets_are_at_zero_before_anything_happens(
    make_agent: Callable[..., AgentProcess], dev_server: DevServer
) -> None:
    agent = make_agent(api={"listen": f"127.0.0.1:{free_port()}"})  # an empty log folder
    await agent.start()
    await eventually(lambda: agent.named("admin_listening"), what="admin up")
    url = agent.named("admin_listening")[0]["url"]
    async with aiohttp.ClientSession() as http, http.get(f"{url}/metrics") as response:
        found = series(await response.text())
    assert await agent.stop() == 0
    assert dev_server.received_lines() == []  # nothing happened before the scrape

    missing = [
        f"dead_letters{{reason={reason}}}"
        for reason in documented_dead_letter_reasons()
        if not at_zero(found, "polaris_agent_dead_letters_total", reason=reason)
    ]
    missing += [
        f"requests{{status={status}}}"
        for status in ("200", "400", "401", "403", "413", "429", "503", "transport_error")
        if not at_zero(found, "polaris_agent_requests_total", connection=CONNECTION, status=status)
    ]
    missing += [
        f"{name}{{reason={reason}}}"
        for name, reason in [
            ("dead_letters_pruned_total", "age"),
            ("dead_letters_pruned_total", "size"),
            ("dropped_events_total", "spool_full"),
            ("delivery_problem", "auth_failing"),
            ("delivery_problem", "endpoint_refusing"),
            ("delivery_problem", "spool_full"),
            ("delivery_problem", "not_delivering"),
            ("endpoint_refusing", "redirect"),
            ("endpoint_refusing", "not_found"),
            ("endpoint_refusing", "blanket_refusal"),
        ]
        if not at_zero(found, f"polaris_agent_{name}", reason=reason)
    ]
    kube_only = {name for name in documented_events() if name.startswith("kubernetes_")}
    names = {name for name, _ in found}
    missing += [
        f"{event}_total"
        for event in documented_events()
        if event not in kube_only and f"polaris_agent_{event}_total" not in names
    ]
    missing += [
        f"agent_stopping{{signal={signal}}}"
        for signal in ("SIGTERM", "SIGINT")
        if not at_zero(found, "polaris_agent_agent_stopping_total", signal=signal)
    ]
    assert missing == [], missing


def test_a_labelled_event_of_closed_values_shows_every_combination_at_zero() -> None:
    events = Events()
    events.declare(AGENT_STOPPING, KUBERNETES_API_FAILED, KUBERNETES_LISTED)
    events.emit(KUBERNETES_API_FAILED, resource="pods", reason="forbidden")
    found = series(render(build_registry(lambda: healthy(events=events.snapshot()))).decode())

    [resources, reasons] = (sorted(label.values or ()) for label in KUBERNETES_API_FAILED.labels)
    failed = "polaris_agent_kubernetes_api_failed_total"
    for resource, reason in itertools.product(resources, reasons):
        expected = 1 if (resource, reason) == ("pods", "forbidden") else 0
        assert found[(failed, frozenset({"resource": resource, "reason": reason}.items()))] == (
            expected
        )
    for resource in resources:
        assert at_zero(found, "polaris_agent_kubernetes_listed_total", resource=resource)
    assert at_zero(found, "polaris_agent_agent_stopping_total", signal="auth_refused")


def test_the_endpoint_refusals_shown_are_those_the_sender_reports() -> None:
    refusals = {
        cls.reason for cls in EndpointRefused.__subclasses__() if not issubclass(cls, AuthFailed)
    }
    assert set(ENDPOINT_REFUSALS) == refusals
