"""An agent with `[polaris.oauth]` against the dev-server's token endpoint: tokens fetched
before the first request, replaced before they expire and once when Polaris says one expired,
never logged; a refused client keeps the data and makes the agent not ready."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from agent.devserver import DevServer
from tests.support.config import CONNECTION, render_toml
from tests.support.inprocess import InProcessAgent
from tests.support.waiting import Condition

CLIENT, SECRET = "agent-client", "client-secret-0123456789"


def oauth_agent(
    make: Callable[..., InProcessAgent], server: DevServer, **changes: Any
) -> InProcessAgent:
    """The usual agent, its `api_key` replaced by an OAuth client (secret from the env)."""
    token_url = f"{server.url}/auth/realms/test-org/protocol/openid-connect/token"
    agent = make(**changes)
    polaris = agent.doc["polaris"]
    del polaris["api_key"]
    polaris["oauth"] = {
        "client_id": CLIENT,
        "client_secret": "${TEST_OAUTH_SECRET}",
        "token_url": token_url,
    }
    agent.config.write_text(render_toml(agent.doc))
    return agent


@pytest.fixture(autouse=True)
def _oauth_client(dev_server: DevServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_OAUTH_SECRET", SECRET)
    dev_server.auth.oauth_clients[CLIENT] = SECRET


def write(path: Path, first: int, count: int) -> None:
    with path.open("ab") as out:
        for n in range(first, first + count):
            out.write(orjson.dumps({"n": n}) + b"\n")


def numbers(server: DevServer) -> list[int]:
    return sorted(orjson.loads(line)["n"] for line in server.received_lines(CONNECTION))


def tokens_issued(server: DevServer, count: int) -> Condition:
    return Condition(f"{count} tokens issued", lambda: server.auth.issued >= count)


async def test_ships_through_token_expiries_mid_run_with_nothing_lost(
    dev_server: DevServer, inprocess_agent: Callable[..., InProcessAgent], log_dir: Path
) -> None:
    dev_server.auth.token_lifetime = 2.0  # Imply's live ~5 minutes
    agent = oauth_agent(inprocess_agent, dev_server)
    await agent.start()
    written = 0
    while dev_server.auth.issued < 3:  # two replacements: the run outlived two tokens
        write(log_dir / "app.log", written, 20)
        written += 20
        await agent.wait_until(agent.received(written), within=30)
    assert await agent.stop() == 0

    assert numbers(dev_server) == list(range(written)), "lost or duplicated lines"
    assert {r.auth_user for r in dev_server.requests} == {CLIENT}
    assert not agent.snapshot().auth_failing
    logged = orjson.dumps(agent.events()).decode()
    assert SECRET not in logged
    assert "Bearer" not in logged


async def test_a_token_refused_as_expired_is_replaced_and_the_batch_sent_again(
    dev_server: DevServer, inprocess_agent: Callable[..., InProcessAgent], log_dir: Path
) -> None:
    agent = oauth_agent(inprocess_agent, dev_server)
    await agent.start()
    write(log_dir / "app.log", 0, 10)
    await agent.wait_until(agent.received(10))

    dev_server.auth.expire_tokens()  # Polaris' view; the agent still thinks it is fresh
    write(log_dir / "app.log", 10, 10)
    await agent.wait_until(agent.received(20), tokens_issued(dev_server, 2))
    assert await agent.stop() == 0

    assert numbers(dev_server) == list(range(20))
    statuses = Counter(r.status for r in dev_server.requests)
    assert statuses[401] == 1, statuses
    assert not agent.snapshot().auth_failing


async def test_a_refused_client_keeps_the_data_and_is_not_ready_until_it_is_accepted(
    dev_server: DevServer, inprocess_agent: Callable[..., InProcessAgent], log_dir: Path
) -> None:
    dev_server.auth.oauth_clients[CLIENT] = "another-secret"
    agent = oauth_agent(inprocess_agent, dev_server, spool={"after": "1h"})
    await agent.start()
    write(log_dir / "app.log", 0, 10)
    await agent.wait_until(
        Condition("auth failing", lambda: agent.snapshot().auth_failing),
        agent.event("oauth_token_failed"),
    )
    assert dev_server.received_lines(CONNECTION) == []

    dev_server.auth.oauth_clients[CLIENT] = SECRET  # the operator fixed the client
    await agent.wait_until(agent.received(10))
    assert await agent.stop() == 0

    assert numbers(dev_server) == list(range(10))
    assert not agent.snapshot().auth_failing
    assert SECRET not in orjson.dumps(agent.events()).decode()
