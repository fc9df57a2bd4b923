"""The real agent, as a process, against the real dev-server over loopback."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from agent.devserver import DevServer, running_dev_server

API_KEY = "test-key-0123456789"
CONNECTION = "logs"


@pytest.fixture
async def dev_server() -> AsyncIterator[DevServer]:
    async with running_dev_server(api_keys=[API_KEY], auto_create_connections=[CONNECTION]) as s:
        yield s


@pytest.fixture
def log_dir(tmp_path: Path) -> Path:
    path = tmp_path / "logs"
    path.mkdir()
    return path


class Agent:
    """One config, any number of runs of `polaris-agent run` as a child process."""

    def __init__(self, tmp: Path, url: str, log_dir: Path, **options: Any) -> None:
        self.tmp = tmp
        self.data_dir = tmp / "data"
        self.config = tmp / "agent.toml"
        self.stderr = tmp / "agent.stderr"
        self.process: asyncio.subprocess.Process | None = None
        self.wrapper: list[str] = []  # a command the agent runs under (e.g. `unshare ...`)
        self.write_config(url, log_dir, **options)

    def write_config(
        self,
        url: str,
        log_dir: Path,
        *,
        source: str = "",
        scan_interval: str = "200ms",
        batch: str = "",
        sender: str = "",
        top: str = "",
        retry: tuple[str, str] = ("50ms", "500ms"),
    ) -> None:
        self.config.write_text(
            f"""
data_dir = "{self.data_dir}"
shutdown_timeout = "5s"
{top}
[polaris]
url = "{url}"
project_id = "test-project"
connection = "{CONNECTION}"
api_key = "${{TEST_POLARIS_KEY}}"
[[sources]]
name = "app"
include = ["{log_dir}/*.log"]
scan_interval = "{scan_interval}"
{source}
[batch]
max_wait = "100ms"
{batch}
[sender]
retry_initial = "{retry[0]}"
retry_max = "{retry[1]}"
{sender}
[log]
level = "info"
format = "json"
"""
        )

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
        """The structured log events the agent wrote, in order."""
        found = []
        for line in self.stderr.read_bytes().splitlines():
            try:
                found.append(orjson.loads(line))
            except orjson.JSONDecodeError:
                found.append({"event": "non_json_output", "text": line.decode(errors="replace")})
        return found

    def checkpoints(self) -> dict[str, int]:
        path = self.data_dir / "checkpoints.json"
        if not path.exists():
            return {}
        return {f["path"]: f["offset"] for f in orjson.loads(path.read_bytes())["files"]}


@pytest.fixture
def make_agent(
    tmp_path: Path, dev_server: DevServer, log_dir: Path
) -> Iterator[Callable[..., Agent]]:
    started: list[Agent] = []

    def make(**options: Any) -> Agent:
        agent = Agent(tmp_path, dev_server.url, log_dir, **options)
        started.append(agent)
        return agent

    yield make
    kill_leftovers(started)


def kill_leftovers(agents: Iterable[Agent]) -> None:
    """A test that failed half-way leaves its agent running: end it, never leak a process."""
    for agent in agents:
        if agent.process is not None and agent.process.returncode is None:
            agent.process.kill()


async def eventually(check: Callable[[], bool], within: float = 30, what: str = "") -> None:
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or check}")
        await asyncio.sleep(0.05)
