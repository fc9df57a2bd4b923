"""Fixtures for every test folder. The rest of the shared support is in `tests.support`, each
folder's conftest.py importing the fixtures it uses."""

from __future__ import annotations

import pytest

from tests.support.clock import TestClock


@pytest.fixture
def clock() -> TestClock:
    """Real time until a test pauses it; the dev-servers the fixtures build follow it."""
    return TestClock()
