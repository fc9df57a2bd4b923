"""Files -> pieces: find files, resume each from its checkpoint, read, encode, enqueue.

The tailer is the only writer of tickets: it issues them in file order as it enqueues pieces,
which is what lets the ack tracker turn out-of-order deliveries into in-order checkpoints.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

import structlog

from agent.batch.encode import Encoded, Encoder
from agent.batch.queue import ByteQueue
from agent.config import SourceConfig
from agent.ops.snapshot import SourceSnapshot
from agent.records import FileId, Origin, Piece
from agent.state.acks import AckTracker
from agent.state.checkpoint import FileCheckpoint
from agent.state.deadletter import DeadLetters
from agent.tail.discover import discover, is_recursive, watch_root
from agent.tail.fingerprint import Fingerprint, fingerprint, starts_with
from agent.tail.reader import Block, LongLine, Reader, Truncated

log = structlog.get_logger("agent.tailer")

CHUNKS_PER_TURN = 8  # per file per pass: one busy file must not starve the others
ROTATE_WAIT_SECS = 5.0  # a file gone from its globs is still read this long: late writers
DORMANT_KEEP_SECS = 7 * 86400  # how long to remember a file that went away


@dataclass(slots=True)
class TailStats:
    events: int = 0
    bytes_read: int = 0
    rejected: int = 0
    blank_lines: int = 0
    truncations: int = 0
    by_source: dict[str, int] = field(default_factory=dict)  # events per source
    lines_by_source: dict[str, int] = field(default_factory=dict)  # events, rejects, blanks
    bytes_by_source: dict[str, int] = field(default_factory=dict)


class Tailer:
    def __init__(
        self,
        sources: list[SourceConfig],
        saved: Iterable[FileCheckpoint],
        *,
        acks: AckTracker,
        queue: ByteQueue[Piece],
        dead_letters: DeadLetters,
        max_event_bytes: int,
        piece_bytes: int,
    ) -> None:
        self._sources = sources
        self._acks = acks
        self._queue = queue
        self._dead_letters = dead_letters
        self._max_event_bytes = max_event_bytes
        self._piece_bytes = piece_bytes
        self._encoders = {s.name: self._encoder(s) for s in sources}
        self._readers: dict[tuple[int, int], Reader] = {}
        self._dormant: list[FileCheckpoint] = list(saved)
        self._next_id = 0
        self._first_scan = True
        self.stats = TailStats()

    @property
    def readers(self) -> list[Reader]:
        return list(self._readers.values())

    def watch_roots(self) -> tuple[frozenset[str], bool]:
        patterns = [p for s in self._sources for p in s.include]
        return frozenset(watch_root(p) for p in patterns), any(is_recursive(p) for p in patterns)

    async def run(self, stop: asyncio.Event, wake: asyncio.Event, *, once: bool) -> None:
        """Scan and read until `stop`; with `once`, until a pass finds nothing new."""
        interval = min(s.scan_interval for s in self._sources)
        while not stop.is_set():
            wake.clear()
            self.scan()
            progressed = await self.read_all(stop)
            if once and not progressed:
                return
            if progressed:
                continue
            try:
                async with asyncio.timeout(interval):
                    await wake.wait()  # set by the watcher, and by whoever sets `stop`
            except TimeoutError:
                pass

    def scan(self) -> None:
        """Open files that appeared; let go of files that are gone and finished."""
        seen: set[tuple[int, int]] = set()
        for source in self._sources:
            for path in discover(source):
                key = self._track(source, path)
                if key is not None:
                    seen.add(key)
        self._first_scan = False
        for key, reader in list(self._readers.items()):
            if key not in seen:
                self._maybe_release(key, reader)

    async def read_all(self, stop: asyncio.Event) -> bool:
        """One pass over every open file; True when anything was read."""
        progressed = False
        for reader in list(self._readers.values()):
            for _ in range(CHUNKS_PER_TURN):
                if stop.is_set():
                    return progressed
                try:
                    item = reader.read()
                except Truncated:
                    self._restart(reader)
                    continue
                except OSError as exc:
                    log.warning("read_failed", path=reader.path, error=str(exc))
                    break
                if item is None:
                    break
                progressed = True
                if isinstance(item, LongLine):
                    self._long_line(reader, item)
                else:
                    await self._ship(reader, item)
        return progressed

    def checkpoints(self) -> list[FileCheckpoint]:
        now = time.time()
        records = [self._record(r, now) for r in self._readers.values()]
        self._dormant = [d for d in self._dormant if now - d.seen_at < DORMANT_KEEP_SECS]
        return records + self._dormant

    def _record(self, reader: Reader, now: float) -> FileCheckpoint:
        return FileCheckpoint(
            fingerprint=reader.fingerprint.digest,
            fingerprint_len=reader.fingerprint.length,
            offset=self._acks.committed(reader.file_id),
            path=reader.path,
            dev=reader.dev,
            ino=reader.ino,
            seen_at=now,
        )

    def close(self) -> None:
        for reader in self._readers.values():
            reader.close()
        self._readers.clear()

    def source_snapshots(self) -> tuple[SourceSnapshot, ...]:
        """Per configured source: what was read, what is open, how far behind it is."""
        rows = {s.name: [0, 0, 0, 0, 0] for s in self._sources}  # lines bytes lag open files
        for reader in self._readers.values():
            row = rows.get(reader.source)
            if row is None:
                continue
            try:
                size = reader.size()
            except OSError:
                size = reader.offset
            row[2] += max(size - self._acks.committed(reader.file_id), 0)
            row[3] += 1
            row[4] += 1
        return tuple(
            SourceSnapshot(
                name=name,
                lines_read=self.stats.lines_by_source.get(name, 0),
                bytes_read=self.stats.bytes_by_source.get(name, 0),
                checkpoint_lag_bytes=row[2],
                open_files=row[3],
                files=row[4],
            )
            for name, row in rows.items()
        )

    def reconfigure(self, sources: list[SourceConfig]) -> None:
        """Apply a reloaded config: new sources are scanned from the next pass; a removed
        source's files are no longer found, so they are finished and released as rotated
        files are (their checkpoints are kept); a changed source encodes new reads anew."""
        for source in sources:
            self._encoders[source.name] = self._encoder(source)
        self._sources = sources

    def _encoder(self, source: SourceConfig) -> Encoder:
        return Encoder(source, max_event_bytes=self._max_event_bytes, piece_bytes=self._piece_bytes)

    # -- opening and resuming -------------------------------------------------------------

    def _track(self, source: SourceConfig, path: str) -> tuple[int, int] | None:
        try:
            stat = os.stat(path)
        except OSError:
            return None
        key = (stat.st_dev, stat.st_ino)
        known = self._readers.get(key)
        if known is not None:
            known.path = path
            known.missing_since = None
            return key
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            log.warning("open_failed", path=path, error=str(exc))
            return None
        stat = os.fstat(fd)  # the file actually opened, whatever happened to the path since
        key = (stat.st_dev, stat.st_ino)
        if key in self._readers:
            os.close(fd)
            return key
        fp = fingerprint(fd, stat.st_size)
        offset, how = self._resume_offset(source, fd, stat, fp)
        file_id = self._new_id()
        self._acks.track(file_id, offset)
        max_line = self._encoders[source.name].max_line_bytes
        reader = Reader(file_id, source.name, path, fd, offset, fp, max_line_bytes=max_line)
        self._readers[key] = reader
        log.info("file_opened", path=path, source=source.name, offset=offset, start=how)
        return key

    def _resume_offset(
        self, source: SourceConfig, fd: int, stat: os.stat_result, fp: Fingerprint
    ) -> tuple[int, str]:
        saved = self._claim(fd, stat)
        if saved is not None:
            if saved.offset > stat.st_size:
                return 0, "truncated_while_stopped"
            return saved.offset, "checkpoint"
        if self._first_scan and source.start_at == "end":
            return _last_line_end(fd, stat.st_size), "end"
        return 0, "beginning"

    def _claim(self, fd: int, stat: os.stat_result) -> FileCheckpoint | None:
        """The saved checkpoint of this file's content, if any; removed from the dormant list.

        Content decides; dev/inode only breaks ties between files that begin alike.
        """
        candidates = [
            d
            for d in self._dormant
            if d.fingerprint_len <= stat.st_size
            and starts_with(fd, Fingerprint(d.fingerprint, d.fingerprint_len))
        ]
        if not candidates:
            return None
        same_inode = [c for c in candidates if (c.dev, c.ino) == (stat.st_dev, stat.st_ino)]
        best = max(same_inode or candidates, key=lambda c: c.fingerprint_len)
        self._dormant.remove(best)
        return best

    def _new_id(self) -> FileId:
        self._next_id += 1
        return FileId(self._next_id)

    # -- reading --------------------------------------------------------------------------

    async def _ship(self, reader: Reader, block: Block) -> None:
        encoded = self._encoders[reader.source].encode(block.data, block.start)
        self._count(reader, block, encoded)
        for rejected in encoded.rejected:
            self._dead_letters.write(
                rejected.reason, reader.path, rejected.offset, rejected.data, rejected.detail
            )
        for piece in encoded.pieces:
            ticket = self._acks.issue(reader.file_id, piece.end_offset)
            if piece.events == 0:
                self._acks.complete(ticket)  # nothing to send: safe as soon as earlier ones are
                continue
            origin = Origin(reader.path, piece.offsets)
            await self._queue.put(Piece(piece.data, piece.events, ticket, origin), len(piece.data))

    def _count(self, reader: Reader, block: Block, encoded: Encoded) -> None:
        events = sum(p.events for p in encoded.pieces)
        stats = self.stats
        stats.events += events
        stats.bytes_read += len(block.data)
        stats.rejected += len(encoded.rejected)
        stats.blank_lines += encoded.blank
        stats.by_source[reader.source] = stats.by_source.get(reader.source, 0) + events
        lines = events + len(encoded.rejected) + encoded.blank
        stats.lines_by_source[reader.source] = stats.lines_by_source.get(reader.source, 0) + lines
        stats.bytes_by_source[reader.source] = stats.bytes_by_source.get(reader.source, 0) + len(
            block.data
        )

    def _long_line(self, reader: Reader, line: LongLine) -> None:
        if line.head:
            self.stats.rejected += 1
            self._dead_letters.write(
                "line_too_long",
                reader.path,
                line.start,
                line.head,
                f"longer than max_line_bytes={reader.max_line_bytes}; head kept",
            )
        if line.resume_at is not None:
            self._acks.complete(self._acks.issue(reader.file_id, line.resume_at))

    def _restart(self, reader: Reader) -> None:
        """The file was truncated in place: forget what was read, start again at 0."""
        log.warning("file_truncated", path=reader.path, offset=reader.offset)
        self.stats.truncations += 1
        self._acks.forget(reader.file_id)
        reader.rewind(self._new_id())
        self._acks.track(reader.file_id, 0)

    def _maybe_release(self, key: tuple[int, int], reader: Reader) -> None:
        """A file no longer found under its globs: close it once read to its end and safe."""
        now = time.monotonic()
        if reader.missing_since is None:
            reader.missing_since = now
        if now - reader.missing_since < ROTATE_WAIT_SECS:
            return
        try:
            finished = reader.size() <= reader.offset + reader.held
            deleted = reader.deleted()
        except OSError:
            finished, deleted = True, True
        if not finished or self._acks.pending_bytes(reader.file_id):
            return
        if not deleted:
            self._dormant.append(self._record(reader, time.time()))
        self._acks.forget(reader.file_id)
        reader.close()
        del self._readers[key]
        log.info("file_released", path=reader.path, deleted=deleted)


def _last_line_end(fd: int, size: int) -> int:
    """Where the last complete line ends: `start_at = "end"` must not begin mid-line."""
    tail = os.pread(fd, min(size, 65536), max(0, size - 65536))
    newline = tail.rfind(b"\n")
    return size if newline == -1 else size - len(tail) + newline + 1
