"""What a person at a terminal and journald see of `run --once`: a progress line on a TTY
(none on a pipe), and syslog priority prefixes when stderr is the journal's stream."""

from __future__ import annotations

import asyncio
import os
import pty
import sys
from pathlib import Path

from agent.ops.progress import Progress
from tests.support import endpoint, process
from tests.support.config import API_KEY
from tests.support.lines import write_json_lines
from tests.support.process import AgentProcess

# The fixtures these tests use, from the shared support package.
dev_server = endpoint.dev_server
log_dir = endpoint.log_dir
make_agent = process.make_agent


async def run_once(agent: AgentProcess, stderr: int, env: dict[str, str]) -> int:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "agent",
        "run",
        "--once",
        "--config",
        str(agent.config),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=stderr,
        env={**os.environ, "TEST_POLARIS_KEY": API_KEY, **env},
    )
    return await asyncio.wait_for(process.wait(), 120)


def read_all(fd: int) -> bytes:
    chunks = []
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # EIO: the other side of the pty is closed
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


async def test_a_terminal_sees_a_progress_line_and_a_pipe_does_not(
    make_agent, log_dir: Path
) -> None:
    write_json_lines(log_dir / "app.log", 0, 20_000)
    agent: AgentProcess = make_agent(log={"format": "json"})
    primary, secondary = pty.openpty()
    reader = asyncio.get_running_loop().run_in_executor(None, read_all, primary)
    try:
        assert await run_once(agent, secondary, {}) == 0
    finally:
        os.close(secondary)
    shown = (await reader).decode(errors="replace")
    os.close(primary)
    assert "files" in shown and "/s" in shown and "ETA" in shown, shown[-500:]
    assert "\r\x1b[K" in shown

    (log_dir / "more.log").write_bytes(b'{"n":1}\n')
    assert await agent.run_once() == 0  # stderr is a file: no progress line
    assert "ETA" not in agent.stderr.read_text()


def test_the_progress_line_has_files_bytes_rate_and_eta() -> None:
    from tests.ops.snapshots import healthy

    now = [100.0]
    progress = Progress(clock=lambda: now[0])
    progress.line(healthy())
    now[0] += 1.0
    line = progress.line(healthy())
    assert " files " in line and "B/s" in line and "read" in line and "ETA" in line


async def test_under_the_journal_each_line_starts_with_its_priority(
    make_agent, log_dir: Path
) -> None:
    (log_dir / "app.log").write_bytes(b'{"n":1}\n')
    agent: AgentProcess = make_agent(polaris={"api_key": "wrong-key-0123456789"})
    with agent.stderr.open("ab") as err:
        info = os.fstat(err.fileno())
        journal = {"JOURNAL_STREAM": f"{info.st_dev}:{info.st_ino}"}
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "agent",
            "run",
            "--once",
            "--once-timeout",
            "1s",
            "--config",
            str(agent.config),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=err,
            env={**os.environ, **journal},
        )
        assert await asyncio.wait_for(process.wait(), 60) == 1
    lines = agent.stderr.read_text().splitlines()
    assert lines and all(line[:3] in {"<3>", "<4>", "<6>", "<7>"} for line in lines), lines
    assert any(line.startswith("<3>") and "auth_failed" in line for line in lines) or any(
        line.startswith("<3>") and "once_gave_up" in line for line in lines
    )
    assert any(line.startswith("<6>") and "agent_started" in line for line in lines)
