"""The real agent as a child process (`polaris-agent run`): for what needs a process boundary
(signals, exit codes, SIGKILL at random moments, descriptor limits, CPU and fd probes).
Everything else runs faster and reads better in process: see `inprocess.py`."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from agent.devserver import DevServer
from tests.support.config import API_KEY, agent_config, merged, render_toml
from tests.support.probes import Probes


class AgentProcess(Probes):
    """One config (the base of `agent_config` with `changes` merged over it), any number of
    runs of `polaris-agent run` as a child process."""

    def __init__(
        self,
        tmp: Path,
        url: str,
        log_dir: Path,
        *,
        server: DevServer | None = None,
        wrapper: Iterable[str] = (),
        **changes: Any,
    ) -> None:
        self.tmp = tmp
        self.url = url
        self.log_dir = log_dir
        self.server = server
        self.data_dir = tmp / "data"
        self.config = tmp / "agent.toml"
        self.stderr = tmp / "agent.stderr"
        self.process: asyncio.subprocess.Process | None = None
        self.wrapper = list(wrapper)  # a command the agent runs under (e.g. `unshare ...`)
        self.write_config(**changes)

    def __repr__(self) -> str:
        state = "not started" if self.process is None else f"pid={self.process.pid}"
        return f"<AgentProcess {state} config={self.config}>"

    def write_config(self, **changes: Any) -> None:
        """Write the config anew: the base, with `changes` merged over it (a later run, or a
        SIGHUP, reads it)."""
        base = agent_config(self.data_dir, self.url, self.log_dir)
        self.doc = merged(base, changes)
        self.config.write_text(render_toml(self.doc))

    async def start(self, *args: str) -> None:
        env = {**os.environ, "TEST_POLARIS_KEY": API_KEY}
        with self.stderr.open("ab") as err:
            self.process = await asyncio.create_subprocess_exec(
                *self.wrapper,
                sys.executable,
                "-m",
                "agent",
                "run",
                "--config",
                str(self.config),
                *args,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=err,
                env=env,
            )

    async def run_once(self, within: float = 120) -> int:
        await self.start("--once")
        return await self.wait(within)

    async def wait(self, within: float = 60) -> int:
        assert self.process is not None
        async with asyncio.timeout(within):
            return await self.process.wait()

    async def stop(self, sig: int = signal.SIGTERM, within: float = 30) -> int:
        assert self.process is not None
        self.process.send_signal(sig)
        return await self.wait(within)

    def events(self) -> list[dict[str, Any]]:
        found = []
        for line in self.stderr.read_bytes().splitlines():
            try:
                found.append(orjson.loads(line))
            except orjson.JSONDecodeError:
                found.append({"event": "non_json_output", "text": line.decode(errors="replace")})
        return found

    # -- process probes -----------------------------------------------------------------

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def cpu_seconds(self) -> float:
        """User + system CPU time the agent process has used so far."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def open_fds(self) -> int:
        return len(os.listdir(f"/proc/{self.pid}/fd"))


def kill_leftovers(agents: Iterable[AgentProcess]) -> None:
    """A test that failed half-way leaves its agent running: end it, never leak a process."""
    for agent in agents:
        if agent.process is not None and agent.process.returncode is None:
            agent.process.kill()


@pytest.fixture
def make_agent(
    tmp_path: Path, dev_server: DevServer, log_dir: Path
) -> Iterator[Callable[..., AgentProcess]]:
    """`make_agent(**changes)`: an agent process over `log_dir`, sending to `dev_server`.
    `include=[...]` replaces the app source's globs; `tmp=` gives it another home."""
    started: list[AgentProcess] = []

    def make(
        include: list[str] | None = None, tmp: Path | None = None, **changes: Any
    ) -> AgentProcess:
        if include is not None:
            changes["source"] = {**changes.get("source", {}), "include": include}
        agent = AgentProcess(tmp or tmp_path, dev_server.url, log_dir, server=dev_server, **changes)
        started.append(agent)
        return agent

    yield make
    kill_leftovers(started)


@pytest.fixture
def file_agent(make_agent: Callable[..., AgentProcess]) -> Callable[..., AgentProcess]:
    """The reliability scenarios' name for the same thing."""
    return make_agent
