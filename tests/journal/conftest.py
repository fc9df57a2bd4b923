"""Real journal files, written by systemd-journal-remote from export-format text.

No journald is needed: `journalctl --directory=DIR` reads the files. Where
systemd-journal-remote is missing the fixture installs it (apt-get, as root), as
`make journal-tools` does; it skips, saying why, only where that cannot work.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import orjson
import pytest

from agent.journal.event import JournalPiece
from agent.journal.export import Entry, Value, export_stream

BOOT = "0123456789abcdef0123456789abcdef"
CANDIDATES = ("/usr/lib/systemd/systemd-journal-remote", "/lib/systemd/systemd-journal-remote")


def _journal_remote() -> str | None:
    return next((path for path in CANDIDATES if os.access(path, os.X_OK)), None)


@pytest.fixture(scope="session")
def journal_remote() -> str:
    if shutil.which("journalctl") is None:
        pytest.skip("journalctl is not installed (package systemd): journald tests cannot run")
    found = _journal_remote()
    if found is not None:
        return found
    if shutil.which("apt-get") is None:
        pytest.skip("systemd-journal-remote is missing and there is no apt-get to install it")
    if os.geteuid() != 0:
        pytest.skip("systemd-journal-remote is missing; installing it needs root (apt-get)")
    result = subprocess.run(
        "apt-get install -y --no-install-recommends systemd-journal-remote || "
        "(apt-get update && apt-get install -y --no-install-recommends systemd-journal-remote)",
        shell=True,
        capture_output=True,
        text=True,
        check=False,
    )
    found = _journal_remote()
    if found is None:
        pytest.fail(f"installing systemd-journal-remote failed:\n{result.stderr[-2000:]}")
    return found


def entry(
    n: int,
    message: str | bytes | None = None,
    *,
    unit: str = "app.service",
    priority: int = 6,
    **extra: Value | list[Value],
) -> dict[str, Value | list[Value]]:
    """A journal entry numbered `n`: times 1 ms apart, recent enough for any window."""
    base = int(time.time() * 1_000_000) - 3_600_000_000
    fields: dict[str, Value | list[Value]] = {
        "__REALTIME_TIMESTAMP": base + n * 1000,
        "__MONOTONIC_TIMESTAMP": 1_000_000 + n,
        "_BOOT_ID": BOOT,
        "MESSAGE": f"entry {n}" if message is None else message,
        "PRIORITY": priority,
        "_SYSTEMD_UNIT": unit,
        "SYSLOG_IDENTIFIER": "app",
        "_PID": 4242,
        "_HOSTNAME": "host-1",
        "_COMM": "app",
    }
    fields.update(extra)
    return fields


class JournalDir:
    """A directory of journal files; `write` adds entries through systemd-journal-remote."""

    def __init__(self, path: Path, remote: str) -> None:
        self.path = path
        self._remote = remote
        self._files = 0

    def __repr__(self) -> str:
        return f"<JournalDir {self.path} files={self._files}>"

    def write(self, entries: Iterable[Entry], name: str = "") -> Path:
        """Each call writes a new journal file (as journald does when it rotates)."""
        self._files += 1
        target = self.path / f"{name or f'part{self._files}'}.journal"
        subprocess.run(
            [self._remote, f"--output={target}", "-"],
            input=export_stream(entries),
            capture_output=True,
            check=True,
        )
        return target

    def cursors(self) -> list[str]:
        out = subprocess.run(
            ["journalctl", f"--directory={self.path}", "-o", "json", "--no-pager"],
            capture_output=True,
            check=True,
        ).stdout
        return [orjson.loads(line)["__CURSOR"] for line in out.splitlines()]


@pytest.fixture
def journal(tmp_path: Path, journal_remote: str) -> JournalDir:
    directory = tmp_path / "journal"
    directory.mkdir()
    return JournalDir(directory, journal_remote)


class Collected:
    """What a reader handed on: its `emit`."""

    def __init__(self) -> None:
        self.pieces: list[JournalPiece] = []

    async def __call__(self, piece: JournalPiece) -> None:
        self.pieces.append(piece)

    def events(self) -> list[dict[str, object]]:
        return [orjson.loads(line) for p in self.pieces for line in p.data.splitlines()]

    def messages(self) -> list[object]:
        return [event["message"] for event in self.events()]


async def wait_until(condition: Callable[[], bool], within: float = 15.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within}s waiting for {condition}")
        await asyncio.sleep(0.02)


def process_gone(pid: int) -> bool:
    """Gone, or a zombie (dead; a container's PID 1 may never reap it)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return stat.read().rsplit(b")", 1)[1].split()[0] in (b"Z", b"X")
    except FileNotFoundError:
        return True


# -- the real agent over a journal directory (tests/journal/test_journal_agent.py) -----------

from tests.support.endpoint import dev_server, log_dir  # noqa: E402
from tests.support.inprocess import inprocess_agent  # noqa: E402
from tests.support.process import make_agent  # noqa: E402

__all__ = ["dev_server", "inprocess_agent", "log_dir", "make_agent"]


def journald_source(directory: Path, **keys: object) -> dict[str, object]:
    """A ``type = "journald"`` source named "journal" over `directory`, from its beginning."""
    return {"name": "journal", "type": "journald", "directory": str(directory)} | {
        "since": "beginning",
        **keys,
    }
