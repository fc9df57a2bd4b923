"""The journald source: journal entries -> NDJSON pieces, checkpointed by cursor.

    journalctl child ──► JournalReader ──► EntryEncoder ──► JournalPiece ──► emit (runtime)
                                                               │
                       CursorStore ◄── CursorTracker ◄──────── Ticket (seq) ◄── acks

The seam for the runtime is `JournalReader.run(stop, emit)`, `CursorTracker` and
`CursorStore`; for config, `JournalSettings`; for `check`, `find_journalctl`.
"""

from agent.journal.cursor import CursorFileError, CursorStore, CursorTracker
from agent.journal.event import EntryEncoder, JournalPiece
from agent.journal.reader import (
    JournalctlMissing,
    JournalError,
    JournalReader,
    find_journalctl,
)
from agent.journal.settings import JournalSettings

__all__ = [
    "CursorFileError",
    "CursorStore",
    "CursorTracker",
    "EntryEncoder",
    "JournalError",
    "JournalPiece",
    "JournalReader",
    "JournalSettings",
    "JournalctlMissing",
    "find_journalctl",
]
