"""The DaemonSet as shipped (issue 15): container logs parsed as CRI with pod metadata from the
path, its own PriorityClass, readiness that a Polaris outage does not turn off.

Schema validation (`kubernetes-validate --strict`) is test_artifacts.py's, for every document.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
DAEMONSET = ROOT / "packaging" / "k8s" / "daemonset.yaml"


def documents() -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(DAEMONSET.read_text()) if d]


def only(kind: str) -> dict[str, Any]:
    (found,) = [d for d in documents() if d["kind"] == kind]
    return found


def test_container_logs_are_parsed_as_cri_with_pod_metadata_from_the_path() -> None:
    config = tomllib.loads(only("ConfigMap")["data"]["config.toml"])
    (pods,) = config["sources"]

    assert pods["include"] == ["/var/log/pods/*/*/*.log"]
    assert pods["kubernetes"]["format"] == "cri"
    assert pods["kubernetes"]["metadata_from_path"] is True


def test_the_pods_run_in_a_priority_class_the_manifest_ships() -> None:
    pod = only("DaemonSet")["spec"]["template"]["spec"]
    priority = only("PriorityClass")

    assert pod["priorityClassName"] == priority["metadata"]["name"]
    assert not pod["priorityClassName"].startswith("system-")
    assert 0 < priority["value"] < 1_000_000_000  # user classes stay below the system ones
    assert priority["globalDefault"] is False


def test_readiness_is_the_agents_and_rollouts_go_one_node_at_a_time() -> None:
    daemonset = only("DaemonSet")
    (agent,) = daemonset["spec"]["template"]["spec"]["containers"]

    assert agent["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert daemonset["spec"]["updateStrategy"]["rollingUpdate"]["maxUnavailable"] == 1
