"""The real agent (`agent.runtime.Agent`) run as a task in the test's own event loop, against
the in-process dev-server: no interpreter start, no port of its own to wait for, its events
captured as dicts (structlog's `capture_logs`), and a test that reads like the scenario:

    agent = make_inprocess_agent(source={"format": "text"})
    await agent.start()
    (log_dir / "app.log").write_bytes(b"hello\\n")
    await agent.wait_until(agent.checkpointed(log_dir / "app.log"))
    assert dev_server.received_lines("logs") == [...]

What needs a process boundary (signals, exit codes, SIGKILL, descriptor limits) stays with
`process.AgentProcess`.

The clock: the harness takes one and hands it to what accepts one today (the dev-server's
faults and rate limiter, through the `dev_server` fixture it is built with); the agent's
stages read `time.monotonic` themselves for now, and get `self.clock` once they take one.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import structlog

from agent.config import load_config
from agent.devserver import DevServer
from agent.ops.snapshot import AgentSnapshot, SourceSnapshot
from agent.runtime import Agent
from tests.support.clock import Clock, TestClock
from tests.support.config import API_KEY, agent_config, merged, render_toml
from tests.support.probes import Probes
from tests.support.waiting import Condition


class InProcessAgent(Probes):
    """One config, any number of runs of the real agent as a task of the running loop."""

    def __init__(
        self,
        tmp: Path,
        server: DevServer,
        log_dir: Path,
        captured: list[dict[str, Any]],
        *,
        clock: Clock = time.monotonic,
        **changes: Any,
    ) -> None:
        self.tmp = tmp
        self.server = server
        self.log_dir = log_dir
        self.clock = clock
        self.data_dir = tmp / "data"
        self.config = tmp / "agent.toml"
        self.agent: Agent | None = None
        self.task: asyncio.Task[int] | None = None
        self._captured = captured
        self.write_config(**changes)

    def __repr__(self) -> str:
        state = "idle" if self.task is None else ("done" if self.task.done() else "running")
        return f"<InProcessAgent {state} config={self.config}>"

    def write_config(self, **changes: Any) -> None:
        """Write the config anew: the base, with `changes` merged over it."""
        self.doc = merged(agent_config(self.data_dir, self.server.url, self.log_dir), changes)
        self.config.write_text(render_toml(self.doc))

    async def start(self, *, once: bool = False) -> None:
        """Build the agent from the config file, as `polaris-agent run` does, and run it."""
        assert self.task is None or self.task.done(), "the agent is already running"
        self.agent = Agent(load_config(self.config), config_path=self.config)
        self.task = asyncio.create_task(self.agent.run(once=once), name="agent-under-test")

    async def run_once(self, within: float = 120) -> int:
        await self.start(once=True)
        return await self.wait(within)

    async def wait(self, within: float = 60) -> int:
        """The exit code `run` returns (what `polaris-agent run` would exit with)."""
        assert self.task is not None
        async with asyncio.timeout(within):
            return await asyncio.shield(self.task)

    async def stop(self, within: float = 30) -> int:
        """What SIGTERM does: stop reading, drain, save; then the exit code."""
        assert self.agent is not None
        self.agent.request_stop("test")
        return await self.wait(within)

    async def close(self) -> None:
        """A test that failed half-way leaves its agent running: end it."""
        if self.task is not None and not self.task.done():
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.task

    def events(self) -> list[dict[str, Any]]:
        return list(self._captured)

    # -- what /metrics shows, read without the HTTP round trip ----------------------------

    def snapshot(self) -> AgentSnapshot:
        assert self.agent is not None, "snapshot() is for a started agent"
        return self.agent.snapshot()

    def source(self, name: str) -> SourceSnapshot:
        [found] = [s for s in self.snapshot().sources if s.name == name]
        return found

    def read(self, source: str, nbytes: int) -> Condition:
        """The source has consumed `nbytes` of its files (read, not necessarily safe)."""
        return Condition(
            f"source {source!r} read {nbytes} bytes",
            lambda: self.agent is not None and self.source(source).bytes_read >= nbytes,
        )


@pytest.fixture
async def inprocess_agent(
    tmp_path: Path,
    dev_server: DevServer,
    log_dir: Path,
    clock: TestClock,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[Callable[..., InProcessAgent]]:
    """`inprocess_agent(**changes)`: the agent over `log_dir`, sending to `dev_server`, its
    config the base of `agent_config` with `changes` merged over it; it shares the test's
    `clock` with the dev-server."""
    monkeypatch.setenv("TEST_POLARIS_KEY", API_KEY)
    made: list[InProcessAgent] = []
    with structlog.testing.capture_logs() as captured:

        def make(**changes: Any) -> InProcessAgent:
            agent = InProcessAgent(tmp_path, dev_server, log_dir, captured, clock=clock, **changes)
            made.append(agent)
            return agent

        try:
            yield make
        finally:
            for agent in made:
                await agent.close()
