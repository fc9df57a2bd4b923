"""A user regex that backtracks catastrophically must not stall the file (SPEC, "Delivery
guarantee": no log line can stall a file). Python's `re` has no time limit: one hostile line
against ``(a|aa)+$`` (exponential) or ``.*a.*b.*c.*d`` (polynomial, on a 16 KB line) held the
reader, and every file with it, for minutes. Now the line whose match does not finish within
its bound is dead-lettered as ``parse_timeout``, counted, and the lines around it shipped."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import orjson
import pytest

from agent.devserver import DevServer
from tests.support.config import CONNECTION
from tests.support.inprocess import InProcessAgent

EXPONENTIAL = r"^(?P<level>[a-z]+) (?P<word>(a|aa)+)$"
POLYNOMIAL = r"^(?P<level>[a-z]+) (?P<rest>.*a.*b.*c.*d)"

CASES = [
    pytest.param(
        EXPONENTIAL,
        [b"info a", b"warn aaaa", b"info aa"],
        b"info " + b"a" * 64 + b"!",
        id="exponential",
    ),
    pytest.param(
        POLYNOMIAL,
        [b"info a b c d", b"warn xa yb zc wd", b"info abcd"],
        b"info " + (b"abc" * 6000)[:16_000],
        id="polynomial",
    ),
]


def dead_letters(data_dir: Path) -> list[dict[str, object]]:
    return [
        orjson.loads(line)
        for file in sorted((data_dir / "dead-letter").glob("*.ndjson"))
        for line in file.read_bytes().splitlines()
    ]


def write_log(log_dir: Path, good: list[bytes], hostile: bytes) -> Path:
    """Normal lines on both sides of the hostile one."""
    app = log_dir / "app.log"
    app.write_bytes(b"\n".join([good[0], good[1], hostile, good[2]]) + b"\n")
    return app


@pytest.mark.timeout(90)
@pytest.mark.parametrize(("pattern", "good", "hostile"), CASES)
async def test_a_catastrophic_line_is_dead_lettered_and_the_file_goes_on(
    dev_server: DevServer,
    make_agent,
    log_dir: Path,
    pattern: str,
    good: list[bytes],
    hostile: bytes,
) -> None:
    app = write_log(log_dir, good, hostile)
    agent = make_agent(source={"format": "text", "parser": {"type": "regex", "pattern": pattern}})

    assert await agent.run_once() == 0

    received = [orjson.loads(line) for line in dev_server.received_lines(CONNECTION)]
    assert [e["level"] for e in received] == [g.split()[0].decode() for g in good]
    [letter] = dead_letters(agent.data_dir)
    assert letter["reason"] == "parse_timeout"
    assert letter["offset"] == len(good[0]) + len(good[1]) + 2
    assert letter["line"] == hostile.decode()
    assert "did not finish" in str(letter["detail"])
    [stopped] = [e for e in agent.events() if e.get("event") == "agent_stopped"]
    assert stopped["dead_letters"] == 1
    assert agent.checkpoints()[str(app)] == app.stat().st_size, "the file is done with"


@pytest.mark.timeout(90)
@pytest.mark.parametrize(("pattern", "good", "hostile"), CASES)
async def test_a_parse_timeout_is_counted_by_reason_and_outcome(
    inprocess_agent: Callable[..., InProcessAgent],
    dev_server: DevServer,
    log_dir: Path,
    pattern: str,
    good: list[bytes],
    hostile: bytes,
) -> None:
    write_log(log_dir, good, hostile)
    agent = inprocess_agent(
        source={"format": "text", "parser": {"type": "regex", "pattern": pattern}}
    )

    assert await agent.run_once() == 0

    assert len(dev_server.received_lines(CONNECTION)) == 3
    assert agent.snapshot().dead_letters.get("parse_timeout") == 1
    assert agent.source("app").parsing.get("parse_timeout") == 1
