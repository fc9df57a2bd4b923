"""The real agent against the dev-server when an encoder raises on a line (a defect of ours
the line found, as this round's attacks found four): the line is dead-lettered with
`encoder_failed`, every other line arrives, and `run --once` ends 0. Before, the exception
ended the agent with exit 1 at every start, on the same line."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import orjson
import pytest

from agent.devserver import DevServer
from tests.support.config import CONNECTION
from tests.support.faulty import POISON, install_faulty_encoders
from tests.support.inprocess import InProcessAgent


async def test_a_line_that_breaks_the_encoder_costs_that_line_not_the_agent(
    inprocess_agent: Callable[..., InProcessAgent],
    dev_server: DevServer,
    log_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    install_faulty_encoders(monkeypatch)
    log = log_dir / "app.log"
    before = b"".join(b"line %d\n" % n for n in range(300))
    log.write_bytes(before)
    agent = inprocess_agent(source={"format": "text"})
    await agent.start()
    await agent.wait_until(agent.read("app", len(before)))
    with log.open("ab") as out:
        out.write(b"poison " + POISON + b"\n")
    await agent.wait_until(agent.read("app", len(before) + len(b"poison BOOM\n")))
    with log.open("ab") as out:
        out.write(b"".join(b"after %d\n" % n for n in range(300)))
    await agent.wait_until(agent.received(600))

    assert await agent.stop() == 0
    received = [orjson.loads(x)["message"] for x in dev_server.received_lines(CONNECTION)]
    assert received == [f"line {n}" for n in range(300)] + [f"after {n}" for n in range(300)]
    letters = [
        orjson.loads(x)
        for f in (agent.data_dir / "dead-letter").glob("*.ndjson")
        for x in f.read_bytes().splitlines()
    ]
    assert [(d["reason"], d["line"]) for d in letters] == [("encoder_failed", "poison BOOM")]
