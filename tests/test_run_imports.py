"""What a file-only `polaris-agent run` loads: the real agent as a child process, its modules
listed at exit. The journald source, the dev-server, the other commands, the admin endpoint
(no `api.listen`) and the progress line (stderr is not a terminal) stay out of its memory."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

from tests.support import endpoint, process
from tests.support.process import AgentProcess

dev_server = endpoint.dev_server
log_dir = endpoint.log_dir
make_agent = process.make_agent

PROBE = """\
import atexit, runpy, sys
listing, at = sys.argv[1], sys.argv.index("agent")
atexit.register(lambda: open(listing, "w").write("\\n".join(sorted(sys.modules))))
sys.argv = ["polaris-agent", *sys.argv[at + 1 :]]
runpy.run_module("agent", run_name="__main__", alter_sys=True)
"""
"""Runs `python -m agent ...` as itself, and writes `sys.modules` to a file when it exits."""

NOT_ON_THE_RUN_PATH = (
    "agent.journal",
    "agent.kube.",  # the Kubernetes API cache: only with kubernetes.metadata_from_api
    "agent.devserver",
    "agent.polaris",
    "agent.checkcmd",
    "agent.envcheck",
    "agent.statuscmd",
    "agent.deadlettercmd",
    "agent.demo",
    "agent.ops.admin",
    "agent.ops.metrics",
    "agent.ops.progress",
    "prometheus_client",
)


async def test_a_file_only_agent_loads_neither_the_journal_nor_the_other_commands(
    make_agent, log_dir: Path, tmp_path: Path
) -> None:
    listing = tmp_path / "modules.txt"
    agent: AgentProcess = make_agent()
    agent.wrapper = [sys.executable, "-c", PROBE, str(listing)]
    await agent.start()
    (log_dir / "app.log").write_bytes(b'{"n":1}\n{"n":2}\n')
    await agent.wait_until(agent.received(2))
    agent.process.send_signal(signal.SIGHUP)  # a reload, with the same file
    await agent.wait_until(agent.event("config_reloaded"))
    assert await agent.stop(signal.SIGTERM) == 0

    loaded = listing.read_text().split()
    assert {"agent.runtime", "agent.tail.tailer", "agent.reload"} <= set(loaded)  # the probe saw
    unneeded = [m for m in loaded if m.startswith(NOT_ON_THE_RUN_PATH)]
    assert unneeded == []
    assert "watchfiles" in loaded  # a following agent watches its directories


NOT_IN_A_BACKFILL = ("watchfiles", "anyio")
"""`run --once` that reads its files to the end never waits for a change: no watcher."""


async def test_a_backfill_that_reads_to_the_end_loads_no_file_watcher(
    make_agent, log_dir: Path, tmp_path: Path
) -> None:
    listing = tmp_path / "modules.txt"
    agent: AgentProcess = make_agent()
    agent.wrapper = [sys.executable, "-c", PROBE, str(listing)]
    (log_dir / "app.log").write_bytes(b'{"n":1}\n{"n":2}\n')
    assert await agent.run_once() == 0
    assert agent.received(2)()

    loaded = listing.read_text().split()
    assert "agent.tail.tailer" in loaded  # the probe saw the run
    unneeded = [m for m in loaded if m.startswith(NOT_ON_THE_RUN_PATH + NOT_IN_A_BACKFILL)]
    assert unneeded == []
