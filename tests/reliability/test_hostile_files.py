"""Hostile files (issue 12): a line nobody should write, and a rotation nobody saw.

The real agent against the real dev-server: an over-long line is skipped in one pass and
dead-lettered with its length, and `run --once` still ships everything after it; a file
rotated out of its include glob while the agent was stopped is finished from its checkpoint.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from agent.devserver import DevServer

HUGE_LINE_BYTES = 50 * 1024 * 1024


def dead_letters(data_dir: Path) -> list[dict[str, Any]]:
    return [
        orjson.loads(line)
        for file in sorted((data_dir / "dead-letter").glob("*.ndjson"))
        for line in file.read_bytes().splitlines()
    ]


@pytest.mark.timeout(240)
async def test_a_50_mb_line_is_dead_lettered_and_once_ships_every_line_after_it(
    dev_server: DevServer, file_agent, ledger, log_dir: Path
) -> None:
    log = log_dir / "app.log"
    ledger.append(log, 50, "before")
    huge_at = log.stat().st_size
    with log.open("ab") as out:
        out.write(b'{"id":"huge","blob":"')
        out.write(b"z" * (HUGE_LINE_BYTES - len(b'{"id":"huge","blob":""}')))
        out.write(b'"}\n')
    ledger.append(log, 50, "after")
    agent = file_agent()

    assert await agent.run_once(within=200) == 0

    assert not ledger.missing(), f"lines lost after the long line: {sorted(ledger.missing())}"
    assert ledger.duplicates() == 0 and not ledger.unexpected()
    (letter,) = dead_letters(agent.data_dir)
    assert (letter["reason"], letter["offset"]) == ("line_too_long", huge_at)
    assert letter["line"].startswith('{"id":"huge","blob":"zzz')
    assert letter["bytes"] <= 1024, "only a head of the line is kept"
    assert str(HUGE_LINE_BYTES) in letter["detail"], "the line's length is recorded"
    assert agent.checkpoints()[str(log)] == log.stat().st_size


async def test_a_file_rotated_out_of_its_glob_while_stopped_is_finished_from_its_checkpoint(
    dev_server: DevServer, file_agent, ledger, log_dir: Path
) -> None:
    log = log_dir / "app.log"
    ledger.append(log, 100, "first")
    agent = file_agent(include=[str(log)])
    assert await agent.run_once() == 0
    await ledger.all_received(what="first run")

    ledger.append(log, 70, "unread")  # written after the run, before the rotation
    log.rename(log_dir / "app.log.1")
    ledger.append(log, 30, "new")

    assert await agent.run_once() == 0
    assert not ledger.missing(), f"the rotated file's tail was lost: {sorted(ledger.missing())}"
    assert ledger.duplicates() == 0, ledger.duplicated_ids()[:10]
    finished = [e for e in agent.named("file_opened") if e["path"].endswith("app.log.1")]
    assert finished and finished[-1]["start"] == "checkpoint"

    assert await agent.run_once() == 0, "a third run finds nothing new to send"
    assert ledger.duplicates() == 0, ledger.duplicated_ids()[:10]
