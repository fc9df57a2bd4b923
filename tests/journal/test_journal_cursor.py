"""Cursors become safe in order, and survive in a file only we can have written."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from agent.journal import CursorFileError, CursorStore, CursorTracker
from agent.records import FileId
from agent.state.acks import AckTracker


def test_a_cursor_is_safe_only_when_every_earlier_piece_is() -> None:
    acks = AckTracker()
    tracker = CursorTracker(acks, FileId(7), committed="c0")
    first, second, third = (tracker.issue(c) for c in ("c1", "c2", "c3"))
    acks.complete(second)  # delivered out of order
    assert tracker.committed() == "c0" and tracker.pending() == 3
    acks.complete(first)  # e.g. spooled
    assert tracker.committed() == "c2" and tracker.pending() == 1
    acks.complete(third)  # e.g. dead-lettered
    assert tracker.committed() == "c3" and tracker.pending() == 0


def test_the_cursor_file_round_trips_private_and_versioned(tmp_path: Path) -> None:
    store = CursorStore(str(tmp_path / "journal.cursor"), "journal")
    assert store.load() is None
    store.save("s=1;i=2")
    store.save("s=1;i=3")
    assert store.load() == "s=1;i=3"
    assert stat.S_IMODE(os.stat(store.path).st_mode) == 0o600
    assert not (tmp_path / "journal.cursor.tmp").exists()


def test_the_cursor_file_refuses_links_and_other_versions(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.write_text('{"version": 1, "cursor": "x"}')
    link = tmp_path / "journal.cursor"
    link.symlink_to(target)
    with pytest.raises(CursorFileError):
        CursorStore(str(link), "journal").load()
    link.unlink()
    link.write_text('{"version": 2, "cursor": "x"}')
    with pytest.raises(CursorFileError, match="version 1"):
        CursorStore(str(link), "journal").load()
