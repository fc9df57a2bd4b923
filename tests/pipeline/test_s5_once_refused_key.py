"""A backfill (`run --once`) with a wrong key: the careless operator's first run.

It must end soon (not after `--once-timeout`, 300 s by default) with exit 1 and an error that
names the refusal's status and what to do, never the key; and it must lose nothing: the next
run, with the key fixed, delivers every line exactly once. A key that is only being
propagated (refused at first, accepted a few seconds later) must not end the run.

The real agent as a subprocess against the real dev-server (which answers 401 to a key it
does not know).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from agent.devserver import DevServer
from tests.support.lines import sequence_numbers, write_json_lines
from tests.support.process import AgentProcess
from tests.support.waiting import eventually

WRONG_KEY = "wrong-key-s5-0123456789"
LINES = 3000
GENEROUS = 60.0
"""Far above the refusal bound (about 15 s) and far below the 300 s `--once-timeout` default:
the run must be over by then. A bound on a failing run, not a speed measurement."""


def refused_once_events(agent: AgentProcess) -> list[dict[str, Any]]:
    return [e for e in agent.events() if e["event"] == "once_auth_refused"]


async def backfill_with_wrong_key_then_right_key(
    make_agent: Callable[..., AgentProcess],
    log_dir: Path,
    dev_server: DevServer,
    **changes: Any,
) -> AgentProcess:
    write_json_lines(log_dir / "app.log", 0, LINES)
    agent = make_agent(polaris={"api_key": WRONG_KEY}, **changes)
    await agent.start("--once")  # the default --once-timeout: 300 s

    assert await agent.wait(GENEROUS) == 1, "a refused key must end a backfill soon"

    [refused] = refused_once_events(agent)
    assert refused["level"] == "error"
    assert (refused["status"], refused["refused_by"]) == (401, "events_api")
    assert refused["refusals"] >= 2
    assert "api_key" in refused["hint"]
    assert "run --once again" in refused["hint"]
    names = [e["event"] for e in agent.events()]
    assert "once_incomplete" in names and "once_gave_up" not in names
    assert WRONG_KEY.encode() not in agent.stderr.read_bytes()
    assert dev_server.received_lines() == []

    agent.write_config(**changes)  # the key fixed (from the environment, as the base has it)
    assert await agent.run_once() == 0
    assert sorted(sequence_numbers(dev_server)) == list(range(LINES)), "exactly once, all"
    return agent


async def test_a_refused_key_ends_a_spooling_backfill_soon_and_loses_nothing(
    make_agent: Callable[..., AgentProcess], log_dir: Path, dev_server: DevServer
) -> None:
    agent = await backfill_with_wrong_key_then_right_key(make_agent, log_dir, dev_server)
    replayed = [e for e in agent.events() if e["event"] == "spool_replayed"]
    assert replayed, "the first run spooled what it held; the second replayed it"


async def test_a_refused_key_ends_a_backfill_without_spool_soon_and_loses_nothing(
    make_agent: Callable[..., AgentProcess], log_dir: Path, dev_server: DevServer
) -> None:
    await backfill_with_wrong_key_then_right_key(
        make_agent, log_dir, dev_server, spool={"enabled": False}
    )


async def test_a_key_still_propagating_does_not_end_the_backfill(
    make_agent: Callable[..., AgentProcess], log_dir: Path, dev_server: DevServer
) -> None:
    """Refused at first, accepted once the dev-server learns it: the run delivers and exits 0."""
    write_json_lines(log_dir / "app.log", 0, LINES)
    agent = make_agent(polaris={"api_key": WRONG_KEY})
    await agent.start("--once")
    await eventually(
        lambda: any(e["event"] == "auth_failed" for e in agent.events()),
        within=GENEROUS,
        what="the new key refused at least once",
    )

    dev_server.auth.api_keys = dev_server.auth.api_keys | {WRONG_KEY}  # propagated now

    assert await agent.wait(GENEROUS) == 0
    assert refused_once_events(agent) == []
    assert sorted(sequence_numbers(dev_server)) == list(range(LINES))


async def test_a_connection_that_does_not_exist_ends_a_backfill_soon_and_loses_nothing(
    make_agent: Callable[..., AgentProcess], log_dir: Path, dev_server: DevServer
) -> None:
    """The same careless operator, one typo later: polaris.connection names no connection
    (404). Retrying cannot fix it either: exit 1 soon, then `setup` (here: the connection
    created) and the same command delivers every line."""
    write_json_lines(log_dir / "app.log", 0, LINES)
    agent = make_agent(polaris={"connection": "not-created-yet"})
    await agent.start("--once")

    assert await agent.wait(GENEROUS) == 1

    [refused] = [e for e in agent.events() if e["event"] == "once_endpoint_refused"]
    assert refused["reason"] == "not_found" and refused["refusals"] >= 2
    assert "polaris-agent setup" in refused["hint"]

    dev_server.create_connection("not-created-yet")
    assert await agent.run_once() == 0
    received = [orjson.loads(line)["seq"] for line in dev_server.received_lines("not-created-yet")]
    assert sorted(received) == list(range(LINES))
