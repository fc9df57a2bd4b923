"""File-side reliability scenarios: the real agent, the real dev-server, real files and signals.

The pipeline harness runs the agent; this adds what the file scenarios need on top of it: the
include globs chosen per test, a ledger of every line written (by unique id) to compare with
what the dev-server received, and probes of the agent process (CPU time, open descriptors).
"""

from __future__ import annotations

import os
import re
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "pipeline"))

from harness import CONNECTION, Agent, dev_server, eventually, kill_leftovers, log_dir

from agent.devserver import DevServer

__all__ = [
    "CONNECTION",
    "FileAgent",
    "Ledger",
    "dev_server",
    "eventually",
    "file_agent",
    "ledger",
    "log_dir",
]


class FileAgent(Agent):
    """The harness agent, with the include globs a scenario needs, optionally started through
    a wrapper command (e.g. into a user namespace with its own inotify limits)."""

    def __init__(
        self,
        tmp: Path,
        url: str,
        log_dir: Path,
        *,
        include: list[str],
        wrapper: list[str] | None = None,
        **options: Any,
    ) -> None:
        self.include = include
        super().__init__(tmp, url, log_dir, **options)
        self.wrapper = wrapper or []

    def write_config(self, url: str, log_dir: Path, **options: Any) -> None:
        super().write_config(url, log_dir, **options)
        globs = ", ".join(f'"{p}"' for p in self.include)
        text = re.sub(
            r"^include = .*$", f"include = [{globs}]", self.config.read_text(), count=1, flags=re.M
        )
        self.config.write_text(text)

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def named(self, event: str) -> list[dict[str, Any]]:
        return [e for e in self.events() if e.get("event") == event]

    def cpu_seconds(self) -> float:
        """User + system CPU time the agent process has used so far."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def open_fds(self) -> int:
        return len(os.listdir(f"/proc/{self.pid}/fd"))


@pytest.fixture
def file_agent(
    tmp_path: Path, dev_server: DevServer, log_dir: Path
) -> Iterator[Callable[..., FileAgent]]:
    started: list[FileAgent] = []

    def make(include: list[str] | None = None, **options: Any) -> FileAgent:
        agent = FileAgent(
            options.pop("tmp", tmp_path),
            dev_server.url,
            log_dir,
            include=include or [f"{log_dir}/*.log"],
            **options,
        )
        started.append(agent)
        return agent

    yield make
    kill_leftovers(started)


class Ledger:
    """Every line a scenario wrote, by id, to compare with what the dev-server received."""

    def __init__(self, server: DevServer) -> None:
        self.server = server
        self.written: Counter[str] = Counter()
        self._next = 0

    def __repr__(self) -> str:
        return f"<Ledger written={sum(self.written.values())} received={len(self._ids())}>"

    def lines(self, count: int, tag: str = "l") -> bytes:
        """`count` JSON lines with fresh ids, recorded as written (the caller writes them)."""
        out = []
        for _ in range(count):
            self._next += 1
            ident = f"{tag}-{self._next}"
            self.written[ident] += 1
            out.append(orjson.dumps({"id": ident, "level": "info", "msg": "x" * 30}) + b"\n")
        return b"".join(out)

    def append(self, path: Path, count: int, tag: str = "l") -> None:
        with path.open("ab") as out:
            out.write(self.lines(count, tag))

    def expect(self, data: bytes) -> bytes:
        """Record lines built by the test itself (e.g. identical headers) as written."""
        for line in data.splitlines():
            self.written[orjson.loads(line)["id"]] += 1
        return data

    def _ids(self) -> Counter[str]:
        return Counter(orjson.loads(x)["id"] for x in self.server.received_lines(CONNECTION))

    def missing(self) -> Counter[str]:
        return self.written - self._ids()

    def duplicates(self) -> int:
        """Lines received more often than written (at least once allows them; we count)."""
        return sum((self._ids() - self.written).values())

    def duplicated_ids(self) -> list[str]:
        return sorted((self._ids() - self.written).keys())

    def unexpected(self) -> set[str]:
        return set(self._ids()) - set(self.written)

    async def all_received(self, within: float = 30, what: str = "") -> int:
        """Wait until every line written has arrived; report and return the duplicates."""
        try:
            await eventually(lambda: not self.missing(), within=within, what=what)
        except AssertionError:
            missing = self.missing()
            raise AssertionError(
                f"{sum(missing.values())} lines lost ({what}): {sorted(missing)[:10]}"
            ) from None
        dups = self.duplicates()
        print(f"[{what}] written={sum(self.written.values())} duplicates={dups}")
        return dups


@pytest.fixture
def ledger(dev_server: DevServer) -> Ledger:
    return Ledger(dev_server)
