"""Which content a file holds: resumed from a checkpoint, a copy of a tracked file, the rest of
a content truncated in place, or new.

copytruncate makes a copy of a tracked file and truncates the original. A new file that
begins like a tracked one is held back for a moment (a `Copy`): when the original turns out
truncated, the copy continues the original's identity (its tickets, its read offset), so it
is neither re-sent nor left unfinished; when the original is not truncated soon, the new file
is a file of its own that merely begins alike (a shared banner, a CSV header) and is read
from 0. A content truncated before its copy was seen waits a moment as an `Orphan`.

Checkpoints of files not found (yet) are kept as dormant records: a file that comes back, or
turns up under another name, is claimed by its first bytes and resumed where it was safe.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass

import structlog

from agent.config import SourceConfig
from agent.records import FileId
from agent.state.acks import AckTracker
from agent.state.checkpoint import FileCheckpoint
from agent.tail.compare import (
    by_inode,
    diverges,
    is_moved,
    last_line_end,
    line_start,
)
from agent.tail.discover import covers
from agent.tail.dormant import Dormant
from agent.tail.fingerprint import Fingerprint, head, of_head, starts_with
from agent.tail.reader import Key, Reader
from agent.tail.registry import Registry

log = structlog.get_logger("agent.tailer")

COPY_WAIT_SECS = 5.0  # how long a file beginning like a tracked one waits for a truncation


@dataclass(slots=True)
class Copy:
    """A new file beginning like tracked file `of`: maybe the copy copytruncate makes."""

    source: str
    path: str
    of: Key
    until: float  # monotonic; then it is read as a file of its own


@dataclass(slots=True)
class Orphan:
    """The content of a file truncated in place, kept so that its copy can finish it."""

    file_id: FileId
    fingerprint: Fingerprint
    offset: int  # how far it had been read
    path: str
    dev: int
    ino: int
    until: float  # monotonic; then, once its tickets are done, it is forgotten


class Identity:
    """Decides what each file found is, and keeps what a restart needs to find it again.

    `line_limit(source)` is the line limit a new reader of that source gets; `on_opened`
    hears of each file opened as a new content (not a resumed copy), as it is opened.
    """

    def __init__(
        self,
        registry: Registry,
        acks: AckTracker,
        line_limit: Callable[[str], int],
        on_opened: Callable[[SourceConfig, Reader], None],
    ) -> None:
        self._registry = registry
        self._acks = acks
        self._line_limit = line_limit
        self.copies: dict[Key, Copy] = {}
        self.orphans: list[Orphan] = []
        self.dormant = Dormant()  # records of files gone or not found yet
        self._on_opened = on_opened
        self.truncations = 0

    def __repr__(self) -> str:
        return (
            f"<Identity copies={len(self.copies)} orphans={len(self.orphans)}"
            f" dormant={len(self.dormant)}>"
        )

    # -- a path found by a scan -----------------------------------------------------------

    def track(self, source: SourceConfig, path: str, *, first_scan: bool) -> Key | None:
        """The file at `path`, tracked from now on (or held as a copy); None if unopenable."""
        try:
            stat = os.stat(path)
        except OSError:
            return None
        key = (stat.st_dev, stat.st_ino)
        known = self._registry.readers.get(key)
        if known is not None:
            known.path = path
            known.missing_since = None
            known.last_size = stat.st_size
            if not known.is_open and known.changed_since_close(stat):
                known.unread = True
            return key
        copy = self.copies.get(key)
        if copy is not None and time.monotonic() < copy.until and copy.of in self._registry.readers:
            copy.path = path
            return key
        self.copies.pop(key, None)
        return self._open_new(source, path, could_be_copy=copy is None, first_scan=first_scan)

    def _open_new(
        self, source: SourceConfig, path: str, *, could_be_copy: bool, first_scan: bool
    ) -> Key | None:
        fd = self._registry.open_path(source.name, path)
        if fd is None:
            return None
        stat = os.fstat(fd)  # the file actually opened, whatever happened to the path since
        key = (stat.st_dev, stat.st_ino)
        if key in self._registry.readers or key in self.copies:
            os.close(fd)
            return key
        data = head(fd)
        orphan = self._orphan_of(data)
        if orphan is not None and line_start(fd, orphan.offset, stat.st_size):
            self._adopt(source, path, fd, orphan.file_id, orphan.fingerprint, orphan.offset)
            self.orphans.remove(orphan)
            return key
        saved = self.dormant.claim(fd, stat, data)
        twin = None if saved is not None or not could_be_copy else self._twin_of(fd, stat, data)
        if twin is not None:
            os.close(fd)
            self.copies[key] = Copy(source.name, path, twin, time.monotonic() + COPY_WAIT_SECS)
            log.info("file_held_as_copy", path=path, of=self._registry.readers[twin].path)
            return key
        if saved is not None and saved.offset > stat.st_size:
            offset, how = 0, "truncated_while_stopped"
        elif saved is not None:
            offset, how = saved.offset, "checkpoint"
        elif first_scan and source.start_at == "end":
            offset, how = last_line_end(fd, stat.st_size), "end"
        else:
            offset, how = 0, "beginning"
        reader = self._new_reader(source.name, path, fd, offset, of_head(data))
        log.info("file_opened", path=path, source=source.name, offset=offset, start=how)
        self._on_opened(source, reader)
        return key

    def _new_reader(
        self,
        source: str,
        path: str,
        fd: int,
        offset: int,
        fp: Fingerprint,
        file_id: FileId | None = None,
    ) -> Reader:
        if file_id is None:
            file_id = self._registry.new_id()
            self._acks.track(file_id, offset)
        reader = Reader(
            file_id, source, path, fd, offset, fp, max_line_bytes=self._line_limit(source)
        )
        self._registry.register(reader)
        return reader

    def _twin_of(self, fd: int, stat: os.stat_result, data: bytes) -> Key | None:
        """A tracked file this new one may be a copy of: same first bytes, same tail."""
        for other in self._registry.matching(data):
            original = self._registry.readers.get(other)
            if original is not None and not diverges(fd, stat.st_size, original):
                return other
        return None

    def _orphan_of(self, data: bytes) -> Orphan | None:
        for orphan in self.orphans:
            fp = orphan.fingerprint
            if len(data) >= fp.length and of_head(data[: fp.length]) == fp:
                return orphan
        return None

    def _adopt(
        self,
        source: SourceConfig,
        path: str,
        fd: int,
        file_id: FileId,
        fp: Fingerprint,
        offset: int,
    ) -> None:
        """The copy of a truncated file continues its identity: same tickets, same offset."""
        offset = min(offset, os.fstat(fd).st_size)
        self._new_reader(source.name, path, fd, offset, fp, file_id)
        log.info("file_opened", path=path, source=source.name, offset=offset, start="copy")

    # -- truncation -----------------------------------------------------------------------

    def restart(self, reader: Reader) -> None:
        """The file was truncated in place: its old content lives on only in a copy, if any.

        A held copy continues the old content now; otherwise the old content waits a moment
        as an orphan for a copy to appear. The file itself starts again at 0 as new content.
        """
        log.warning("file_truncated", path=reader.path, offset=reader.offset)
        self.truncations += 1
        old_id, old_fp, old_offset = reader.file_id, reader.fingerprint, reader.line_offset
        copy_key = next((k for k, c in self.copies.items() if c.of == reader.key), None)
        reader.rewind(self._registry.new_id())
        self._acks.track(reader.file_id, 0)
        if copy_key is not None and self._take_copy(copy_key, old_id, old_fp, old_offset):
            return
        until = time.monotonic() + COPY_WAIT_SECS
        orphan = Orphan(old_id, old_fp, old_offset, reader.path, reader.dev, reader.ino, until)
        self.orphans.append(orphan)

    def _take_copy(self, key: Key, file_id: FileId, fp: Fingerprint, offset: int) -> bool:
        copy = self.copies.pop(key)
        source = self._registry.sources.get(copy.source)
        if source is None:
            return False
        fd = self._registry.open_path(copy.source, copy.path)
        if fd is None:
            return False
        stat = os.fstat(fd)
        if (stat.st_dev, stat.st_ino) != key or not starts_with(fd, fp):
            os.close(fd)
            return False
        self._adopt(source, copy.path, fd, file_id, fp, offset)
        return True

    # -- moved while stopped --------------------------------------------------------------

    def finish_moved(self) -> None:
        """At start: files rotated while the agent was stopped to a name the globs no longer
        find (`app.log` -> `app.log.1` with include `app.log`) still hold lines past their
        checkpoint. Each is looked for by identity next to its old path and read to its end
        from the checkpoint; it is not among what the scans find, so it is released like
        any file gone from its globs.
        """
        wanted: dict[str, list[tuple[int, SourceConfig]]] = {}  # directory -> records
        sources = self._registry.sources.values()
        for number, record in self.dormant.items():
            source = next((s for s in sources if covers(s, record.path)), None)
            key = (record.dev, record.ino)
            if source is not None and key not in self._registry.readers and key not in self.copies:
                wanted.setdefault(os.path.dirname(record.path), []).append((number, source))
        for directory, records in wanted.items():
            paths = by_inode(directory, {self.dormant[n].ino for n, _ in records})
            for number, source in records:
                record = self.dormant[number]
                for path in paths.get(record.ino, []):
                    if path != record.path and self._resume_moved(number, source, path):
                        break

    def _resume_moved(self, number: int, source: SourceConfig, path: str) -> bool:
        """Track the file at `path` from dormant record `number`, if it is its content."""
        record = self.dormant[number]
        if (record.dev, record.ino) in self._registry.readers:
            return False  # two records of one inode: the first that fits took it
        try:
            if os.stat(path).st_size <= record.offset:
                return False  # finished before: no descriptor for it (the cap is shared)
        except OSError:
            return False
        fd = self._registry.open_path(source.name, path)
        if fd is None:
            return False
        if not is_moved(record, fd, os.fstat(fd)):
            os.close(fd)
            return False
        self.dormant.take(number)
        fp = Fingerprint(record.fingerprint, record.fingerprint_len)
        self._new_reader(source.name, path, fd, record.offset, fp)
        log.info(
            "file_opened",
            path=path,
            source=source.name,
            offset=record.offset,
            start="checkpoint",
            moved_from=record.path,
        )
        return True

    # -- what survives ----------------------------------------------------------------------

    def forget_copies(self, keep: set[Key] | None = None, source: str | None = None) -> None:
        """Drop held copies no longer found (not in `keep`), or of a removed `source`."""
        for key, copy in list(self.copies.items()):
            if (keep is not None and key not in keep) or copy.source == source:
                del self.copies[key]

    def settle(self, now: float) -> None:
        """Forget truncated contents once their copy had its chance and nothing waits on them."""
        for orphan in list(self.orphans):
            if now >= orphan.until and not self._acks.pending_bytes(orphan.file_id):
                self._acks.forget(orphan.file_id)
                self.orphans.remove(orphan)

    def record(self, reader: Reader | Orphan, now: float) -> FileCheckpoint:
        """What a restart needs to find this content again and resume it where it is safe;
        for an orphan (a content truncated in place) until its copy turns up."""
        return FileCheckpoint(
            fingerprint=reader.fingerprint.digest,
            fingerprint_len=reader.fingerprint.length,
            offset=self._acks.committed(reader.file_id),
            path=reader.path,
            dev=reader.dev,
            ino=reader.ino,
            seen_at=now,
        )

    def untracked(self, now: float) -> list[FileCheckpoint]:
        """Records of orphans and of dormant files."""
        return [self.record(o, now) for o in self.orphans] + self.dormant.records(now)
