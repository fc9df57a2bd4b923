"""Real log lines nobody here wrote: Debian's fail2ban ships its test samples.

The package is fetched once with apt into ``.cache/fail2ban`` (gitignored) and unpacked there;
it is GPL, so the files are read from the cache and never copied into the repository.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

CACHE = Path(__file__).resolve().parents[2] / ".cache" / "fail2ban"
LOGS = "usr/lib/python3/dist-packages/fail2ban/tests/files/logs"
FAIL2BAN_NOW = 1124013600.0
"""fail2ban's TEST_NOW (2005-08-14T10:00:00Z): the samples' years are inferred against it."""
FAIL2BAN_ZONE = ZoneInfo("Europe/Zurich")
"""fail2ban's tests run with TZ=CET-01CEST-02: `failJSON` times are wall times there."""


@dataclass(frozen=True, slots=True)
class Sample:
    """A real log line and what fail2ban's `failJSON` comment above it says about it."""

    file: str
    line: str
    time: datetime | None  # aware, from the failJSON "time" (a Zurich wall time)
    host: str | None  # the address fail2ban extracts from the line


def fetch() -> Path:
    root = CACHE / "root"
    if (root / LOGS).is_dir():
        return root / LOGS
    if shutil.which("apt-get") is None or shutil.which("dpkg") is None:
        pytest.skip("apt-get/dpkg not available: cannot fetch fail2ban's sample logs")
    CACHE.mkdir(parents=True, exist_ok=True)
    debs = sorted(CACHE.glob("fail2ban_*.deb"))
    if not debs:
        fetched = subprocess.run(
            ["apt-get", "download", "fail2ban"], cwd=CACHE, capture_output=True, text=True
        )
        debs = sorted(CACHE.glob("fail2ban_*.deb"))
        if fetched.returncode != 0 or not debs:
            pytest.skip(f"apt-get download fail2ban failed: {fetched.stderr.strip()[-300:]}")
    subprocess.run(["dpkg", "-x", str(debs[-1]), str(root)], check=True)
    return root / LOGS


def _failjson_time(text: str) -> datetime:
    # As fail2ban reads it (its test parses with strptime, which takes "2005-03-7").
    pattern = "%Y-%m-%dT%H:%M:%S.%f" if "." in text else "%Y-%m-%dT%H:%M:%S"
    return datetime.strptime(text, pattern).replace(tzinfo=FAIL2BAN_ZONE)


def samples(logs: Path, name: str) -> list[Sample]:
    """Every log line of `name` that follows a ``# failJSON:`` comment with a time."""
    found: list[Sample] = []
    expected: dict[str, object] | None = None
    for raw in (logs / name).read_bytes().split(b"\n"):
        line = raw.decode("utf-8", "replace")
        if line.startswith("# failJSON:"):
            try:
                expected = json.loads(line.removeprefix("# failJSON:"))
            except json.JSONDecodeError:
                expected = None
            continue
        if not line.strip() or line.startswith("#"):
            continue
        if expected is not None and isinstance(expected.get("time"), str):
            when = _failjson_time(str(expected["time"]))
            host = expected.get("host")
            found.append(Sample(name, line, when, host if isinstance(host, str) else None))
        expected = None
    return found
