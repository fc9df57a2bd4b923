"""The journald reader on real journal files: what it hands on, where it resumes, and that
its journalctl child never outlives it."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from agent.journal import (
    CursorStore,
    CursorTracker,
    EntryEncoder,
    JournalctlMissing,
    JournalReader,
    JournalSettings,
)
from agent.records import FileId
from agent.state.acks import AckTracker
from tests.journal.conftest import Collected, JournalDir, entry, process_gone, wait_until


@contextlib.asynccontextmanager
async def running(
    settings: JournalSettings, resume: str | None = None
) -> AsyncIterator[tuple[JournalReader, Collected]]:
    reader = JournalReader("journal", settings, EntryEncoder(settings), resume=resume)
    collected = Collected()
    stop = asyncio.Event()
    task = asyncio.create_task(reader.run(stop, collected))
    try:
        yield reader, collected
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


def from_start(journal: JournalDir, **options: object) -> JournalSettings:
    return JournalSettings.model_validate(
        {"directory": str(journal.path), "since": "beginning", **options}
    )


async def test_every_entry_becomes_its_event(journal: JournalDir) -> None:
    journal.write([entry(1), entry(2, priority=3), entry(3, unit="db.service", CODE_LINE=7)])
    async with running(from_start(journal)) as (reader, got):
        await wait_until(lambda: reader.stats.events == 3)
    events = got.events()
    assert [e["message"] for e in events] == ["entry 1", "entry 2", "entry 3"]
    first = events[0]
    assert first["level"] == "info" and events[1]["level"] == "err"
    assert first["SYSTEMD_UNIT"] == "app.service" and events[2]["SYSTEMD_UNIT"] == "db.service"
    assert first["SYSLOG_IDENTIFIER"] == "app"
    assert first["PID"] == "4242" and first["HOSTNAME"] == "host-1"
    assert first["BOOT_ID"] == "0123456789abcdef0123456789abcdef" and first["COMM"] == "app"
    assert events[2]["CODE_LINE"] == "7"
    assert not any(key.startswith("_") for event in events for key in event)
    stamp = first["timestamp"]
    assert isinstance(stamp, str) and stamp.endswith("Z") and stamp[10] == "T"
    assert got.pieces[-1].cursor == journal.cursors()[-1]


async def test_entries_appended_while_following_arrive(journal: JournalDir) -> None:
    journal.write([entry(1)])
    async with running(from_start(journal)) as (reader, got):
        await wait_until(lambda: reader.stats.events == 1)
        journal.write([entry(2), entry(3)])  # another file, as after a rotation
        await wait_until(lambda: reader.stats.events == 3)
    assert got.messages() == ["entry 1", "entry 2", "entry 3"]


async def test_unit_filter_and_exclusion(journal: JournalDir) -> None:
    journal.write(
        [
            entry(1, unit="app.service"),
            entry(2, unit="db.service"),
            entry(3, unit="cron.service"),
            entry(4, unit="app.service"),
        ]
    )
    only_app = from_start(journal, units=["app.service"])
    async with running(only_app) as (reader, got):
        await wait_until(lambda: reader.stats.events == 2)
    assert got.messages() == ["entry 1", "entry 4"]

    not_db = from_start(journal, exclude_units=["db.service"])
    async with running(not_db) as (reader, got):
        await wait_until(lambda: reader.stats.entries == 4)
    assert got.messages() == ["entry 1", "entry 3", "entry 4"]
    assert reader.stats.skipped == 1
    assert got.pieces[-1].cursor == journal.cursors()[-1]  # the skipped one's cursor moves too


async def test_binary_messages_are_decoded_and_bad_utf8_counted(journal: JournalDir) -> None:
    journal.write(
        [
            entry(1, "caf\u00e9 \u2713 multi\nline".encode()),
            entry(2, b"bad \xff\xfe bytes\x01"),
            entry(3, b"ok"),
        ]
    )
    async with running(from_start(journal)) as (reader, got):
        await wait_until(lambda: reader.stats.events == 3)
    assert got.messages() == ["caf\u00e9 \u2713 multi\nline", "bad \ufffd\ufffd bytes\x01", "ok"]
    assert reader.stats.invalid_utf8 == 1


async def test_field_rules_trusted_names_and_repeated_fields(journal: JournalDir) -> None:
    journal.write(
        [
            entry(1, PID="spoofed", TAGS=["a", "b"], CODE_FILE="x.c"),
            entry(2, priority=9),
        ]
    )
    async with running(from_start(journal)) as (reader, got):
        await wait_until(lambda: reader.stats.events == 2)
    first, second = got.events()
    assert first["PID"] == "4242"  # journald's _PID, not the client's PID
    assert first["TAGS"] == ["a", "b"] and first["CODE_FILE"] == "x.c"
    assert second["level"] == "9"  # outside 0..7: kept as written

    only = from_start(journal, include_fields=["CODE_FILE"])
    async with running(only) as (reader, got):
        await wait_until(lambda: reader.stats.events == 2)
    assert set(got.events()[0]) == {
        "message",
        "timestamp",
        "level",
        "SYSTEMD_UNIT",
        "SYSLOG_IDENTIFIER",
        "PID",
        "HOSTNAME",
        "BOOT_ID",
        "CODE_FILE",
    }

    without = from_start(journal, exclude_fields=["_COMM", "TAGS", "MESSAGE"])
    async with running(without) as (reader, got):
        await wait_until(lambda: reader.stats.events == 2)
    event = got.events()[0]
    assert "COMM" not in event and "TAGS" not in event
    assert event["message"] == "entry 1"  # the core fields cannot be excluded


async def test_resumes_after_the_last_safe_cursor(journal: JournalDir, tmp_path: Path) -> None:
    journal.write([entry(1), entry(2), entry(3)])
    store = CursorStore(str(tmp_path / "journal.cursor"), "journal")
    acks = AckTracker()
    tracker = CursorTracker(acks, FileId(1), store.load())
    async with running(from_start(journal)) as (reader, got):
        await wait_until(lambda: reader.stats.events == 3)
    tickets = [tracker.issue(piece.cursor) for piece in got.pieces]
    for ticket in tickets:
        acks.complete(ticket)
    safe = tracker.committed()
    assert safe == journal.cursors()[-1]
    store.save(safe)

    journal.write([entry(4), entry(5)])
    async with running(from_start(journal), resume=store.load()) as (reader, got):
        await wait_until(lambda: reader.stats.events == 2)
    assert got.messages() == ["entry 4", "entry 5"]
    assert reader.stats.cursor_gaps == 0


async def test_a_vacuumed_cursor_resumes_at_the_oldest_entry_and_says_so(
    journal: JournalDir,
) -> None:
    old = journal.write([entry(1), entry(2), entry(3)])
    saved = journal.cursors()[1]
    old.unlink()  # vacuumed
    journal.write([entry(4), entry(5)])
    with capture_logs() as logs:
        async with running(from_start(journal), resume=saved) as (reader, got):
            await wait_until(lambda: reader.stats.events == 2)
    assert got.messages() == ["entry 4", "entry 5"]
    gap = next(log for log in logs if log["event"] == "journal_cursor_missing")
    assert gap["saved"] == saved
    assert gap["missing_seconds"] is not None and gap["missing_seconds"] > 0
    assert reader.stats.cursor_gaps == 1


async def test_a_cursor_that_is_no_cursor_reads_from_the_beginning(journal: JournalDir) -> None:
    journal.write([entry(1), entry(2)])
    with capture_logs() as logs:
        async with running(from_start(journal), resume="garbage;i=1") as (reader, got):
            await wait_until(lambda: reader.stats.events == 2)
    assert got.messages() == ["entry 1", "entry 2"]
    assert any(log["event"] == "journal_cursor_invalid" for log in logs)


async def test_a_killed_child_is_restarted_where_it_stopped(journal: JournalDir) -> None:
    journal.write([entry(1)])
    async with running(from_start(journal)) as (reader, got):
        await wait_until(lambda: reader.stats.events == 1)
        first = reader.pid
        assert first is not None
        os.kill(first, signal.SIGKILL)
        await wait_until(lambda: reader.pid not in (None, first))
        journal.write([entry(2)])
        await wait_until(lambda: reader.stats.events == 2)
    assert got.messages() == ["entry 1", "entry 2"]  # nothing twice, nothing lost
    assert reader.stats.restarts == 1 and reader.stats.cursor_gaps == 0


async def test_since_a_time_starts_there(journal: JournalDir) -> None:
    now = int(time.time() * 1_000_000)
    journal.write(
        [
            entry(1, __REALTIME_TIMESTAMP=now - 7_200_000_000),
            entry(2, __REALTIME_TIMESTAMP=now - 60_000_000),
        ]
    )
    since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 3600))
    settings = JournalSettings.model_validate({"directory": str(journal.path), "since": since})
    async with running(settings) as (reader, got):
        await wait_until(lambda: reader.stats.events == 1)
    assert got.messages() == ["entry 2"]


async def test_missing_journalctl_is_a_clear_error(journal: JournalDir) -> None:
    settings = from_start(journal)
    reader = JournalReader(
        "journal", settings, EntryEncoder(settings), resume=None, journalctl="no-journalctl-here"
    )
    with pytest.raises(JournalctlMissing, match="no-journalctl-here"):
        await reader.run(asyncio.Event(), Collected())


async def test_child_exit_is_restarted_and_its_stderr_logged(journal: JournalDir) -> None:
    journal.write([entry(1)])
    settings = JournalSettings(directory=str(journal.path / "absent"), since="beginning")
    with capture_logs() as logs:
        async with running(settings) as (reader, _):
            await wait_until(lambda: reader.stats.restarts >= 2)
    assert any(log["event"] == "journal_child_stderr" for log in logs)


async def test_the_child_is_gone_after_stop(journal: JournalDir) -> None:
    journal.write([entry(1)])
    async with running(from_start(journal)) as (reader, _):
        await wait_until(lambda: reader.stats.events == 1)
        pid = reader.pid
        assert pid is not None and not process_gone(pid)
        assert os.getpgid(pid) == pid  # a process group of its own
    assert process_gone(pid)


STUBBORN_CHILD = """#!/bin/sh
echo '{"__CURSOR":"s=0;i=1","MESSAGE":"x"}'
exec sleep 600
"""


@pytest.mark.parametrize("child", ["journalctl", "stubborn"])
def test_the_child_dies_when_the_agent_is_killed(
    journal: JournalDir, tmp_path: Path, child: str
) -> None:
    """journalctl itself exits when its stdout pipe hangs up (systemd 252 does); the
    "stubborn" stand-in, which never notices, proves the death signal does it anyway."""
    journal.write([entry(1)])
    if child == "stubborn":
        stub = tmp_path / "journalctl"
        stub.write_text(STUBBORN_CHILD)
        stub.chmod(0o755)
        child = str(stub)
    script = textwrap.dedent(
        f"""
        import asyncio, sys
        from agent.journal import EntryEncoder, JournalReader, JournalSettings

        async def main() -> None:
            settings = JournalSettings(directory={str(journal.path)!r}, since="beginning")
            reader = JournalReader(
                "j", settings, EntryEncoder(settings), resume=None, journalctl={child!r}
            )

            async def emit(piece):
                print("CHILD", reader.pid, flush=True)

            await reader.run(asyncio.Event(), emit)

        asyncio.run(main())
        """
    )
    agent = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, cwd=Path(__file__).parents[2]
    )
    try:
        assert agent.stdout is not None
        line = b""
        while not line.startswith(b"CHILD "):  # structlog writes to stdout too
            line = agent.stdout.readline()
            assert line, "the agent ended before its child read anything"
        pid = int(line.split()[1])
        assert not process_gone(pid)
        agent.send_signal(signal.SIGKILL)
        agent.wait(10)
        deadline = time.monotonic() + 10
        while not process_gone(pid):
            assert time.monotonic() < deadline, f"{child} ({pid}) outlived the agent"
            time.sleep(0.02)
    finally:
        agent.kill()
        agent.wait()
