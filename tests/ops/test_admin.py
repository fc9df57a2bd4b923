"""The admin endpoint over real HTTP on 127.0.0.1, with a snapshot the test changes."""

from __future__ import annotations

import logging
import socket
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import aiohttp
import pytest
import structlog
from prometheus_client.parser import text_string_to_metric_families

from agent.config.listen import InvalidListenAddress, ListenAddress
from agent.ops.admin import AdminBindError, AdminServer, serve_admin
from agent.ops.snapshot import AgentSnapshot

from .snapshots import healthy


@dataclass
class Agent:
    """Stands in for the runtime: holds the snapshot the endpoint will read next."""

    snapshot: AgentSnapshot
    reads: int = 0

    def read(self) -> AgentSnapshot:
        self.reads += 1
        return self.snapshot


@pytest.fixture
def agent() -> Agent:
    return Agent(healthy())


@pytest.fixture
async def admin(agent: Agent) -> AsyncIterator[AdminServer]:
    async with serve_admin("127.0.0.1:0", agent.read) as server:
        yield server


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        yield session


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


async def test_port_zero_binds_a_free_port(admin: AdminServer) -> None:
    assert admin.host == "127.0.0.1"
    assert admin.port > 0
    assert admin.url == f"http://127.0.0.1:{admin.port}"


async def test_metrics_are_the_text_exposition(
    admin: AdminServer, agent: Agent, http: aiohttp.ClientSession
) -> None:
    agent.snapshot = healthy(events_sent=777)

    async with http.get(f"{admin.url}/metrics") as response:
        body = await response.text()
        assert response.status == 200
        assert response.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"

    families = {f.name: f for f in text_string_to_metric_families(body)}
    assert families["polaris_agent_sent_events"].samples[0].value == 777  # connection="default"
    assert "process_resident_memory_bytes" in families


async def test_healthz_says_alive(admin: AdminServer, http: aiohttp.ClientSession) -> None:
    async with http.get(f"{admin.url}/healthz") as response:
        assert response.status == 200
        assert await response.json() == {"status": "alive"}


async def test_readyz_follows_the_current_snapshot(
    admin: AdminServer, agent: Agent, http: aiohttp.ClientSession
) -> None:
    async with http.get(f"{admin.url}/readyz") as response:
        assert (response.status, await response.json()) == (200, {"ready": True, "reasons": []})

    # Issue 15: failing delivery no longer makes /readyz 503 (see test_health); not reading does.
    agent.snapshot = healthy(auth_failing=True, seconds_since_success=300.0)
    async with http.get(f"{admin.url}/readyz") as response:
        assert (response.status, await response.json()) == (200, {"ready": True, "reasons": []})

    agent.snapshot = healthy(reading=False)
    async with http.get(f"{admin.url}/readyz") as response:
        assert response.status == 503
        assert await response.json() == {"ready": False, "reasons": ["not_reading"]}


async def test_every_request_reads_a_fresh_snapshot(
    admin: AdminServer, agent: Agent, http: aiohttp.ClientSession
) -> None:
    for path in ("/metrics", "/readyz", "/metrics"):
        async with http.get(admin.url + path) as response:
            assert response.status == 200

    assert agent.reads == 3


async def test_requests_are_not_logged(
    admin: AdminServer, http: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with structlog.testing.capture_logs() as events:
        for path in ("/metrics", "/healthz", "/readyz"):
            async with http.get(admin.url + path) as response:
                assert response.status == 200

    assert events == []
    assert [r for r in caplog.records if r.levelno >= logging.INFO] == []


async def test_unknown_paths_and_methods(admin: AdminServer, http: aiohttp.ClientSession) -> None:
    async with http.get(f"{admin.url}/nope") as response:
        assert response.status == 404
    async with http.post(f"{admin.url}/metrics") as response:
        assert response.status == 405


async def test_a_taken_port_is_a_bind_error_naming_the_address(taken_port: int) -> None:
    listen = f"127.0.0.1:{taken_port}"

    with pytest.raises(AdminBindError, match=f"cannot listen on {listen} .*in use"):
        async with serve_admin(listen, healthy):
            pytest.fail("served on a taken port")


async def test_the_port_is_released_on_exit(agent: Agent) -> None:
    async with serve_admin("127.0.0.1:0", agent.read) as server:
        port = server.port

    async with serve_admin(f"127.0.0.1:{port}", agent.read) as again:
        assert again.port == port


@pytest.mark.parametrize(
    ("listen", "expected"),
    [
        ("127.0.0.1:8686", ListenAddress("127.0.0.1", 8686)),
        ("localhost:0", ListenAddress("localhost", 0)),
        ("0.0.0.0:9000", ListenAddress("0.0.0.0", 9000)),
        ("[::1]:8686", ListenAddress("::1", 8686)),
        ("[::]:0", ListenAddress("::", 0)),
    ],
)
def test_listen_addresses(listen: str, expected: ListenAddress) -> None:
    assert ListenAddress.parse(listen) == expected


@pytest.mark.parametrize(
    ("listen", "problem"),
    [
        ("127.0.0.1", "no port"),
        ("127.0.0.1:", "port '' is not 0-65535"),
        ("127.0.0.1:http", "port 'http' is not 0-65535"),
        ("127.0.0.1:65536", "port '65536' is not 0-65535"),
        (":8686", "no host"),
        ("::1:8686", "IPv6 addresses need brackets"),
        ("[::1:8686", "unclosed"),
        ("[::1]8686", "no :port after ]"),
    ],
)
async def test_bad_listen_addresses_are_rejected_before_binding(listen: str, problem: str) -> None:
    with pytest.raises(InvalidListenAddress, match=problem):
        async with serve_admin(listen, healthy):
            pytest.fail("served on a bad address")


def test_ipv6_urls_are_bracketed() -> None:
    assert AdminServer(host="::1", port=8686).url == "http://[::1]:8686"
