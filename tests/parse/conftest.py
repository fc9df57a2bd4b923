from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.f2b_samples import fetch


@pytest.fixture(scope="session")
def fail2ban_logs() -> Path:
    """fail2ban's sample log folder, fetched with apt once (see `f2b_samples`)."""
    return fetch()
