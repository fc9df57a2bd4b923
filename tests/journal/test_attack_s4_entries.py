"""Attack round s4 on journal entries: whatever an entry holds (no MESSAGE, a MESSAGE of
megabytes, binary and invalid UTF-8 in any field, a field repeated many times, a field
named like what the agent writes), every entry is an event or a dead letter, the reader
never stops, and the entries after it arrive."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import orjson
import pytest

from agent.journal import EntryEncoder, JournalReader, JournalSettings
from tests.journal.conftest import Collected, JournalDir, entry, wait_until


@asynccontextmanager
async def running(settings: JournalSettings) -> AsyncIterator[tuple[JournalReader, Collected]]:
    reader = JournalReader("journal", settings, EntryEncoder(settings), resume=None)
    collected = Collected()
    stop = asyncio.Event()
    task = asyncio.create_task(reader.run(stop, collected))
    try:
        yield reader, collected
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
    assert task.done() and task.exception() is None


def from_start(journal: JournalDir, **options: object) -> JournalSettings:
    return JournalSettings.model_validate(
        {"directory": str(journal.path), "since": "beginning", **options}
    )


HOSTILE = {
    "no_message": lambda n: {k: v for k, v in entry(n).items() if k != "MESSAGE"},
    "huge_message": lambda n: entry(n, b"m" * 3_000_000),
    "binary_every_field": lambda n: entry(
        n, b"\xff\x00\xfe", SYSLOG_IDENTIFIER=b"\xc3\x28", CODE_FILE=b"\x00\x01\x02"
    ),
    "field_repeated": lambda n: entry(n, EXTRA=[f"v{i}" for i in range(5000)]),
    "agent_names": lambda n: entry(n, TIMESTAMP="not a time", LEVEL="x", MESSAGE_ID="y"),
    "huge_other_field": lambda n: entry(n, BLOB=b"\xff" * 2_000_000),
    "empty_message": lambda n: entry(n, b""),
    "priority_garbage": lambda n: entry(n, PRIORITY="99999999999999999999"),
    "timestamp_garbage": lambda n: {
        **entry(n),
        "SYSLOG_TIMESTAMP": "x",
        "_SOURCE_REALTIME_TIMESTAMP": "99999999999999999999999",
    },
}


@pytest.mark.parametrize("kind", sorted(HOSTILE))
async def test_a_hostile_entry_is_an_event_or_a_dead_letter_and_the_next_ones_arrive(
    journal: JournalDir, kind: str
) -> None:
    journal.write([entry(1), HOSTILE[kind](2), entry(3)])
    async with running(from_start(journal)) as (reader, got):
        await wait_until(
            lambda: bool(got.pieces) and got.pieces[-1].cursor == journal.cursors()[-1], within=30
        )
    messages = got.messages()
    rejected = [r for p in got.pieces for r in p.rejected]
    assert messages[0] == "entry 1" and messages[-1] == "entry 3"
    assert len(messages) + len(rejected) + reader.stats.skipped == 3, (messages[:3], rejected)
    for line in (ln for p in got.pieces for ln in p.data.splitlines()):
        assert isinstance(orjson.loads(line), dict)
