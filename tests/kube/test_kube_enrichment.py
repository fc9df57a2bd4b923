"""The real agent tailing kubelet log folders, its pods' labels from a fake API server on
loopback, its events landing in the dev-server: as a DaemonSet ships container logs."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from agent.devserver import DevServer
from agent.parse.kubernetes import PodMetadata
from tests.support.config import CONNECTION
from tests.support.inprocess import InProcessAgent
from tests.support.kubeapi import FakeKubeApi
from tests.support.waiting import eventually

POD_FOLDER = "var/log/pods/shop_checkout-7d4f_uid-1/app"


def received(server: DevServer) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in server.received_lines(CONNECTION)]


def cri(message: str) -> str:
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return f"{now} stdout F {message}\n"


def pods_source(log_dir: Path) -> dict[str, Any]:
    return {
        "name": "pods",
        "include": [f"{log_dir}/var/log/pods/*/*/*.log"],
        "format": "text",
        "kubernetes": {"format": "cri", "metadata_from_api": True},
    }


def kubernetes_section(url: str, token_file: Path) -> dict[str, Any]:
    return {
        "api_url": url,
        "node_name": "node-1",
        "token_file": str(token_file),
        "annotations": ["team.example.com/owner"],
    }


async def test_rows_carry_the_pods_labels_and_a_relabel_shows_on_later_lines(
    inprocess_agent: Callable[..., InProcessAgent],
    dev_server: DevServer,
    log_dir: Path,
    kube_api: FakeKubeApi,
    kube_url: str,
    token_file: Path,
) -> None:
    kube_api.add_pod(
        "shop",
        "checkout-7d4f",
        "uid-1",
        labels={"app.kubernetes.io/name": "checkout", "version": "1"},
        annotations={"team.example.com/owner": "alice", "other": "not asked for"},
    )
    pod_dir = log_dir / POD_FOLDER
    pod_dir.mkdir(parents=True)
    log = pod_dir / "0.log"
    log.write_text(cri("started"))
    agent = inprocess_agent(
        extra_sources=[pods_source(log_dir)], kubernetes=kubernetes_section(kube_url, token_file)
    )
    await agent.start()
    await agent.wait_until(agent.received(1))

    [first] = received(dev_server)
    assert first["message"] == "started"
    assert (first["k8s_namespace"], first["k8s_pod"], first["k8s_container"]) == (
        "shop",
        "checkout-7d4f",
        "app",
    )
    assert first["k8s_labels"] == {"app.kubernetes.io/name": "checkout", "version": "1"}
    assert first["k8s_annotations"] == {"team.example.com/owner": "alice"}
    assert first["k8s_namespace_labels"] == {"team": "payments"}

    kube_api.label_pod("uid-1", {"app.kubernetes.io/name": "checkout", "version": "2"})
    await _until_cache_has(agent, {"app.kubernetes.io/name": "checkout", "version": "2"})
    with log.open("a") as out:
        out.write(cri("after the relabel"))
    await agent.wait_until(agent.received(2))
    second = received(dev_server)[1]
    assert second["message"] == "after the relabel"
    assert second["k8s_labels"] == {"app.kubernetes.io/name": "checkout", "version": "2"}
    assert await agent.stop() == 0


async def test_with_the_api_unreachable_rows_carry_the_paths_fields(
    inprocess_agent: Callable[..., InProcessAgent],
    dev_server: DevServer,
    log_dir: Path,
    token_file: Path,
    unused_tcp_port: int,
) -> None:
    pod_dir = log_dir / POD_FOLDER
    pod_dir.mkdir(parents=True)
    (pod_dir / "0.log").write_text(cri("nobody to ask"))
    down = f"http://127.0.0.1:{unused_tcp_port}"
    agent = inprocess_agent(
        extra_sources=[pods_source(log_dir)], kubernetes=kubernetes_section(down, token_file)
    )
    await agent.start()
    await agent.wait_until(agent.received(1), agent.event("kubernetes_api_failed"))

    [row] = received(dev_server)
    assert row["message"] == "nobody to ask"
    assert (row["k8s_namespace"], row["k8s_pod"], row["k8s_pod_uid"]) == (
        "shop",
        "checkout-7d4f",
        "uid-1",
    )
    assert "k8s_labels" not in row
    assert agent.named("kubernetes_api_failed")[0]["reason"] == "unreachable"
    await agent.wait_until(agent.event("kubernetes_pod_unknown"))
    assert await agent.stop() == 0


async def _until_cache_has(agent: InProcessAgent, labels: dict[str, str]) -> None:
    """The agent's cache has heard of the relabel (the watch is asynchronous)."""
    assert agent.agent is not None and agent.agent.pods is not None
    pods = agent.agent.pods
    pod = PodMetadata(namespace="shop", pod="checkout-7d4f", pod_uid="uid-1")

    def heard() -> bool:
        details = pods.details(pod)
        return details is not None and dict(details.labels) == labels

    await eventually(heard, what=f"the cache holds {labels}")
