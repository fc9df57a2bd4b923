"""The fixtures every end-to-end test starts from: a dev-server that knows the test key and
the `logs` connection (its fault windows follow the test's `clock`), and an empty log folder."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from agent.devserver import DevServer, running_dev_server
from tests.support.clock import TestClock
from tests.support.config import API_KEY, CONNECTION


@pytest.fixture
async def dev_server(clock: TestClock) -> AsyncIterator[DevServer]:
    async with running_dev_server(
        api_keys=[API_KEY], auto_create_connections=[CONNECTION], clock=clock
    ) as server:
        yield server


@pytest.fixture
def log_dir(tmp_path: Path) -> Path:
    path = tmp_path / "logs"
    path.mkdir()
    return path
