"""Every metric and label the shipped alert rules name, against what a running agent serves.

tests/packaging/test_monitoring.py checks names against the exposition of an agent built but
not run, with a plain file source: series that appear only when something happens (the first
acknowledgement, the first Kubernetes API failure) are not in it. Here the real agent runs as a
child process, with a file source shipping to the dev-server and a pods source whose API server
does not answer, and `/metrics` is scraped over HTTP once both have happened: an alert on a
metric the agent does not serve (a rename, a typo) fails here instead of never firing.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from agent.devserver import DevServer
from tests.support.endpoint import dev_server, log_dir
from tests.support.process import AgentProcess, make_agent
from tests.support.waiting import eventually

__all__ = ["dev_server", "log_dir", "make_agent"]

ALERTS = Path(__file__).resolve().parents[2] / "packaging" / "monitoring" / "alerts.yaml"
METRIC = re.compile(r"\b(polaris_agent_[a-z_]+|process_[a-z_]+|up)\b")
SELECTOR = re.compile(r"\b(polaris_agent_[a-z_]+)\{([^}]*)\}")
SCRAPE_ONLY = {"up"}  # Prometheus' own per-target series
TARGET_LABELS = {"instance", "job"}  # added by Prometheus to every scraped series


def alert_rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def served(text: str) -> dict[str, set[str]]:
    """Sample name -> its label names, from one exposition."""
    names: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            names.setdefault(sample.name, set()).update(sample.labels)
    return names


def problems(expr: str, exported: dict[str, set[str]]) -> list[str]:
    """What in `expr` the agent does not serve: metric names, selector and grouping labels."""
    found = [
        f"metric {name}"
        for name in sorted(set(METRIC.findall(expr)) - SCRAPE_ONLY)
        if name not in exported
    ]
    for name, matchers in SELECTOR.findall(expr):
        for label in re.findall(r"([a-z_]+)\s*[=!]", matchers):
            if name in exported and label not in exported[name] | TARGET_LABELS:
                found.append(f"label {label} of {name}")
    labels = set().union(*(exported.get(n, set()) for n in METRIC.findall(expr)))
    for group in re.findall(r"by \(([^)]*)\)", expr):
        for label in (part.strip() for part in group.split(",")):
            if label not in labels | TARGET_LABELS:
                found.append(f"grouping label {label}")
    return found


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def cri(message: str) -> str:
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")  # within the late window
    return f"{now} stdout F {message}\n"


async def test_every_alert_names_metrics_and_labels_a_running_agent_serves(
    make_agent: Callable[..., AgentProcess], log_dir: Path, dev_server: DevServer, tmp_path: Path
) -> None:
    token = tmp_path / "token"
    token.write_text("sa-token\n")
    pods = log_dir / "var/log/pods/shop_checkout-1_uid-1/app"
    pods.mkdir(parents=True)
    (pods / "0.log").write_text(cri("a container line"))
    (log_dir / "app.log").write_text('{"n": 1}\n')
    agent = make_agent(
        api={"listen": f"127.0.0.1:{free_port()}"},
        extra_sources=[
            {
                "name": "pods",
                "include": [f"{log_dir}/var/log/pods/*/*/*.log"],
                "format": "text",
                "kubernetes": {"format": "cri", "metadata_from_api": True},
            }
        ],
        kubernetes={
            "api_url": f"http://127.0.0.1:{free_port()}",  # nothing listens: `unreachable`
            "node_name": "node-1",
            "token_file": str(token),
        },
    )
    await agent.start()
    await agent.wait_until(agent.received(2), agent.event("kubernetes_api_failed"))
    await eventually(lambda: agent.named("admin_listening"), what="admin up")
    url = agent.named("admin_listening")[0]["url"]
    async with aiohttp.ClientSession() as http, http.get(f"{url}/metrics") as response:
        exported = served(await response.text())
    assert await agent.stop() == 0

    rules = alert_rules()
    assert any("kubernetes_api_failed" in rule["expr"] for rule in rules)
    unserved = {rule["alert"]: problems(rule["expr"], exported) for rule in rules}
    assert {alert: found for alert, found in unserved.items() if found} == {}


@pytest.mark.parametrize(
    ("expr", "found"),
    [
        ("polaris_agent_ready == 0", []),
        ("polaris_agent_redy == 0", ["metric polaris_agent_redy"]),
        ('polaris_agent_ready{source="x"} == 0', ["label source of polaris_agent_ready"]),
        ("sum by (instance, colour) (polaris_agent_ready)", ["grouping label colour"]),
    ],
)
def test_what_the_check_calls_unserved(expr: str, found: list[str]) -> None:
    exported = {"polaris_agent_ready": set[str]()}

    assert problems(expr, exported) == found
