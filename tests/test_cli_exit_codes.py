"""Exit codes, as automation reads them: the real CLI as a subprocess against the dev-server.

`run --once` fails (1) when a refused key keeps anything from reaching Polaris (a Kubernetes
Job or a cron backfill must fail, not retry forever); `status` fails when the agent is not
running or not ready, prints `--json`, survives a closed pipe and needs no secret."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from pathlib import Path

import orjson

from agent.devserver import DevServer
from tests.support import endpoint, process
from tests.support.config import API_KEY
from tests.support.lines import write_json_lines
from tests.support.process import AgentProcess
from tests.support.waiting import Condition

# The fixtures these tests use, from the shared support package.
dev_server = endpoint.dev_server
log_dir = endpoint.log_dir
make_agent = process.make_agent


async def cli(
    *args: str, env: dict[str, str] | None = None, **kwargs: object
) -> tuple[int, str, str]:
    """`polaris-agent ARGS` as a user runs it; (exit code, stdout, stderr)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "agent",
        *args,
        stdout=kwargs.pop("stdout", asyncio.subprocess.PIPE),  # type: ignore[arg-type]
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **(env or {})},
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, (out or b"").decode(), err.decode()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def without_key() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "TEST_POLARIS_KEY"}


async def test_help_lists_the_exit_codes() -> None:
    code, out, _ = await cli("--help")
    assert code == 0
    for line in ("0   done", "1   runtime failure", "2   usage", "3   setup", "78  config invalid"):
        assert line in out
    assert (await cli("run", "--no-such-option"))[0] == 2


async def test_run_once_with_a_refused_key_exits_1_after_its_timeout(
    make_agent, log_dir: Path, dev_server: DevServer
) -> None:
    write_json_lines(log_dir / "app.log", 0, 50)
    agent: AgentProcess = make_agent(polaris={"api_key": "wrong-key-0123456789"})
    await agent.start("--once", "--once-timeout", "1s")

    assert await agent.wait(60) == 1

    names = [e["event"] for e in agent.events()]
    assert "once_gave_up" in names and "once_incomplete" in names
    gave_up = next(e for e in agent.events() if e["event"] == "once_gave_up")
    assert gave_up["auth_failing"] is True
    assert dev_server.received_lines() == []


async def test_run_once_without_a_spool_and_a_refused_key_exits_1_too(
    make_agent, log_dir: Path
) -> None:
    write_json_lines(log_dir / "app.log", 0, 20)
    agent: AgentProcess = make_agent(
        polaris={"api_key": "wrong-key-0123456789"}, spool={"enabled": False}
    )
    await agent.start("--once", "--once-timeout", "1s")

    assert await agent.wait(60) == 1
    stopped = next(e for e in agent.events() if e["event"] == "once_incomplete")
    assert stopped["unacknowledged"] > 0


async def test_run_once_that_delivers_everything_exits_0(make_agent, log_dir: Path) -> None:
    write_json_lines(log_dir / "app.log", 0, 20)
    agent: AgentProcess = make_agent()
    assert await agent.run_once() == 0
    assert "once_incomplete" not in [e["event"] for e in agent.events()]


async def test_status_of_a_ready_agent_exits_0_and_prints_json_without_the_key(
    make_agent, log_dir: Path
) -> None:
    (log_dir / "app.log").write_bytes(b'{"n":1}\n')
    port = free_port()
    agent: AgentProcess = make_agent(api={"listen": f"127.0.0.1:{port}"})
    await agent.start()
    try:
        await agent.wait_until(Condition("admin listening", lambda: _listening(agent)))
        code, out, err = await cli("status", "--json", "-c", str(agent.config), env=without_key())
        assert code == 0, out + err
        document = orjson.loads(out)
        assert document["agent"]["ready"] is True
        assert document["data_dir"] == str(agent.data_dir)
        assert API_KEY not in out + err
    finally:
        assert await agent.stop() == 0


def _listening(agent: AgentProcess) -> bool:
    return any(e["event"] == "admin_listening" for e in agent.events())


async def test_status_exits_1_when_the_agent_is_not_running(make_agent) -> None:
    agent: AgentProcess = make_agent(api={"listen": f"127.0.0.1:{free_port()}"})
    code, out, _ = await cli("status", "-c", str(agent.config), env=without_key())
    assert code == 1
    assert "agent: not reachable" in out
    code, out, _ = await cli("status", "--json", "-c", str(agent.config), env=without_key())
    assert code == 1
    assert orjson.loads(out)["agent"]["reachable"] is False


async def test_status_into_a_closed_pipe_ends_without_a_traceback(make_agent) -> None:
    agent: AgentProcess = make_agent()
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader (`head`) is gone before status writes
    try:
        code, _, err = await cli("status", "-c", str(agent.config), stdout=write_end)
    finally:
        os.close(write_end)
    assert "Traceback" not in err and "BrokenPipeError" not in err
    assert code == 1
