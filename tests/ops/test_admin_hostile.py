"""A hostile admin port (issue 12): idle and slow connections by the hundred, under a tight
descriptor limit, against the real agent process and the real dev-server over loopback.

Before: with `ulimit -n 256`, ~370 idle connections made /healthz time out, stopped new log
files from being opened and printed tens of thousands of tracebacks. Now the endpoint holds at
most `MAX_CONNECTIONS`, closes connections that send no request within `HEADER_TIMEOUT_SECS`,
and logs a burst of errors as one line.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import aiohttp
import pytest

from agent.devserver import DevServer
from agent.ops.admin import HEADER_TIMEOUT_SECS, MAX_CONNECTIONS
from tests.support.config import CONNECTION
from tests.support.endpoint import dev_server, log_dir
from tests.support.process import AgentProcess as Agent
from tests.support.process import kill_leftovers
from tests.support.waiting import eventually

__all__ = ["dev_server", "log_dir"]

IDLE_CONNECTIONS = 370
DESCRIPTOR_LIMIT = 256


@pytest.fixture
def limited_agent(tmp_path: Path, dev_server: DevServer, log_dir: Path) -> Iterator[Agent]:
    agent = Agent(tmp_path, dev_server.url, log_dir, api={"listen": "127.0.0.1:0"})
    agent.wrapper = ["prlimit", f"--nofile={DESCRIPTOR_LIMIT}:{DESCRIPTOR_LIMIT}", "--"]
    yield agent
    kill_leftovers([agent])


@pytest.fixture
def idle_sockets() -> Iterator[Callable[[str, int, int], list[socket.socket]]]:
    opened: list[socket.socket] = []

    def open_idle(host: str, port: int, count: int) -> list[socket.socket]:
        """`count` connections that never send a byte. Connected one after the other: a
        burst of SYNs past the listen backlog would be dropped and retried by the kernel for
        half a minute, which tests the kernel, not the agent."""
        for _ in range(count):
            sock = socket.create_connection((host, port), timeout=10)
            sock.setblocking(False)
            opened.append(sock)
        return opened

    yield open_idle
    for sock in opened:
        sock.close()


def closed_by_peer(sock: socket.socket) -> bool:
    try:
        return sock.recv(1) == b""
    except BlockingIOError:
        return False
    except OSError:  # reset, or the connect itself was refused
        return True


async def admin_url(agent: Agent) -> str:
    await eventually(lambda: any(e.get("event") == "admin_listening" for e in agent.events()))
    return next(e["url"] for e in agent.events() if e.get("event") == "admin_listening")


def lines_received(server: DevServer) -> int:
    return len(server.received_lines(CONNECTION))


@pytest.mark.timeout(120)
async def test_idle_connections_past_the_limit_starve_neither_healthz_nor_tailing(
    limited_agent: Agent,
    dev_server: DevServer,
    log_dir: Path,
    idle_sockets: Callable[[str, int, int], list[socket.socket]],
) -> None:
    (log_dir / "before.log").write_bytes(b'{"n":1}\n' * 10)
    await limited_agent.start()
    url = await admin_url(limited_agent)
    await eventually(lambda: lines_received(dev_server) == 10, what="first file shipped")
    pid = limited_agent.process.pid if limited_agent.process else 0
    baseline = len(os.listdir(f"/proc/{pid}/fd"))
    host, _, port = url.removeprefix("http://").rpartition(":")

    sockets = idle_sockets(host, int(port), IDLE_CONNECTIONS)
    started = time.monotonic()
    await eventually(
        lambda: sum(closed_by_peer(s) for s in sockets) >= IDLE_CONNECTIONS - MAX_CONNECTIONS,
        within=HEADER_TIMEOUT_SECS * 4,
        what="connections past the limit closed",
    )
    held = len(os.listdir(f"/proc/{pid}/fd")) - baseline

    timeout = aiohttp.ClientTimeout(total=3)
    async with aiohttp.ClientSession(timeout=timeout) as http, http.get(f"{url}/healthz") as answer:
        assert answer.status == 200
    (log_dir / "after.log").write_bytes(b'{"n":2}\n' * 10)
    await eventually(lambda: lines_received(dev_server) == 20, what="a new file opened and shipped")
    assert held <= MAX_CONNECTIONS + 4, f"{held} descriptors held by idle connections"

    # The idle connections that were let in are closed once they miss the header deadline.
    await eventually(
        lambda: all(closed_by_peer(s) for s in sockets),
        within=HEADER_TIMEOUT_SECS * 4,
        what="idle connections timed out",
    )
    assert time.monotonic() - started >= HEADER_TIMEOUT_SECS * 0.9
    assert await limited_agent.stop() == 0
    stderr = limited_agent.stderr.read_text()
    assert "Traceback" not in stderr
    assert not [e for e in limited_agent.events() if e["event"] == "non_json_output"]
    assert len(stderr.splitlines()) < 60, "a burst of connection errors is not one log line each"


@pytest.mark.timeout(60)
async def test_a_slow_client_trickling_its_header_is_cut_off(
    limited_agent: Agent, idle_sockets: Callable[[str, int, int], list[socket.socket]]
) -> None:
    await limited_agent.start()
    url = await admin_url(limited_agent)
    host, _, port = url.removeprefix("http://").rpartition(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    started = time.monotonic()

    async def trickle() -> None:
        writer.write(b"GET /healthz HTTP/1.1\r\n")
        while True:
            writer.write(b"X-Slow: 1\r\n")
            await writer.drain()
            await asyncio.sleep(0.5)

    sending = asyncio.create_task(trickle())
    try:
        assert await asyncio.wait_for(reader.read(), HEADER_TIMEOUT_SECS * 4) == b""
    finally:
        sending.cancel()
        writer.close()
    assert time.monotonic() - started < HEADER_TIMEOUT_SECS * 3
    assert await limited_agent.stop() == 0
