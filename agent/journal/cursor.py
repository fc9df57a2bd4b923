"""The journal's checkpoint: the cursor of the last entry whose batch is safe.

A cursor is a string, not an offset, so it cannot ride a `Ticket` as it is. Each piece gets
the next *sequence number* of its source instead; the numbers go through the shared ack
tracker exactly like file offsets (the sender completes tickets there, whatever the source),
and `CursorTracker` maps the tracker's safe number back to the cursor it stands for. Delivered,
spooled and dead-lettered all complete a ticket, so all three make a cursor safe; a hole
(an earlier batch still out) holds it back.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Protocol

import orjson
import structlog

from agent.records import FileId, Ticket
from agent.state.files import UnsafeState, private_dir, write_atomically

log = structlog.get_logger("agent.journal")

CURSOR_FILE_VERSION: Final = 1
MAX_CURSOR_FILE_BYTES: Final = 64 * 1024


class Acks(Protocol):
    """What `CursorTracker` needs of the ack tracker (`agent.state.acks.AckTracker`)."""

    def track(self, file: FileId, committed: int) -> None: ...
    def issue(self, file: FileId, end_offset: int) -> Ticket: ...
    def committed(self, file: FileId) -> int: ...
    def forget(self, file: FileId) -> None: ...


class CursorTracker:
    """One journal source's cursors, safe in order.

    `issue(cursor)` is called for every piece as it is enqueued, in journal order; the
    returned ticket goes into the `Piece`. `committed()` is the cursor to persist.
    """

    def __init__(self, acks: Acks, file: FileId, committed: str | None) -> None:
        self._acks = acks
        self._file = file
        self._seq = 0
        self._committed = committed
        self._pending: deque[tuple[int, str]] = deque()
        acks.track(file, 0)

    def __repr__(self) -> str:
        return f"<CursorTracker file={self._file} pending={len(self._pending)}>"

    @property
    def file(self) -> FileId:
        return self._file

    def issue(self, cursor: str) -> Ticket:
        self._seq += 1
        self._pending.append((self._seq, cursor))
        return self._acks.issue(self._file, self._seq)

    def committed(self) -> str | None:
        """The cursor of the last entry that is safe, with every one before it."""
        safe = self._acks.committed(self._file)
        pending = self._pending
        while pending and pending[0][0] <= safe:
            self._committed = pending.popleft()[1]
        return self._committed

    def pending(self) -> int:
        """Pieces issued and not yet safe: the cursor lag, in pieces."""
        self.committed()
        return len(self._pending)

    def forget(self) -> None:
        self._acks.forget(self._file)
        self._pending.clear()


class CursorFileError(Exception):
    """The cursor file exists and cannot be used (not ours, unreadable, another version)."""


@dataclass(frozen=True, slots=True)
class CursorStore:
    """``<dir>/<source>.cursor``: versioned JSON, replaced atomically (temp file, fsync,
    rename, fsync of the directory), 0600, never through a symlink."""

    path: str
    source: str

    def load(self) -> str | None:
        """The saved cursor (None: none saved); `CursorFileError` when the file cannot be
        used. Opened O_NONBLOCK and checked regular: a FIFO at its name blocked the agent's
        start forever, a directory raised IsADirectoryError out of it."""
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
        except FileNotFoundError:
            return None
        except OSError as error:
            raise CursorFileError(f"{self.path}: {error.strerror}") from None
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise CursorFileError(f"{self.path}: not a regular file")
            raw = os.read(fd, MAX_CURSOR_FILE_BYTES)
        except OSError as error:
            raise CursorFileError(f"{self.path}: {error.strerror}") from None
        finally:
            os.close(fd)
        try:
            record = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise CursorFileError(f"{self.path}: not JSON") from None
        if type(record) is not dict or record.get("version") != CURSOR_FILE_VERSION:
            raise CursorFileError(f"{self.path}: not a version {CURSOR_FILE_VERSION} cursor")
        cursor = record.get("cursor")
        if cursor is not None and type(cursor) is not str:
            raise CursorFileError(f"{self.path}: cursor is not a string")
        return cursor

    def save(self, cursor: str) -> bool:
        """Write `cursor` (temp file, fsync, rename, fsync of the directory); False, logged,
        when the disk refuses it (full, read-only, an I/O error): a cursor not saved costs
        duplicates after a restart, never entries, so the agent runs on and the next save
        tries again. Raising here ended the agent; a short write left a torn file."""
        body = orjson.dumps(
            {"version": CURSOR_FILE_VERSION, "source": self.source, "cursor": cursor}
        )
        with contextlib.suppress(FileNotFoundError):
            os.unlink(f"{self.path}.tmp")  # a leftover of a crash mid-save, by older versions
        try:
            self._write(body)
        except (OSError, UnsafeState) as error:
            log.error(
                "journal_cursor_save_failed",
                source=self.source,
                path=self.path,
                error=(error.strerror if isinstance(error, OSError) else None) or str(error),
            )
            return False
        return True

    def _write(self, body: bytes) -> None:
        path = Path(self.path)
        try:
            write_atomically(path, body)
        except FileNotFoundError:
            # data_dir (or its journal/) was deleted under the running agent: made again,
            # 0700 and checked, or no cursor would be saved until a restart.
            private_dir(path.parent)
            write_atomically(path, body)
