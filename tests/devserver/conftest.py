"""Fixtures for the dev-server tests: a server on 127.0.0.1:0 and a real HTTP client."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from agent.devserver import DevServer, running_dev_server
from tests.support.clock import TestClock

from .devkit import Api


@pytest.fixture
async def dev_server(clock: TestClock) -> AsyncIterator[DevServer]:
    """Its fault windows and rate limiter follow the test's `clock`."""
    async with running_dev_server(
        auto_create_connections=["demo_connection"], clock=clock
    ) as server:
        yield server


@pytest.fixture
async def api(dev_server: DevServer) -> AsyncIterator[Api]:
    async with aiohttp.ClientSession() as session:
        yield Api(dev_server, session)


@pytest.fixture
async def api_plain() -> AsyncIterator[Api]:
    """A server with no connection yet, for the create-everything-from-scratch scenarios."""
    async with running_dev_server() as server, aiohttp.ClientSession() as session:
        yield Api(server, session)
