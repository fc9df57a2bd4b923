"""The journald source: journal entries -> NDJSON pieces, checkpointed by cursor.

    journalctl child ──► JournalReader ──► EntryEncoder ──► JournalPiece ──► emit (runtime)
                                                               │
                       CursorStore ◄── CursorTracker ◄──────── Ticket (seq) ◄── acks

The seam for the runtime is `JournalReader.run(stop, emit)`, `CursorTracker` and
`CursorStore`; for config, `JournalSettings`; for `check`, `find_journalctl`.

The names below are loaded on first use (PEP 562): importing one module of the package (the
runner, the export format) does not load the others, and an agent without a journald source
loads none of it (see `agent.readers`).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from agent.journal.cursor import CursorFileError, CursorStore, CursorTracker
    from agent.journal.event import EntryEncoder, JournalPiece
    from agent.journal.reader import (
        JournalctlMissing,
        JournalError,
        JournalReader,
        find_journalctl,
    )
    from agent.journal.settings import JournalSettings

_HOME: Final = {
    "CursorFileError": "agent.journal.cursor",
    "CursorStore": "agent.journal.cursor",
    "CursorTracker": "agent.journal.cursor",
    "EntryEncoder": "agent.journal.event",
    "JournalPiece": "agent.journal.event",
    "JournalError": "agent.journal.reader",
    "JournalReader": "agent.journal.reader",
    "JournalctlMissing": "agent.journal.reader",
    "find_journalctl": "agent.journal.reader",
    "JournalSettings": "agent.journal.settings",
}

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


def __getattr__(name: str) -> Any:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(home), name)
