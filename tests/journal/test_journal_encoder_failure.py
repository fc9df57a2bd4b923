"""A journal entry our encoder fails on (a defect of ours a message found) costs the entries
of that block, dead-lettered `encoder_failed` under their cursors, never the agent: before,
the exception left the reader and ended `run`, and every start read the same entries again."""

from __future__ import annotations

import asyncio

from structlog.testing import capture_logs

from agent.journal import EntryEncoder, JournalReader, JournalSettings
from agent.journal.event import EncodedEntries
from tests.journal.conftest import Collected, JournalDir, entry, wait_until


class FaultyEntryEncoder(EntryEncoder):
    """The real encoder, except that a block holding a message with BOOM raises."""

    def encode(self, lines: list[bytes]) -> EncodedEntries:
        if any(b"BOOM" in line for line in lines):
            raise OverflowError("date value out of range")
        return super().encode(lines)


async def test_entries_the_encoder_fails_on_are_dead_lettered_and_the_reader_goes_on(
    journal: JournalDir,
) -> None:
    settings = JournalSettings.model_validate(
        {"directory": str(journal.path), "since": "beginning"}
    )
    journal.write([entry(1, "BOOM"), entry(2)])
    reader = JournalReader("journal", settings, FaultyEntryEncoder(settings), resume=None)
    got = Collected()
    stop = asyncio.Event()
    with capture_logs() as logged:
        task = asyncio.create_task(reader.run(stop, got))
        try:
            await wait_until(lambda: any(p.rejected for p in got.pieces))
            journal.write([entry(3)])
            await wait_until(lambda: reader.stats.events == 1)
        finally:
            stop.set()
            await asyncio.wait_for(task, 10)

    letters = [r for p in got.pieces for r in p.rejected]
    assert [r.reason for r in letters] == ["encoder_failed", "encoder_failed"]
    assert [r.cursor for r in letters] == journal.cursors()[:2]
    assert b"BOOM" in letters[0].data
    assert got.messages() == ["entry 3"]
    assert got.pieces[-1].cursor == journal.cursors()[-1], "the position moves past them"
    failed = [e for e in logged if e["event"] == "encoder_failed"]
    assert len(failed) == 1 and failed[0]["error"] == "OverflowError"
