"""The DaemonSet as shipped can read what the metadata needs, and nothing more: a token, a
read-only ClusterRole bound to its ServiceAccount, the node's name from the downward API, and
a config that asks the API. (`kubernetes-validate --strict` is test_artifacts.py's.)"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import yaml

from agent.config import parse_config

DAEMONSET = Path(__file__).resolve().parents[2] / "packaging" / "k8s" / "daemonset.yaml"


def documents() -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(DAEMONSET.read_text()) if d]


def only(kind: str) -> dict[str, Any]:
    (found,) = [d for d in documents() if d["kind"] == kind]
    return found


def test_the_cluster_role_reads_pods_and_namespaces_only() -> None:
    role = only("ClusterRole")
    assert role["rules"] == [
        {"apiGroups": [""], "resources": ["pods", "namespaces"], "verbs": ["get", "list", "watch"]}
    ]


def test_the_role_is_bound_to_the_pods_service_account_which_mounts_its_token() -> None:
    account = only("ServiceAccount")
    binding = only("ClusterRoleBinding")
    pod = only("DaemonSet")["spec"]["template"]["spec"]

    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": only("ClusterRole")["metadata"]["name"],
    }
    assert binding["subjects"] == [
        {
            "kind": "ServiceAccount",
            "name": account["metadata"]["name"],
            "namespace": account["metadata"]["namespace"],
        }
    ]
    assert pod["serviceAccountName"] == account["metadata"]["name"]
    assert pod["automountServiceAccountToken"] is True


def test_the_node_name_comes_from_the_downward_api() -> None:
    (agent,) = only("DaemonSet")["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e for e in agent["env"]}
    assert env["NODE_NAME"]["valueFrom"] == {"fieldRef": {"fieldPath": "spec.nodeName"}}


def test_the_shipped_config_asks_the_api_and_is_valid() -> None:
    raw = tomllib.loads(only("ConfigMap")["data"]["config.toml"])
    (pods,) = raw["sources"]
    assert pods["kubernetes"]["metadata_from_api"] is True
    environ = dict.fromkeys(("POLARIS_PROJECT_ID", "POLARIS_API_KEY", "NODE_NAME"), "x-0123456789")
    config = parse_config(raw, "config.toml", environ)
    assert config.kubernetes.api_url == ""  # in-cluster: KUBERNETES_SERVICE_HOST/PORT
    assert config.kubernetes.annotations == []
