"""`dead-letters list` and `replay` as an operator runs them, against the dev-server; and the
bounds and the summarised logging of the dead-letter files."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import orjson
import structlog

from agent.devserver import DevServer
from agent.state.deadletter import DeadLetterLimits, DeadLetters, read_letters
from tests.support import endpoint, process
from tests.support.config import API_KEY, CONNECTION
from tests.support.process import AgentProcess

# The fixtures these tests use, from the shared support package.
dev_server = endpoint.dev_server
log_dir = endpoint.log_dir
make_agent = process.make_agent


async def cli(*args: str, key: str | None = API_KEY) -> tuple[int, str, str]:
    env = {k: v for k, v in os.environ.items() if k != "TEST_POLARIS_KEY"}
    if key is not None:
        env["TEST_POLARIS_KEY"] = key
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "agent",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_refused_events_are_listed_and_replayed_once_polaris_takes_them(
    make_agent, log_dir: Path, dev_server: DevServer
) -> None:
    (log_dir / "app.log").write_bytes(
        b'{"n":1}\n{"n":2,"mark":"BAD"}\n{"n":3}\nnot json\n{"n":4,"mark":"BAD"}\n'
    )
    dev_server.faults.refuse_events_containing("BAD")
    agent: AgentProcess = make_agent()
    assert await agent.run_once() == 0  # dead-lettered is safe: the run did its job
    config = str(agent.config)

    code, out, err = await cli("dead-letters", "list", "-c", config, key=None)
    assert code == 0, err
    assert out.count("http_rejected") == 2 and out.count("invalid_json") == 1
    assert "3 dead letters: http_rejected 2, invalid_json 1" in err
    code, out, _ = await cli(
        "dead-letters", "list", "--reason", "http_rejected", "--json", "-c", config
    )
    assert [orjson.loads(orjson.loads(line)["line"])["n"] for line in out.splitlines()] == [2, 4]

    # Still refused: replay sends them, Polaris refuses them again, they stay.
    code, _, err = await cli("dead-letters", "replay", "-c", config)
    assert code == 1
    assert "0 delivered (0 removed), 2 refused again (kept)" in err
    assert "skipped 1 records" in err and "invalid_json" in err
    assert len(list(read_letters(agent.data_dir / "dead-letter"))) == 3

    # The cause is fixed: replay delivers both and removes them; the line that was not JSON
    # is not an event and stays.
    dev_server.faults.clear()
    code, _, err = await cli("dead-letters", "replay", "-c", config)
    assert code == 0, err
    assert "2 delivered (2 removed)" in err
    received = [orjson.loads(line) for line in dev_server.received_lines(CONNECTION)]
    assert sorted(e["n"] for e in received) == [1, 2, 3, 4]
    [left] = list(read_letters(agent.data_dir / "dead-letter"))
    assert left.reason == "invalid_json"
    replayed = [r for r in dev_server.requests if r.status == 200][-1]
    assert replayed.content_encoding == "gzip" and replayed.auth_user == API_KEY


async def test_since_selects_recent_records_only(make_agent, log_dir: Path) -> None:
    (log_dir / "app.log").write_bytes(b"not json\n")
    agent: AgentProcess = make_agent()
    assert await agent.run_once() == 0
    config = str(agent.config)
    _, out, _ = await cli("dead-letters", "list", "--since", "1h", "-c", config)
    assert "invalid_json" in out
    _, out, err = await cli("dead-letters", "list", "--since", "2999-01-01T00:00:00Z", "-c", config)
    assert out == "" and "0 dead letters" in err
    assert (await cli("dead-letters", "list", "--since", "yesterday-ish", "-c", config))[0] == 2


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_the_oldest_files_go_first_when_the_size_bound_is_passed(tmp_path: Path) -> None:
    clock = Clock(1_700_000_000.0)
    limits = DeadLetterLimits(max_size=200_000, summary_every=60)
    letters = DeadLetters(tmp_path / "dl", limits, clock=clock)
    with structlog.testing.capture_logs() as logs:
        for index in range(100):
            letters.write("invalid_json", "/var/log/app.log", index * 5000, b"x" * 5000)
        letters.close()

    files = sorted((tmp_path / "dl").glob("*.ndjson"))
    total = sum(f.stat().st_size for f in files)
    assert total <= 200_000 + limits.segment_bytes
    kept = [letter.record["offset"] for letter in read_letters(tmp_path / "dl")]
    assert kept == sorted(kept) and kept[-1] == 99 * 5000, "the newest are kept, in order"
    assert letters.pruned["size"] == 100 - len(kept)
    pruned = [e for e in logs if e["event"] == "dead_letters_pruned"]
    assert sum(e["records"] for e in pruned) == letters.pruned["size"]


def test_files_older_than_max_age_are_deleted(tmp_path: Path) -> None:
    clock = Clock(1_700_000_000.0)
    directory = tmp_path / "dl"
    old = DeadLetters(directory, clock=clock)
    old.write("invalid_json", "/a.log", 0, b"old")
    old.close()
    [old_file] = directory.glob("*.ndjson")
    os.utime(old_file, (clock.now, clock.now))

    clock.now += 8 * 86400
    fresh = DeadLetters(directory, DeadLetterLimits(max_age=7 * 86400), clock=clock)
    fresh.write("invalid_json", "/a.log", 10, b"new")
    fresh.close()

    assert [letter.record["line"] for letter in read_letters(directory)] == ["new"]
    assert fresh.pruned == {"age": 1}


def test_the_first_dead_letter_per_reason_is_logged_then_counts_per_interval(
    tmp_path: Path,
) -> None:
    clock = Clock(1_700_000_000.0)
    letters = DeadLetters(tmp_path / "dl", DeadLetterLimits(summary_every=60), clock=clock)
    with structlog.testing.capture_logs() as logs:
        for index in range(1000):
            letters.write("invalid_json", "/a.log", index, b"x")
        letters.write("line_too_long", "/a.log", 5000, b"y")
        clock.now += 61
        letters.write("invalid_json", "/a.log", 6000, b"x")
        letters.write("invalid_json", "/a.log", 6001, b"x")
        letters.close()

    names = [e["event"] for e in logs]
    assert names.count("dead_lettered") == 2  # the first of each reason
    summaries = [e for e in logs if e["event"] == "dead_letters_summary"]
    assert [s["counts"] for s in summaries] == [{"invalid_json": 1000}, {"invalid_json": 1}]


def test_a_reload_with_lower_bounds_prunes_at_once_and_counts_it(tmp_path: Path) -> None:
    clock = Clock(1_700_000_000.0)
    directory = tmp_path / "dl"
    letters = DeadLetters(directory, DeadLetterLimits(max_size=1_000_000), clock=clock)
    for index in range(100):
        letters.write("invalid_json", "/a.log", index * 5000, b"x" * 5000)
    assert letters.pruned == {} and len(list(directory.glob("*.ndjson"))) > 3

    with structlog.testing.capture_logs() as logs:
        letters.reconfigure(DeadLetterLimits(max_size=100_000))

    assert sum(f.stat().st_size for f in directory.glob("*.ndjson")) <= 100_000
    kept = [letter.record["offset"] for letter in read_letters(directory)]
    assert letters.pruned == {"size": 100 - len(kept)}
    pruned = [e for e in logs if e["event"] == "dead_letters_pruned"]
    assert sum(e["records"] for e in pruned) == 100 - len(kept)
    letters.write("invalid_json", "/a.log", 999, b"after")  # writing goes on, in a new file
    letters.close()
    assert [letter.record["offset"] for letter in read_letters(directory)] == [*kept, 999]


def test_a_reload_with_a_lower_max_age_deletes_older_files_at_once(tmp_path: Path) -> None:
    clock = Clock(1_700_000_000.0)
    directory = tmp_path / "dl"
    letters = DeadLetters(directory, DeadLetterLimits(max_age=30 * 86400), clock=clock)
    letters.write("invalid_json", "/a.log", 0, b"old")
    clock.now += 2 * 86400
    letters.write("invalid_json", "/a.log", 1, b"new")  # another day: another file
    [old_file, _] = sorted(directory.glob("*.ndjson"))
    os.utime(old_file, (clock.now - 2 * 86400, clock.now - 2 * 86400))

    letters.reconfigure(DeadLetterLimits(max_age=86400))

    assert [letter.record["line"] for letter in read_letters(directory)] == ["new"]
    assert letters.pruned == {"age": 1}


def test_a_reload_changes_the_summary_interval(tmp_path: Path) -> None:
    clock = Clock(1_700_000_000.0)
    letters = DeadLetters(tmp_path / "dl", DeadLetterLimits(summary_every=3600), clock=clock)
    with structlog.testing.capture_logs() as logs:
        letters.write("invalid_json", "/a.log", 0, b"x")  # the first: logged
        letters.write("invalid_json", "/a.log", 1, b"x")  # counted for the summary
        letters.reconfigure(DeadLetterLimits(summary_every=60))
        clock.now += 61
        letters.sync()

    summaries = [e for e in logs if e["event"] == "dead_letters_summary"]
    assert [s["counts"] for s in summaries] == [{"invalid_json": 1}]
