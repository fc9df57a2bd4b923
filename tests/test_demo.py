"""`make demo` is the first thing a new user runs: it must keep working."""

from __future__ import annotations

import subprocess
import sys


def test_demo_provisions_ships_and_shows_the_rows() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "agent.demo"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    out = result.stdout
    assert "job for table demo_table: created" in out
    assert "\n5000\n" in out, out
    assert "order 14999 processed" in out
