"""Every file the sources track, open or closed, and the descriptors they may hold.

Tracking is not holding a descriptor: a file idle for `close_inactive`, or the least recently
active one when a source reaches `max_open_files`, is closed and reopened by path when it
changes, after checking that the path still leads to the same inode (its content is the
identity's to check).
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import structlog

from agent.config import SourceConfig
from agent.records import FileId
from agent.tail.discover import discover, is_recursive, watch_root
from agent.tail.fingerprint import FingerprintIndex, starts_with
from agent.tail.reader import Key, Reader

log = structlog.get_logger("agent.tailer")


@dataclass(slots=True)
class Usage:
    """One source's files: how many are tracked, how many open, how far ahead of the
    checkpoint they are on disk (read but not yet safe, plus unread)."""

    files: int
    open_files: int
    lag_bytes: int
    unreadable: int = 0  # paths that could not be opened at their last try
    open_failures: int = 0  # paths that became unopenable since start


class Registry:
    """The configured sources, their tracked files (`readers`), and a least-recently-active
    order of the open ones per source, for the descriptor cap."""

    def __init__(self) -> None:
        self.sources: dict[str, SourceConfig] = {}
        self.readers: dict[Key, Reader] = {}  # every tracked file, open or closed
        self.retired: list[Reader] = []  # of removed sources, until their tickets are done
        self._open: dict[str, OrderedDict[Key, None]] = {}  # per source, least recent first
        self._index: FingerprintIndex[Key] | None = None
        self._dangling: set[str] = set()
        self._unopenable: dict[str, str] = {}  # path -> source, until it opens
        self._open_failures: dict[str, int] = {}  # per source: paths that became unopenable
        self._next_id = 0

    def __repr__(self) -> str:
        opened = sum(len(o) for o in self._open.values())
        return (
            f"<Registry sources={len(self.sources)} files={len(self.readers)} open={opened}"
            f" retired={len(self.retired)}>"
        )

    def new_id(self) -> FileId:
        self._next_id += 1
        return FileId(self._next_id)

    # -- sources --------------------------------------------------------------------------

    def apply(self, sources: list[SourceConfig]) -> tuple[list[str], list[str], list[str]]:
        """Take a (reloaded) source list; the names added, removed and changed.

        A removed source's files are closed and no longer read; they wait in `retired` until
        their tickets are done. A source re-added before then takes them back where they were.
        """
        wanted = {s.name: s for s in sources}
        removed = [name for name in self.sources if name not in wanted]
        changed = [n for n, s in wanted.items() if n in self.sources and self.sources[n] != s]
        added = [name for name in wanted if name not in self.sources]
        for name in removed:
            self._retire(name)
        for name in added:
            self._open.setdefault(name, OrderedDict())
        self.sources = wanted
        for name in added:
            self._reinstate(name)
        return added, removed, changed

    def _retire(self, name: str) -> None:
        for key, reader in list(self.readers.items()):
            if reader.source == name:
                self.close(key)
                del self.readers[key]
                self.retired.append(reader)
        self._open.pop(name, None)
        self._index = None

    def _reinstate(self, name: str) -> None:
        for reader in [r for r in self.retired if r.source == name]:
            if reader.key in self.readers:
                continue  # another source took the file meanwhile; this record settles
            self.retired.remove(reader)
            reader.unread = True  # reopened by path and checked before any read
            self.readers[reader.key] = reader

    def watch_roots(self) -> tuple[frozenset[str], bool]:
        patterns = [p for s in self.sources.values() for p in s.include]
        return frozenset(watch_root(p) for p in patterns), any(is_recursive(p) for p in patterns)

    def find(self) -> list[tuple[SourceConfig, str]]:
        """Every (source, path) the globs find now; dangling links are warned about once."""
        found: list[tuple[SourceConfig, str]] = []
        dangling: set[str] = set()
        for source in list(self.sources.values()):
            paths = discover(source)
            dangling.update(paths.dangling)
            found += [(source, path) for path in paths.files]
        self._warn_dangling(dangling)
        self._index = None  # young files' fingerprints grew since the last scan
        return found

    def _warn_dangling(self, dangling: set[str]) -> None:
        """Once per link while it leads nowhere: a link kubelet left behind is not news twice."""
        for path in sorted(dangling - self._dangling):
            try:
                target = os.readlink(path)
            except OSError:
                target = "?"
            log.warning("symlink_dangling", path=path, target=target)
        self._dangling = dangling

    # -- tracked files --------------------------------------------------------------------

    def register(self, reader: Reader) -> None:
        """Track `reader`, open (it was just opened through `open_path`)."""
        self.readers[reader.key] = reader
        self._open[reader.source][reader.key] = None
        if self._index is not None:
            self._index.add(reader.fingerprint, reader.key)

    def remove(self, key: Key) -> None:
        """Close and forget a tracked file."""
        self.close(key)
        del self.readers[key]

    def matching(self, data: bytes) -> list[Key]:
        """Tracked files whose fingerprint `data` (a file's head) begins with, longest first."""
        if self._index is None:
            self._index = FingerprintIndex()
            for key, reader in self.readers.items():
                self._index.add(reader.fingerprint, key)
        return self._index.matching(data)

    def alive(self) -> set[FileId]:
        return {r.file_id for r in [*self.readers.values(), *self.retired]}

    # -- descriptors ----------------------------------------------------------------------

    def open_count(self, source: str) -> int:
        return len(self._open.get(source, ()))

    def touched(self, reader: Reader) -> None:
        """Lines were read: the least recently active file is closed first."""
        opened = self._open.get(reader.source)
        if opened is not None and reader.key in opened:
            opened.move_to_end(reader.key)

    def open_path(self, source: str, path: str, keep: Key | None = None) -> int | None:
        """A descriptor for `path` within the source's cap, closing the least active first."""
        self._make_room(source, keep)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            if exc.errno in (errno.EMFILE, errno.ENFILE):
                self._make_room(source, keep, spare=self.open_count(source) // 2)
            if path not in self._unopenable:
                self._unopenable[path] = source
                self._open_failures[source] = self._open_failures.get(source, 0) + 1
                log.warning("open_failed", path=path, error=str(exc))
            return None
        self._unopenable.pop(path, None)
        return fd

    def _make_room(self, source: str, keep: Key | None, spare: int = 0) -> None:
        opened = self._open.get(source)
        if opened is None:
            return
        limit = max(1, self.sources[source].max_open_files - spare)
        while len(opened) >= limit:
            victim = next(
                (k for k in opened if k != keep and self.readers[k].missing_since is None), None
            )
            if victim is None:
                return  # only rotated-away files are open: they cannot be reopened by path
            self.close(victim)

    def close(self, key: Key) -> None:
        reader = self.readers[key]
        reader.close()
        opened = self._open.get(reader.source)
        if opened is not None:
            opened.pop(key, None)

    def reopen(self, reader: Reader) -> bool | None:
        """Reopen a closed file by path, if the path still leads to its inode: None when it
        does not; else whether it still begins with the same content (False: rewritten in
        place, or a new file on the reused inode, which the caller restarts)."""
        fd = self.open_path(reader.source, reader.path, keep=reader.key)
        if fd is None:
            reader.unread = False  # the scan will see whether it is gone or comes back
            return None
        stat = os.fstat(fd)
        if (stat.st_dev, stat.st_ino) != reader.key:
            os.close(fd)
            reader.unread = False
            return None
        same_content = reader.fingerprint.length == 0 or starts_with(fd, reader.fingerprint)
        reader.reopen(fd)
        self._open[reader.source][reader.key] = None
        return same_content

    def close_inactive(self, reader: Reader, now: float) -> None:
        """Give back the descriptor of a file read to its end and idle for close_inactive."""
        limit = self.sources[reader.source].close_inactive
        if not reader.is_open or now - reader.last_active < limit:
            return
        try:
            finished = reader.size() <= reader.offset + reader.held
        except OSError:
            finished = False
        if finished:
            self.close(reader.key)
            log.info("file_closed_inactive", path=reader.path, offset=reader.offset)

    def usage(self, committed: Callable[[FileId], int]) -> dict[str, Usage]:
        """Per source: files tracked, descriptors held, and bytes on disk past `committed`
        (one fstat per open file; a closed one counts the size the last scan saw)."""
        usage = {
            name: Usage(0, self.open_count(name), 0, 0, self._open_failures.get(name, 0))
            for name in self.sources
        }
        for source in self._unopenable.values():
            if source in usage:
                usage[source].unreadable += 1
        for reader in self.readers.values():
            counted = usage.get(reader.source)
            if counted is None:
                continue
            size = reader.last_size
            if reader.is_open:
                with contextlib.suppress(OSError):
                    size = reader.size()
            counted.files += 1
            counted.lag_bytes += max(0, size - committed(reader.file_id))
        return usage

    def close_all(self) -> None:
        for reader in [*self.readers.values(), *self.retired]:
            reader.close()
        for opened in self._open.values():
            opened.clear()
        self.readers.clear()
