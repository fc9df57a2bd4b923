"""The checkpoint file: which file content has been read safely up to which offset.

Files are known by a checksum of their first bytes, not by path (rotation renames) nor by
inode alone (inodes are reused), so that a file renamed while the agent was stopped is found
again and finished, and a new file on a reused inode starts from its beginning.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Final

import orjson
import structlog

from agent.ops.events import Event, Events
from agent.state.files import (
    UnsafeState,
    is_link_error,
    move_aside,
    private_dir,
    read_private,
    write_atomically,
)

log = structlog.get_logger("agent.state")

FORMAT_VERSION = 1
MAX_CHECKPOINT_BYTES: Final = 256 * 2**20
"""Far more than any checkpoint file (~250 bytes a file: a million files): a larger one (a
sparse file costs no disk) is damaged, passed over unread; read whole, it was a MemoryError
at every start."""

CHECKPOINT_UNREADABLE: Final = Event(
    "checkpoint_unreadable",
    "A checkpoint file could not be decoded and was passed over (the previous one, if good, "
    "is used; otherwise files start as `start_at` says).",
    level="warning",
)
CHECKPOINT_RECOVERED: Final = Event(
    "checkpoint_recovered",
    "The checkpoint file was torn or damaged; the previous good one was used.",
    level="warning",
)
CHECKPOINT_EVENTS: Final = (CHECKPOINT_UNREADABLE, CHECKPOINT_RECOVERED)


@dataclass(frozen=True, slots=True)
class FileCheckpoint:
    fingerprint: str  # checksum of the first `fingerprint_len` bytes
    fingerprint_len: int
    offset: int  # first byte not yet safely delivered: the start of a line
    path: str  # where it was last seen, for people and for `status`
    dev: int
    ino: int
    seen_at: float  # wall-clock time it was last seen, to prune files long gone


class CheckpointStore:
    """Loads and saves checkpoints; keeps the previous good file to recover a torn write."""

    def __init__(self, path: Path, *, events: Events | None = None) -> None:
        self.path = path
        self.previous = path.with_name(path.name + ".prev")
        self._events = events or Events()
        self._failing = False  # the last save failed: logged once, until one succeeds

    def __repr__(self) -> str:
        return f"<CheckpointStore {self.path}>"

    def load(self) -> list[FileCheckpoint]:
        """The saved checkpoints. Raises `UnsafeState` when a checkpoint file is a symlink:
        following it would read (and trust) another file, and ignoring it would re-send, or
        with `start_at = "end"` skip, every file it knows; a person must look."""
        for candidate in (self.path, self.previous):
            try:
                records = _decode(read_private(candidate, max_bytes=MAX_CHECKPOINT_BYTES))
            except FileNotFoundError:
                continue
            except OSError as exc:
                if is_link_error(exc):
                    raise UnsafeState(
                        candidate,
                        "is a symlink; the agent does not follow links in data_dir",
                        "remove it, or replace it with the file it points to",
                    ) from None
                raise UnsafeState(candidate, f"cannot be read: {exc.strerror}") from None
            except (ValueError, KeyError, TypeError) as exc:
                self._events.emit(CHECKPOINT_UNREADABLE, path=str(candidate), error=str(exc))
                continue
            if candidate is self.previous:
                self._events.emit(CHECKPOINT_RECOVERED, path=str(candidate))
            return records
        return []

    def save(self, records: Iterable[FileCheckpoint]) -> bool:
        """Write the checkpoints; False (logged) when the disk refuses them.

        A checkpoint not saved costs duplicates after a restart, never lines: so a full disk
        (ENOSPC, EDQUOT), a read-only remount or an I/O error is logged and the agent runs on,
        trying again at the next save. Raising here ended the agent (exit 1) after it had
        delivered everything, and again at every periodic save."""
        data = orjson.dumps(
            {"version": FORMAT_VERSION, "files": [asdict(r) for r in records]},
            option=orjson.OPT_INDENT_2,
        )
        try:
            self._write(data)
        except (OSError, UnsafeState) as exc:
            error = exc.strerror if isinstance(exc, OSError) else None
            if not self._failing:
                log.error(
                    "checkpoint_save_failed",
                    path=str(self.path),
                    error=error or str(exc),
                    effect="lines since the last saved checkpoint are read again after a "
                    "restart; tried again at every save",
                )
            self._failing = True
            return False
        if self._failing:
            log.info("checkpoint_saved_again", path=str(self.path))
            self._failing = False
        return True

    def _write(self, data: bytes) -> None:
        try:
            self.path.replace(self.previous)
        except FileNotFoundError:
            pass
        except IsADirectoryError:  # a directory at `.prev`: every save failed on it
            move_aside(self.previous, "a directory")
            self.path.replace(self.previous)
        try:
            write_atomically(self.path, data)
        except FileNotFoundError:
            # data_dir was deleted under the running agent: made again (0700, checked), or
            # no checkpoint would be saved until a restart.
            private_dir(self.path.parent, follow=True)
            write_atomically(self.path, data)


def _decode(data: bytes) -> list[FileCheckpoint]:
    """The records in `data`; ValueError for anything but the exact shape `save` writes.

    Every field is checked, not only the JSON: a record is trusted by the tailer as it is
    (an offset is passed to `pread`, a length compared with ints), so one wrong type or a
    negative offset used to crash the agent at every start, on the same file."""
    doc = orjson.loads(data)
    if not isinstance(doc, dict) or doc.get("version") != FORMAT_VERSION:
        found = doc.get("version") if isinstance(doc, dict) else type(doc).__name__
        raise ValueError(f"unsupported checkpoint format {found!r}")
    entries = doc.get("files")
    if not isinstance(entries, list):
        raise ValueError("'files' is not a list")
    return [_record(entry) for entry in entries]


_STRINGS: Final = ("fingerprint", "path")
_COUNTS: Final = {"fingerprint_len": 2**63, "offset": 2**63, "dev": 2**64, "ino": 2**64}


def _record(entry: object) -> FileCheckpoint:
    if not isinstance(entry, dict) or set(entry) != {*_STRINGS, *_COUNTS, "seen_at"}:
        raise ValueError(f"not a checkpoint record: {str(entry)[:200]}")
    for name in _STRINGS:
        if not isinstance(entry[name], str):
            raise ValueError(f"{name} is not a string: {entry[name]!r}")
    for name, bound in _COUNTS.items():
        value = entry[name]
        if type(value) is not int or not 0 <= value < bound:  # bool is an int: refused
            raise ValueError(f"{name} is not a count: {value!r}")
    seen_at = entry["seen_at"]
    if type(seen_at) not in (int, float) or not math.isfinite(seen_at):
        raise ValueError(f"seen_at is not a time: {seen_at!r}")
    return FileCheckpoint(**{**entry, "seen_at": float(seen_at)})
