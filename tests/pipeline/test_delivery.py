"""Every line written arrives: the pipeline end to end, as a user runs it.

The agent runs in process (`inprocess_agent`) unless the scenario is about the process: a
million lines at full speed, SIGTERM and the exit code, the `status` command."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import orjson

from agent.devserver import DevServer
from tests.support.config import API_KEY, CONNECTION
from tests.support.inprocess import InProcessAgent
from tests.support.lines import write_json_lines
from tests.support.waiting import eventually


async def test_a_million_lines_arrive_once_each_gzip_and_within_the_size_limit(
    dev_server: DevServer, make_agent, log_dir: Path
) -> None:
    per_file = 250_000
    for index in range(4):
        write_json_lines(log_dir / f"app-{index}.log", index * per_file, per_file)
    agent = make_agent(source={"time_field": "event_time"})

    assert await agent.run_once(within=300) == 0

    received = dev_server.received_lines(CONNECTION)
    numbers = sorted(orjson.loads(line)["seq"] for line in received)
    assert len(numbers) == 1_000_000
    assert numbers == list(range(1_000_000)), "lost or duplicated lines"
    first = orjson.loads(received[0])
    assert set(first) == {"seq", "event_time", "level", "p"}, "fields must arrive unchanged"
    events = dev_server.requests
    assert all(r.status == 200 for r in events)
    assert all(r.content_encoding == "gzip" for r in events)
    assert all(r.auth_user == API_KEY for r in events)
    assert max(r.body_bytes for r in events) <= 1_000_000
    assert sum(r.line_count for r in events) == 1_000_000


async def test_text_lines_get_message_fields_and_a_read_time(
    dev_server: DevServer, inprocess_agent: Callable[..., InProcessAgent], log_dir: Path
) -> None:
    (log_dir / "plain.log").write_bytes(b'hello "world"\r\n\xff broken utf8\n\n')
    agent = inprocess_agent(source={"format": "text", "fields": {"service": "checkout", "tier": 2}})
    before = time.time()

    assert await agent.run_once() == 0

    events = [orjson.loads(line) for line in dev_server.received_lines(CONNECTION)]
    assert [e["message"] for e in events] == ['hello "world"', "\ufffd broken utf8"]
    assert all(e["service"] == "checkout" and e["tier"] == 2 for e in events)
    stamp = events[0]["timestamp"]
    assert stamp.endswith("Z")
    parsed = datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
    assert before - 1 <= parsed <= time.time() + 1


async def test_json_lines_keep_their_fields_and_gain_only_what_is_missing(
    dev_server: DevServer, inprocess_agent: Callable[..., InProcessAgent], log_dir: Path
) -> None:
    (log_dir / "app.log").write_bytes(
        b'{"ts":"2026-11-25T01:02:03Z","a":1}\n'
        b'{"a":2}\n'
        b'{"ts":null,"a":3}\n'
        b"{}\n"
        b'{"a":4,"service":"mine"}\n'
    )
    agent = inprocess_agent(source={"time_field": "ts", "fields": {"service": "checkout"}})

    assert await agent.run_once() == 0

    received = dev_server.received_lines(CONNECTION)
    assert received[0] == b'{"ts":"2026-11-25T01:02:03Z","a":1,"service":"checkout"}'
    events = [orjson.loads(line) for line in received]
    assert all(isinstance(e["ts"], str) and e["ts"].endswith("Z") for e in events)
    assert events[3]["service"] == "checkout" and set(events[3]) == {"ts", "service"}
    assert events[4]["service"] == "mine", "an original field is never overwritten"


async def test_broken_and_over_long_lines_are_dead_lettered_and_the_file_goes_on(
    dev_server: DevServer, inprocess_agent: Callable[..., InProcessAgent], log_dir: Path
) -> None:
    long_line = b'{"big":"' + b"y" * 5000 + b'"}'
    (log_dir / "app.log").write_bytes(
        b'{"n":1}\nnot json at all\n' + long_line + b"\n[1,2]\n" + b'{"n":2}\n'
    )
    agent = inprocess_agent(source={"max_line_bytes": "4KiB"})

    assert await agent.run_once() == 0

    assert [orjson.loads(x)["n"] for x in dev_server.received_lines(CONNECTION)] == [1, 2]
    letters = [
        orjson.loads(line)
        for file in (agent.data_dir / "dead-letter").glob("*.ndjson")
        for line in file.read_bytes().splitlines()
    ]
    assert sorted(d["reason"] for d in letters) == [
        "invalid_json",
        "line_too_long",
        "not_a_json_object",
    ]
    assert all(d["path"].endswith("app.log") and d["offset"] > 0 for d in letters)
    mode = (agent.data_dir / "dead-letter").stat().st_mode & 0o777
    assert mode == 0o700


async def test_a_partial_last_line_waits_for_its_newline_across_a_restart(
    dev_server: DevServer, inprocess_agent: Callable[..., InProcessAgent], log_dir: Path
) -> None:
    log = log_dir / "app.log"
    log.write_bytes(b'{"n":1}\n{"n":')
    agent = inprocess_agent()
    assert await agent.run_once() == 0
    assert [orjson.loads(x)["n"] for x in dev_server.received_lines(CONNECTION)] == [1]
    assert agent.checkpoints()[str(log)] == len(b'{"n":1}\n')

    with log.open("ab") as out:
        out.write(b'2}\n{"n":3}\n')
    assert await agent.run_once() == 0

    assert [orjson.loads(x)["n"] for x in dev_server.received_lines(CONNECTION)] == [1, 2, 3]


async def test_follow_mode_ships_appended_lines_and_sigterm_exits_cleanly(
    dev_server: DevServer, make_agent, log_dir: Path
) -> None:
    log = log_dir / "app.log"
    log.write_bytes(b"")
    agent = make_agent()
    await agent.start()
    for n in range(5):
        with log.open("ab") as out:
            out.write(orjson.dumps({"n": n}) + b"\n")
        await eventually(lambda n=n: len(dev_server.received_lines(CONNECTION)) == n + 1)

    assert await agent.stop() == 0
    assert agent.checkpoints()[str(log)] == log.stat().st_size
    names = [e["event"] for e in agent.events()]
    assert "agent_stopping" in names and names[-1] == "agent_stopped"
    assert API_KEY not in agent.stderr.read_text()


async def test_a_new_line_is_noticed_by_file_notifications_not_by_the_scan(
    dev_server: DevServer, inprocess_agent: Callable[..., InProcessAgent], log_dir: Path
) -> None:
    log = log_dir / "app.log"
    log.write_bytes(b"")
    agent = inprocess_agent(source={"scan_interval": "60s"})
    await agent.start()
    await agent.wait_until(agent.event("file_opened"))

    with log.open("ab") as out:
        out.write(b'{"n":1}\n')

    # Without the watch the line would wait for the next scan, a minute away.
    await agent.wait_until(agent.received(1), within=10)
    assert len(dev_server.received_lines(CONNECTION)) == 1
    assert await agent.stop() == 0


async def test_status_shows_each_file_checkpoint_and_the_dead_letters(
    dev_server: DevServer, make_agent, log_dir: Path
) -> None:
    (log_dir / "app.log").write_bytes(b'{"n":1}\nbroken\n{"n":')
    agent = make_agent()
    assert await agent.run_once() == 0

    status = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "agent",
        "status",
        "--config",
        str(agent.config),
        stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "TEST_POLARIS_KEY": API_KEY},
    )
    output = (await status.communicate())[0].decode()
    assert status.returncode == 0
    assert f"{log_dir / 'app.log'}  offset=15  (5 bytes behind)" in output
    assert "dead letters: 1" in output
    assert API_KEY not in output
