"""`dev-server --host 0.0.0.0` (issue 12): the test-control endpoints (`/_dev/*`: switch
faults on, read stats) answer loopback peers as before; any other peer must authenticate with
an accepted API key, as the Polaris APIs require.

A non-loopback peer is made without leaving the machine: the server binds 0.0.0.0 and the
client connects to this host's own interface address (traffic still goes over `lo`).
"""

from __future__ import annotations

import base64
import socket
from collections.abc import AsyncIterator

import aiohttp
import pytest

from agent.devserver import DevServer

KEY = "dev-key-hostile-test"
FAULT = {"action": "fail_next", "status": 503, "count": 3}


def own_interface_address() -> str | None:
    """This host's address on its default route (a UDP `connect` sends nothing)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.254", 9))
        except OSError:
            return None
        address: str = probe.getsockname()[0]
    return None if address.startswith("127.") or address == "0.0.0.0" else address


@pytest.fixture
async def exposed() -> AsyncIterator[tuple[DevServer, int]]:
    server = DevServer(api_keys=[KEY])
    await server.start("0.0.0.0", 0)
    try:
        yield server, int(server.url.rpartition(":")[2])
    finally:
        await server.stop()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        yield session


def basic(key: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode()}


async def test_dev_endpoints_refuse_a_remote_peer_without_a_key(
    exposed: tuple[DevServer, int], http: aiohttp.ClientSession
) -> None:
    address = own_interface_address()
    if address is None:
        pytest.skip("no non-loopback interface address to connect from")
    server, port = exposed
    remote = f"http://{address}:{port}"

    async with http.post(f"{remote}/_dev/faults", json=FAULT) as r:
        assert r.status == 401
    async with http.get(f"{remote}/_dev/stats") as r:
        assert r.status == 401
    async with http.delete(f"{remote}/_dev/faults", headers=basic("wrong")) as r:
        assert r.status == 401
    assert "fail_next=0" in repr(server.faults)

    async with http.post(f"{remote}/_dev/faults", json=FAULT, headers=basic(KEY)) as r:
        assert r.status == 200
    assert "fail_next=3" in repr(server.faults)


async def test_dev_endpoints_still_answer_loopback_without_a_key(
    exposed: tuple[DevServer, int], http: aiohttp.ClientSession
) -> None:
    _, port = exposed
    async with http.get(f"http://127.0.0.1:{port}/_dev/stats") as r:
        assert r.status == 200
    async with http.delete(f"http://127.0.0.1:{port}/_dev/faults") as r:
        assert r.status == 204
