"""promtool, fetched once from the Debian `prometheus` package and cached in .cache/tools.

`apt-get install prometheus` would start a server on :9090, so the package is downloaded and
unpacked (`dpkg -x`) instead, and only `promtool` is kept.
"""

from __future__ import annotations

import fcntl
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

TOOLS = Path(__file__).resolve().parents[2] / ".cache" / "tools"  # the checkout's .cache
PROMTOOL = TOOLS / "promtool" / "promtool"


@pytest.fixture(scope="session")
def promtool() -> Path:
    with _locked(TOOLS / ".promtool.lock"):
        if not PROMTOOL.is_file():
            _fetch_promtool()
    return PROMTOOL


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Two pytest runs at once must not unpack into the same place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _fetch_promtool() -> None:
    if shutil.which("apt-get") is None or shutil.which("dpkg") is None:
        pytest.skip("promtool: no apt-get/dpkg on this machine to fetch the prometheus package")
    with tempfile.TemporaryDirectory(dir=TOOLS) as tmp:
        work = Path(tmp)
        download = subprocess.run(
            ["apt-get", "download", "prometheus"],
            cwd=work,
            capture_output=True,
            text=True,
            timeout=240,
            check=False,
        )
        debs = sorted(work.glob("prometheus_*.deb"))
        if download.returncode != 0 or not debs:
            pytest.skip(
                f"promtool: `apt-get download prometheus` failed: {download.stderr.strip()}"
            )
        subprocess.run(["dpkg", "-x", str(debs[0]), str(work / "root")], check=True, timeout=120)
        staged = work / "promtool"
        staged.mkdir()
        (work / "root" / "usr" / "bin" / "promtool").rename(staged / "promtool")
        staged.rename(PROMTOOL.parent)  # atomic: a half-unpacked tool is never visible
