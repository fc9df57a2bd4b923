"""A SIGHUP that moves the agent to another Polaris (`polaris.url` and key changed): the real
agent process, two dev-servers on loopback (A before, B after), each knowing only its own key.

What must not cross the reload: A's rate-limit state (its `RateLimit-Remaining: 0`, its 429
pause) holding back the requests to B; B's key, or a batch read after the reload, reaching A.
"""

from __future__ import annotations

import signal
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from agent.devserver import DevServer
from tests.support.config import API_KEY, CONNECTION
from tests.support.lines import Ledger
from tests.support.process import AgentProcess
from tests.support.waiting import Condition

KEY_B = "key-of-b-9876543210"
PAUSE_OF_A = "A's pause (up to 120 s) is far longer than this wait"


@pytest.fixture
async def server_b() -> AsyncIterator[DevServer]:
    """Another Polaris host (another organization): 127.0.0.2, not A's 127.0.0.1 on another
    port, because the agent keeps one rate-limit budget per host name, as Polaris counts
    per organization and each organization has its own host."""
    b = DevServer(api_keys=[KEY_B], auto_create_connections=[CONNECTION])
    await b.start("127.0.0.2", 0)
    try:
        yield b
    finally:
        await b.stop()


def move_to(agent: AgentProcess, server: DevServer, key: str) -> None:
    """Rewrite the agent's config for `server` (a literal key, the file 0600) and SIGHUP it."""
    agent.config.chmod(0o600)
    agent.write_config(polaris={"url": server.url, "api_key": key})
    assert agent.process is not None
    agent.process.send_signal(signal.SIGHUP)


def requests_with(server: DevServer, key: str) -> int:
    return sum(1 for r in server.requests if r.auth_user == key)


async def reloaded(agent: AgentProcess) -> None:
    await agent.wait_until(agent.event("config_reloaded"))
    assert "polaris" in agent.named("config_reloaded")[-1]["applied"]


@pytest.mark.parametrize("a_says", ["no requests left this minute", "429 for two minutes"])
async def test_the_old_hosts_rate_limit_does_not_hold_back_the_new_host(
    make_agent: Callable[..., AgentProcess],
    dev_server: DevServer,
    server_b: DevServer,
    log_dir: Path,
    a_says: str,
) -> None:
    log = log_dir / "app.log"
    at_a, at_b = Ledger(dev_server), Ledger(server_b)
    agent = make_agent()
    if a_says == "no requests left this minute":
        dev_server.faults.set_rate_limit(1)  # the first request leaves RateLimit-Remaining: 0
        at_a.append(log, 1, tag="a")
        await agent.start()
        await at_a.all_received(what="A took the first line")
    else:
        dev_server.faults.fail_for(429, seconds=3600, retry_after=600)  # capped at 120 s
        at_b.append(log, 1, tag="a")  # never accepted by A: B must have it
        await agent.start()
        await agent.wait_until(agent.event("throttled"))

    move_to(agent, server_b, KEY_B)
    await reloaded(agent)
    at_b.append(log, 3, tag="b")

    await at_b.all_received(within=12, what=PAUSE_OF_A)
    assert requests_with(dev_server, KEY_B) == 0
    assert await agent.stop() == 0


async def test_after_the_reload_no_batch_and_not_the_new_key_go_to_the_old_host(
    make_agent: Callable[..., AgentProcess],
    dev_server: DevServer,
    server_b: DevServer,
    log_dir: Path,
) -> None:
    """A answers 503 to everything: the batch read before the reload is still being retried
    when the reload comes, and must go to B from then on, with B's key only."""
    log = log_dir / "app.log"
    at_b = Ledger(server_b)
    workers = 2
    agent = make_agent(sender={"workers": workers})
    dev_server.faults.fail_for(503, seconds=3600)
    at_b.append(log, 20, tag="before")
    await agent.start()
    await agent.wait_until(Condition("A retried", lambda: dev_server.status_counts[503] >= 3))

    move_to(agent, server_b, KEY_B)
    await reloaded(agent)
    at_reload = len(dev_server.requests)
    at_b.append(log, 20, tag="after")

    await at_b.all_received(what="every line at B")
    assert requests_with(dev_server, KEY_B) == 0
    assert requests_with(server_b, API_KEY) == 0
    assert len(dev_server.requests) - at_reload <= workers  # at most those already out
    assert dev_server.received_lines(CONNECTION) == []
    assert await agent.stop() == 0
    assert KEY_B not in agent.stderr.read_text()


async def test_data_spooled_for_the_old_connection_reaches_the_renamed_one_on_the_new_host(
    make_agent: Callable[..., AgentProcess], dev_server: DevServer, log_dir: Path
) -> None:
    """The new organization names its connection differently: what A never took (spooled
    while A failed) must land in B's connection, not wait forever for a name B has not got."""
    b = DevServer(api_keys=[KEY_B], auto_create_connections=["renamed"])
    await b.start("127.0.0.2", 0)
    try:
        log = log_dir / "app.log"
        agent = make_agent(spool={"after": "500ms"})
        dev_server.faults.fail_for(503, seconds=3600)
        Ledger(dev_server).append(log, 20, tag="spooled")
        await agent.start()
        await agent.wait_until(agent.checkpointed(log))  # safe: in the spool

        agent.config.chmod(0o600)
        agent.write_config(polaris={"url": b.url, "api_key": KEY_B, "connection": "renamed"})
        assert agent.process is not None
        agent.process.send_signal(signal.SIGHUP)
        await reloaded(agent)

        await agent.wait_until(
            Condition(
                "20 events in B's connection", lambda: len(b.received_lines("renamed")) >= 20
            ),
            within=12,  # stuck, without the change, for as long as one waits
        )
        assert requests_with(dev_server, KEY_B) == 0
        assert await agent.stop() == 0
    finally:
        await b.stop()
