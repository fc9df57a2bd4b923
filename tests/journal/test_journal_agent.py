"""The journald source end to end: the real agent reads journal files that
systemd-journal-remote wrote and ships them to the dev-server, at least once across restarts
and SIGKILL, its cursor saved only when what it covers is safe."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import orjson

from agent.devserver import DevServer
from agent.ops.metrics import build_registry, render
from tests.journal.conftest import JournalDir, entry, journald_source
from tests.support.config import API_KEY, CONNECTION
from tests.support.inprocess import InProcessAgent
from tests.support.process import AgentProcess
from tests.support.waiting import Condition


def received(server: DevServer) -> list[dict[str, object]]:
    return [orjson.loads(line) for line in server.received_lines(CONNECTION)]


def saved_cursor(data_dir: Path) -> str | None:
    path = data_dir / "journal" / "journal.cursor"
    return orjson.loads(path.read_bytes())["cursor"] if path.exists() else None


async def test_follows_entries_as_they_arrive_and_saves_the_safe_cursor(
    dev_server: DevServer, inprocess_agent: Callable[..., InProcessAgent], journal: JournalDir
) -> None:
    journal.write([entry(n) for n in range(3)])
    agent = inprocess_agent(sources=[journald_source(journal.path, fields={"env": "test"})])
    await agent.start()
    await agent.wait_until(agent.received(3))
    journal.write([entry(n, unit="db.service", priority=3) for n in range(3, 5)])
    await agent.wait_until(agent.received(5))
    last = journal.cursors()[-1]
    await agent.wait_until(Condition("cursor saved", lambda: saved_cursor(agent.data_dir) == last))
    numbers = agent.source("journal").journal
    assert numbers["entries"] == 5 and numbers["cursor_lag_pieces"] == 0
    assert numbers["child_running"] == 1
    scraped = render(build_registry(agent.snapshot, process_metrics=False)).decode()
    assert 'polaris_agent_journal_entries_total{source="journal"} 5.0' in scraped
    assert await agent.stop() == 0

    events = received(dev_server)
    assert [e["message"] for e in events] == [f"entry {n}" for n in range(5)]
    fourth = events[3]
    assert fourth["level"] == "err" and fourth["SYSTEMD_UNIT"] == "db.service"
    assert fourth["SYSLOG_IDENTIFIER"] == "app" and fourth["PID"] == "4242"
    assert fourth["HOSTNAME"] == "host-1" and fourth["env"] == "test"
    assert str(fourth["timestamp"]).endswith("Z") and "__CURSOR" not in fourth


async def test_sigkill_resumes_after_the_saved_cursor_with_nothing_lost(
    dev_server: DevServer, make_agent: Callable[..., AgentProcess], journal: JournalDir
) -> None:
    journal.write([entry(n) for n in range(3000)])
    agent = make_agent(sources=[journald_source(journal.path)], batch={"max_bytes": 20_000})
    await agent.start()
    await agent.wait_until(agent.received(500), within=60)
    agent.process.send_signal(signal.SIGKILL)  # type: ignore[union-attr]
    await agent.wait()
    cursor = saved_cursor(agent.data_dir)
    journal.write([entry(n) for n in range(3000, 3100)])

    assert await agent.run_once() == 0

    counts = Counter(e["message"] for e in received(dev_server))
    assert set(counts) == {f"entry {n}" for n in range(3100)}, "an entry was lost"
    safe = journal.cursors().index(cursor) if cursor else -1
    twice = sorted(int(str(m).split()[1]) for m, c in counts.items() if c > 1)
    assert all(n > safe for n in twice), "an entry behind the saved cursor was sent again"
    assert saved_cursor(agent.data_dir) == journal.cursors()[-1]


async def test_a_vacuumed_cursor_resumes_at_the_oldest_entry_and_says_so(
    dev_server: DevServer, inprocess_agent: Callable[..., InProcessAgent], journal: JournalDir
) -> None:
    first = journal.write([entry(n) for n in range(5)])
    agent = inprocess_agent(sources=[journald_source(journal.path)])
    assert await agent.run_once() == 0
    first.unlink()  # journald vacuumed it
    journal.write([entry(n) for n in range(5, 8)])

    assert await agent.run_once() == 0

    assert [e["message"] for e in received(dev_server)] == [f"entry {n}" for n in range(8)]
    [gap] = agent.named("journal_cursor_missing")
    assert gap["source"] == "journal" and gap["resumed"] == journal.cursors()[0]


async def test_a_unit_filter_ships_only_its_units(
    dev_server: DevServer, inprocess_agent: Callable[..., InProcessAgent], journal: JournalDir
) -> None:
    units = ["app.service", "noisy.service", "other.service"]
    journal.write([entry(n, unit=units[n % 3]) for n in range(9)])
    source = journald_source(
        journal.path, units=["app.service", "noisy.service"], exclude_units=["noisy.service"]
    )
    agent = inprocess_agent(sources=[source])

    assert await agent.run_once() == 0

    assert [e["message"] for e in received(dev_server)] == ["entry 0", "entry 3", "entry 6"]
    assert saved_cursor(agent.data_dir) is not None


async def test_binary_messages_are_decoded_and_old_entries_dead_lettered(
    dev_server: DevServer, inprocess_agent: Callable[..., InProcessAgent], journal: JournalDir
) -> None:
    old = entry(3, "forty days old")
    old["__REALTIME_TIMESTAMP"] = int(old["__REALTIME_TIMESTAMP"]) - 40 * 86_400_000_000  # type: ignore[call-overload]
    journal.write(
        [entry(0, b"bin\xffary\x00 tail"), entry(1, "two\nlines"), entry(2, b"caf\xe9"), old]
    )
    agent = inprocess_agent(sources=[journald_source(journal.path)])

    assert await agent.run_once() == 0

    messages = [e["message"] for e in received(dev_server)]
    assert messages == ["bin\ufffdary\x00 tail", "two\nlines", "caf\ufffd"]
    assert agent.source("journal").parsing["invalid_bytes"] == 2
    dead = (agent.data_dir / "dead-letter").glob("*")
    records = [orjson.loads(line) for path in dead for line in path.read_bytes().splitlines()]
    assert [(r["reason"], r["path"]) for r in records] == [("too_late", "journal:journal")]
    assert saved_cursor(agent.data_dir) == journal.cursors()[-1]


async def test_reload_adds_and_removes_a_journal_source(
    dev_server: DevServer,
    inprocess_agent: Callable[..., InProcessAgent],
    journal: JournalDir,
    log_dir: Path,
) -> None:
    journal.write([entry(n) for n in range(4)])
    agent = inprocess_agent()
    await agent.start()
    agent.write_config(extra_sources=[journald_source(journal.path)])
    assert agent.agent is not None and await agent.agent.reload()
    await agent.wait_until(agent.received(4))
    assert [s.name for s in agent.snapshot().sources] == ["app", "journal"]

    agent.write_config()
    assert await agent.agent.reload()
    await agent.wait_until(
        Condition("journal source gone", lambda: len(agent.snapshot().sources) == 1)
    )
    journal.write([entry(n) for n in range(4, 6)])
    (log_dir / "app.log").write_bytes(b'{"n": 1}\n')
    await agent.wait_until(agent.received(5))
    assert await agent.stop() == 0
    assert [e.get("message", e.get("n")) for e in received(dev_server)] == [
        *(f"entry {n}" for n in range(4)),
        1,
    ]


def test_check_without_journalctl_exits_78_naming_the_source(tmp_path: Path) -> None:
    config = tmp_path / "agent.toml"
    config.write_text(
        f'data_dir = "{tmp_path / "data"}"\n'
        '[polaris]\nurl = "http://127.0.0.1:1"\nproject_id = "p"\nconnection = "c"\n'
        'api_key = "${TEST_POLARIS_KEY}"\n'
        '[[sources]]\nname = "system-journal"\ntype = "journald"\n'
    )
    empty = tmp_path / "bin"
    empty.mkdir()
    env = {**os.environ, "PATH": str(empty), "TEST_POLARIS_KEY": API_KEY}
    result = subprocess.run(
        [sys.executable, "-m", "agent", "check", "--config", str(config)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert result.returncode == 78, result.stderr
    assert "sources[0]" in result.stderr and "system-journal" in result.stderr
    assert "journalctl" in result.stderr
