"""Fixtures of the `setup` tests; the helpers live in polaris_testkit.py."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from polaris_testkit import Polaris, serve_polaris


@pytest.fixture
async def polaris() -> AsyncIterator[Polaris]:
    async for server in serve_polaris():
        yield server


@pytest.fixture
async def polaris_without_updates() -> AsyncIterator[Polaris]:
    """A Polaris that refuses to update a job's spec in place (setup must recreate it)."""
    async for server in serve_polaris(in_place_job_updates=False):
        yield server
