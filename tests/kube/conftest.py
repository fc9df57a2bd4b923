"""Fixtures for the Kubernetes metadata tests: the fake API server, the dev-server, the agent."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.support.endpoint import dev_server, log_dir
from tests.support.inprocess import inprocess_agent
from tests.support.kubeapi import FakeKubeApi

__all__ = ["dev_server", "inprocess_agent", "kube_api", "kube_url", "log_dir", "token_file"]


@pytest.fixture
def kube_api() -> FakeKubeApi:
    """A cluster with node-1 and node-2, and namespace `shop` labelled team=payments."""
    api = FakeKubeApi(token="sa-token-1")
    api.add_namespace("shop", {"team": "payments"})
    return api


@pytest.fixture
async def kube_url(kube_api: FakeKubeApi) -> AsyncIterator[str]:
    async with kube_api.serving() as url:
        yield url


@pytest.fixture
def token_file(tmp_path: Path, kube_api: FakeKubeApi) -> Path:
    """The service account token as the kubelet projects it."""
    path = tmp_path / "serviceaccount" / "token"
    path.parent.mkdir()
    path.write_text(f"{kube_api.token}\n")
    return path
