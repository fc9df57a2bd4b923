"""The shipped alert rules and dashboard (issue 15) against the metrics the agent exports.

The rules are tested by promtool (`promtool test rules`, fetched from Debian's prometheus
package by tests/support/promtool.py; the tests skip, saying why, only when it cannot be had).
The metric names every rule and dashboard query uses are checked against the exposition of a
real agent, built from a config and scraped once (not run): a renamed metric breaks here
instead of in an operator's Grafana.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from agent.config import load_config
from agent.ops.metrics import build_registry, render
from agent.runtime import Agent
from tests.support.config import agent_config, render_toml
from tests.support.promtool import promtool

__all__ = ["promtool"]

ROOT = Path(__file__).resolve().parents[2]
MONITORING = ROOT / "packaging" / "monitoring"
ALERTS = MONITORING / "alerts.yaml"
DASHBOARD = MONITORING / "dashboard.json"
METRICS_DOC = ROOT / "docs" / "metrics.md"

METRIC = re.compile(r"\b(polaris_agent_[a-z_]+|process_[a-z_]+|up)\b")
SCRAPE_ONLY = {"up"}  # Prometheus' own per-target series, not the agent's
LATER = {
    # Absent until known (0 would lie): see docs/metrics.md.
    "polaris_agent_last_success_age_seconds": set(),
    "polaris_agent_ratelimit_remaining_requests": set(),
    # Only with a metadata_from_api source, from its first failure (test_alert_metrics_live.py).
    "polaris_agent_kubernetes_api_failed_total": {"resource", "reason"},
    # One sample per outcome seen; the outcomes are many and depend on the parser.
    "polaris_agent_parse_outcomes_total": {"source", "outcome"},
}


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, set[str]]:
    """Sample name -> label names, from one scrape of a real (not running) agent."""
    tmp = tmp_path_factory.mktemp("agent")
    doc = agent_config(tmp / "data", "http://127.0.0.1:9", tmp / "logs")
    doc["polaris"]["api_key"] = "unused-key-0123456789"
    (tmp / "agent.toml").write_text(render_toml(doc))
    agent = Agent(load_config(tmp / "agent.toml"))
    text = render(build_registry(agent.snapshot)).decode()
    names: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            names.setdefault(sample.name, set()).update(sample.labels)
    return names | {name: labels for name, labels in LATER.items() if name not in names}


def alert_rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def dashboard_exprs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "expr" and isinstance(value, str):
                yield value
            elif key == "query" and isinstance(value, dict) and "query" in value:
                yield value["query"]
            else:
                yield from dashboard_exprs(value)
    elif isinstance(node, list):
        for item in node:
            yield from dashboard_exprs(item)


def unknown_metrics(expr: str, exported: dict[str, set[str]]) -> set[str]:
    return {name for name in METRIC.findall(expr) if name not in exported} - SCRAPE_ONLY


def test_the_alert_rules_pass_their_promtool_tests(promtool: Path) -> None:
    result = subprocess.run(
        [str(promtool), "test", "rules", "alerts_test.yaml"],
        cwd=MONITORING,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_accepts_the_rules(promtool: Path) -> None:
    result = subprocess.run(
        [str(promtool), "check", "rules", str(ALERTS)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_has_a_test_and_a_runbook_section() -> None:
    tests = (MONITORING / "alerts_test.yaml").read_text()
    troubleshooting = (ROOT / "docs" / "troubleshooting.md").read_text()
    anchors = {_anchor(line) for line in troubleshooting.splitlines() if line.startswith("## ")}
    for rule in alert_rules():
        assert f"alertname: {rule['alert']}" in tests, rule["alert"]
        anchor = rule["annotations"]["runbook"].split("#", 1)[1]
        assert anchor in anchors, f"{rule['alert']}: no '## ' heading for #{anchor}"


def _anchor(heading: str) -> str:
    """GitHub's anchor for a markdown heading."""
    text = heading.lstrip("#").strip().lower()
    return re.sub(r"[^a-z0-9 _-]", "", text).replace(" ", "-")


def test_the_alerts_name_only_metrics_the_agent_exports(exported: dict[str, set[str]]) -> None:
    unknown = {rule["alert"]: unknown_metrics(rule["expr"], exported) for rule in alert_rules()}

    assert {alert: names for alert, names in unknown.items() if names} == {}


def test_the_dashboard_names_only_metrics_the_agent_exports(
    exported: dict[str, set[str]],
) -> None:
    exprs = list(dashboard_exprs(json.loads(DASHBOARD.read_text())))
    assert len(exprs) > 20

    unknown = {expr: unknown_metrics(expr, exported) for expr in exprs}
    assert {expr: names for expr, names in unknown.items() if names} == {}
    assert all(METRIC.search(expr) for expr in exprs), "a query that names no metric"


def test_the_dashboard_groups_only_by_labels_the_metric_has(
    exported: dict[str, set[str]],
) -> None:
    allowed = {"instance", "job", "le"}
    for expr in dashboard_exprs(json.loads(DASHBOARD.read_text())):
        grouped = {
            label.strip()
            for group in re.findall(r"by \(([^)]*)\)", expr)
            for label in group.split(",")
        }
        labels = set().union(*(exported.get(n, set()) for n in METRIC.findall(expr)))
        assert grouped <= labels | allowed, f"{expr}: {grouped - labels - allowed}"


def test_every_exported_metric_is_documented(exported: dict[str, set[str]]) -> None:
    doc = METRICS_DOC.read_text()
    families = {
        re.sub(r"_(total|bucket|count|sum)$", "", name)
        for name in exported
        if name.startswith("polaris_agent_")
    }
    short = {f: f.removeprefix("polaris_agent_") for f in families}
    missing = sorted(f for f in families if f"`{f}`" not in doc and f"`{short[f]}`" not in doc)
    assert missing == [], "add a row to docs/metrics.md"
