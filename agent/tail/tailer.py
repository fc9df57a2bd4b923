"""Files -> pieces: find files, resume each from its checkpoint, read, encode, enqueue.

The tailer is the only writer of tickets: it issues them in file order as it enqueues pieces,
which is what lets the ack tracker turn out-of-order deliveries into in-order checkpoints.

A file is tracked from the moment its globs find it until it is gone and safe. Tracking is
not holding a descriptor: a file idle for `close_inactive`, or the least recently active one
when a source reaches `max_open_files`, is closed and reopened by path when it changes, after
checking that the path still leads to the same inode and the same first bytes.

copytruncate makes a copy of a tracked file and truncates the original. A new file that
begins like a tracked one is held back for a moment: when the original turns out truncated
the copy continues the original's identity (its tickets, its read offset), so it is neither
re-sent nor left unfinished; when the original is not truncated soon, the new file is a file
of its own that merely begins alike (a shared banner, a CSV header) and is read from 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import time
from collections import OrderedDict
from collections.abc import Iterable
from typing import TYPE_CHECKING

import structlog

from agent.batch.queue import ByteQueue
from agent.config import SourceConfig
from agent.encode import Encoded, Encoder
from agent.ops.snapshot import SourceSnapshot
from agent.parse.charset import BOM
from agent.parse.settings import needs_parsing
from agent.records import FileId, Origin, Piece, Ticket
from agent.state.acks import AckTracker
from agent.state.checkpoint import FileCheckpoint
from agent.state.deadletter import DeadLetters
from agent.tail.discover import covers, discover, is_recursive, watch_root
from agent.tail.fingerprint import (
    Fingerprint,
    FingerprintIndex,
    head,
    of_head,
    starts_with,
)
from agent.tail.handoff import Link
from agent.tail.identity import (
    Copy,
    Key,
    Orphan,
    by_inode,
    diverges,
    identity_of,
    is_moved,
    last_line_end,
    line_start,
    same_file,
    still_in_place,
)
from agent.tail.reader import Block, LongLine, Reader, Truncated
from agent.tail.stats import SourceStats, TailStats

if TYPE_CHECKING:
    from agent.encode.parsed import ParsedEncoder

log = structlog.get_logger("agent.tailer")

CHUNKS_PER_TURN = 8  # per file per pass: one busy file must not starve the others
DRAIN_CHUNKS = 64  # a rotated file read to its end before its held lines move to the new one
UTF8_BOM = BOM.encode()
ROTATE_WAIT_SECS = 5.0  # a file gone from its globs is still read this long: late writers
DORMANT_KEEP_SECS = 7 * 86400  # how long to remember a file that went away
COPY_WAIT_SECS = 5.0  # how long a file beginning like a tracked one waits for a truncation


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
        self._acks = acks
        self._queue = queue
        self._dead_letters = dead_letters
        self._max_event_bytes = max_event_bytes
        self._piece_bytes = piece_bytes
        self._sources: dict[str, SourceConfig] = {}
        self._encoders: dict[str, Encoder] = {}  # per source: the fast path, and line limits
        self._parsed: dict[FileId, ParsedEncoder] = {}  # per file content, of parsed sources
        self._heirs: dict[FileId, Key] = {}  # a new file -> its container's previous file
        self._links: list[Link] = []  # rotated files' last stretches, waiting for their heirs
        self._readers: dict[Key, Reader] = {}  # every tracked file, open or closed
        self._open: dict[str, OrderedDict[Key, None]] = {}  # per source, least recent first
        self._retired: list[Reader] = []  # of removed sources, until their tickets are done
        self._copies: dict[Key, Copy] = {}
        self._orphans: list[Orphan] = []
        self._dormant: dict[int, FileCheckpoint] = {}  # files gone or not found yet
        self._next_dormant = 0
        self._dormant_index: FingerprintIndex[int] | None = None
        self._reader_index: FingerprintIndex[Key] | None = None
        self._dangling: set[str] = set()
        self._unopenable: set[str] = set()
        self._next_id = 0
        self._first_scan = True
        self.stats = TailStats()
        for record in saved:
            self._remember(record)
        self._apply(sources)

    def __repr__(self) -> str:
        opened = sum(len(o) for o in self._open.values())
        return (
            f"<Tailer sources={len(self._sources)} files={len(self._readers)} open={opened}"
            f" held_copies={len(self._copies)} dormant={len(self._dormant)}>"
        )

    @property
    def readers(self) -> list[Reader]:
        return list(self._readers.values())

    def watch_roots(self) -> tuple[frozenset[str], bool]:
        patterns = [p for s in self._sources.values() for p in s.include]
        return frozenset(watch_root(p) for p in patterns), any(is_recursive(p) for p in patterns)

    async def run(self, stop: asyncio.Event, wake: asyncio.Event, *, once: bool) -> None:
        """Scan and read until `stop`; with `once`, until a pass finds nothing new."""
        while not stop.is_set():
            wake.clear()
            self.scan()
            progressed = await self.read_all(stop)
            await self.flush_held(stop)
            self._settle_links()
            if once and not progressed and not self._copies:
                await self.flush_held(stop, force=True)  # a backfill's end: nothing follows
                return
            if progressed:
                continue
            try:
                async with asyncio.timeout(self._interval()):
                    await wake.wait()  # set by the watcher, and by whoever sets `stop`
            except TimeoutError:
                pass

    def _interval(self) -> float:
        """Until the next scan, or sooner when a held record's flush timeout is up first."""
        interval = min((s.scan_interval for s in self._sources.values()), default=1.0)
        due = [d for e in self._parsed.values() if (d := e.next_flush()) is not None]
        if due:
            interval = min(interval, max(0.0, min(due) - time.monotonic()) + 0.001)
        return interval

    # -- configuration --------------------------------------------------------------------

    def reconfigure(self, sources: list[SourceConfig]) -> None:
        """Apply a reloaded source list (SIGHUP) between two passes.

        New sources are scanned from the next pass. A removed source's files are closed and
        no longer read; tickets already issued still complete, and its checkpoints are kept
        (a re-added source resumes where it was). A changed source gets a new encoder: lines
        read from now on follow its new options.
        """
        added, removed, changed = self._apply(sources)
        log.info("sources_reconfigured", added=added, removed=removed, changed=changed)

    def _apply(self, sources: list[SourceConfig]) -> tuple[list[str], list[str], list[str]]:
        wanted = {s.name: s for s in sources}
        removed = [name for name in self._sources if name not in wanted]
        changed = [n for n, s in wanted.items() if n in self._sources and self._sources[n] != s]
        added = [name for name in wanted if name not in self._sources]
        for name in removed:
            self._retire(name)
        for name in added + changed:
            self._encoders[name] = Encoder(
                wanted[name], max_event_bytes=self._max_event_bytes, piece_bytes=self._piece_bytes
            )
        for name in added:
            self._open.setdefault(name, OrderedDict())
            self.stats.sources.setdefault(name, SourceStats())
        self._sources = wanted
        for name in added:
            self._reinstate(name)
        for reader in self._readers.values():
            if reader.source in changed:
                reader.set_max_line_bytes(self._encoders[reader.source].max_line_bytes)
        # A changed source's parsed encoders are replaced at their file's next read, after
        # shipping what they hold (`_parsed_encoder`): dropping it here would lose those lines.
        return added, removed, changed

    def _retire(self, name: str) -> None:
        for key, reader in list(self._readers.items()):
            if reader.source == name:
                self._close(key)
                del self._readers[key]
                self._retired.append(reader)
        for key in [k for k, c in self._copies.items() if c.source == name]:
            del self._copies[key]
        self._open.pop(name, None)
        self._encoders.pop(name, None)
        self._reader_index = None

    def _reinstate(self, name: str) -> None:
        """A source re-added before its old files settled takes them back where they were."""
        for reader in [r for r in self._retired if r.source == name]:
            key = (reader.dev, reader.ino)
            if key in self._readers:
                continue  # another source took the file meanwhile; this record settles
            self._retired.remove(reader)
            reader.unread = True  # reopened by path and checked before any read
            self._readers[key] = reader

    # -- scanning -------------------------------------------------------------------------

    def scan(self) -> None:
        """Open files that appeared; close idle ones; let go of files gone and finished."""
        now = time.monotonic()
        self._reader_index = None  # young files' fingerprints grew since the last scan
        seen: set[Key] = set()
        dangling: set[str] = set()
        for source in list(self._sources.values()):
            found = discover(source)
            dangling.update(found.dangling)
            for path in found.files:
                key = self._track(source, path)
                if key is not None:
                    seen.add(key)
        if self._first_scan:
            self._finish_moved()
        self._first_scan = False
        self._warn_dangling(dangling)
        for key, reader in list(self._readers.items()):
            if key not in seen:
                self._maybe_release(key, reader)
            else:
                self._maybe_close_inactive(key, reader, now)
        for key in [k for k in self._copies if k not in seen]:
            del self._copies[key]
        self._settle(now)
        self._forget_encoders()

    def _finish_moved(self) -> None:
        """At start: files rotated while the agent was stopped to a name the globs no longer
        find (`app.log` -> `app.log.1` with include `app.log`) still hold lines past their
        checkpoint. Each is looked for by identity next to its old path, read to its end
        from the checkpoint, and released like any file gone from its globs (`_maybe_release`:
        it is not among what the scans find).
        """
        wanted: dict[str, list[tuple[int, SourceConfig]]] = {}  # directory -> records
        for number, record in self._dormant.items():
            source = next((s for s in self._sources.values() if covers(s, record.path)), None)
            key = (record.dev, record.ino)
            if source is not None and key not in self._readers and key not in self._copies:
                wanted.setdefault(os.path.dirname(record.path), []).append((number, source))
        for directory, records in wanted.items():
            paths = by_inode(directory, {self._dormant[n].ino for n, _ in records})
            for number, source in records:
                record = self._dormant[number]
                for path in paths.get(record.ino, []):
                    if path != record.path and self._resume_moved(number, source, path):
                        break

    def _resume_moved(self, number: int, source: SourceConfig, path: str) -> bool:
        """Track the file at `path` from dormant record `number`, if it is its content."""
        record = self._dormant[number]
        key = (record.dev, record.ino)
        if key in self._readers:
            return False  # two records of one inode: the first that fits took it
        try:
            if os.stat(path).st_size <= record.offset:
                return False  # finished before: no descriptor for it (the cap is shared)
        except OSError:
            return False
        fd = self._open_path(source.name, path)
        if fd is None:
            return False
        if not is_moved(record, fd, os.fstat(fd)):
            os.close(fd)
            return False
        del self._dormant[number]
        self._dormant_index = None
        file_id = self._new_id()
        self._acks.track(file_id, record.offset)
        fp = Fingerprint(record.fingerprint, record.fingerprint_len)
        max_line = self._encoders[source.name].max_line_bytes
        reader = Reader(file_id, source.name, path, fd, record.offset, fp, max_line_bytes=max_line)
        self._register(source.name, reader)
        log.info(
            "file_opened",
            path=path,
            source=source.name,
            offset=record.offset,
            start="checkpoint",
            moved_from=record.path,
        )
        return True

    def _forget_encoders(self) -> None:
        """Drop the parsed encoders of contents no longer tracked (released, truncated)."""
        alive = {r.file_id for r in [*self._readers.values(), *self._retired]}
        alive.update(o.file_id for o in self._orphans)
        for file_id in [f for f in self._parsed if f not in alive]:
            del self._parsed[file_id]
        for file_id in [f for f in self._heirs if f not in alive]:
            del self._heirs[file_id]

    def _warn_dangling(self, dangling: set[str]) -> None:
        """Once per link while it leads nowhere: a link kubelet left behind is not news twice."""
        for path in sorted(dangling - self._dangling):
            try:
                target = os.readlink(path)
            except OSError:
                target = "?"
            log.warning("symlink_dangling", path=path, target=target)
        self._dangling = dangling

    def _settle(self, now: float) -> None:
        """Forget truncated contents and removed sources' files once nothing waits on them."""
        for orphan in list(self._orphans):
            if now >= orphan.until and not self._acks.pending_bytes(orphan.file_id):
                self._acks.forget(orphan.file_id)
                self._orphans.remove(orphan)
        for reader in list(self._retired):
            if not self._acks.pending_bytes(reader.file_id):
                self._remember(self._record(reader, time.time()))
                self._acks.forget(reader.file_id)
                self._retired.remove(reader)

    def _track(self, source: SourceConfig, path: str) -> Key | None:
        try:
            stat = os.stat(path)
        except OSError:
            return None
        key = (stat.st_dev, stat.st_ino)
        known = self._readers.get(key)
        if known is not None:
            known.path = path
            known.missing_since = None
            known.last_size = stat.st_size
            if not known.is_open and known.changed_since_close(stat):
                known.unread = True
            return key
        copy = self._copies.get(key)
        if copy is not None and time.monotonic() < copy.until and copy.of in self._readers:
            copy.path = path
            return key
        self._copies.pop(key, None)
        return self._open_new(source, path, could_be_copy=copy is None)

    def _open_new(self, source: SourceConfig, path: str, *, could_be_copy: bool) -> Key | None:
        fd = self._open_path(source.name, path)
        if fd is None:
            return None
        stat = os.fstat(fd)  # the file actually opened, whatever happened to the path since
        key = (stat.st_dev, stat.st_ino)
        if key in self._readers or key in self._copies:
            os.close(fd)
            return key
        data = head(fd)
        orphan = self._orphan_of(data)
        if orphan is not None and line_start(fd, orphan.offset, stat.st_size):
            self._adopt(source, path, fd, orphan.file_id, orphan.fingerprint, orphan.offset)
            self._orphans.remove(orphan)
            return key
        saved = self._claim(fd, stat, data)
        twin = None if saved is not None or not could_be_copy else self._twin_of(fd, stat, data)
        if twin is not None:
            os.close(fd)
            self._copies[key] = Copy(source.name, path, twin, time.monotonic() + COPY_WAIT_SECS)
            log.info("file_held_as_copy", path=path, of=self._readers[twin].path)
            return key
        offset, how = self._resume_offset(source, fd, stat, saved)
        file_id = self._new_id()
        self._acks.track(file_id, offset)
        self._register(
            source.name,
            Reader(
                file_id,
                source.name,
                path,
                fd,
                offset,
                of_head(data),
                max_line_bytes=self._encoders[source.name].max_line_bytes,
            ),
        )
        log.info("file_opened", path=path, source=source.name, offset=offset, start=how)
        self._find_predecessor(source, key, path, file_id)
        return key

    def _find_predecessor(self, source: SourceConfig, key: Key, path: str, file_id: FileId) -> None:
        """A new file of a container whose previous file is tracked: a rotation. Its held
        lines move over before the new file is first read (`_inherit`).

        Not at the first scan: then old and new files are found together and which came
        first is unknown; each is read on its own (nothing is lost, a fragment split by the
        rotation arrives as two events).
        """
        if self._first_scan or not needs_parsing(source):
            return
        from agent.parse.kubernetes import container_key  # the parsing library, when used

        wanted = container_key(path)
        for other_key, other in self._readers.items():
            same = other.source == source.name and container_key(other.path) == wanted
            if same and other_key != key:
                self._heirs[file_id] = other_key
                return

    def _open_path(self, source: str, path: str, keep: Key | None = None) -> int | None:
        """A descriptor for `path` within the source's cap, closing the least active first."""
        self._make_room(source, keep)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            if exc.errno in (errno.EMFILE, errno.ENFILE):
                self._make_room(source, keep, spare=len(self._open.get(source, ())) // 2)
            if path not in self._unopenable:
                self._unopenable.add(path)
                log.warning("open_failed", path=path, error=str(exc))
            return None
        self._unopenable.discard(path)
        return fd

    def _make_room(self, source: str, keep: Key | None, spare: int = 0) -> None:
        opened = self._open.get(source)
        if opened is None:
            return
        limit = max(1, self._sources[source].max_open_files - spare)
        while len(opened) >= limit:
            victim = next(
                (k for k in opened if k != keep and self._readers[k].missing_since is None), None
            )
            if victim is None:
                return  # only rotated-away files are open: they cannot be reopened by path
            self._close(victim)

    def _register(self, source: str, reader: Reader) -> None:
        key = (reader.dev, reader.ino)
        self._readers[key] = reader
        self._open[source][key] = None
        if self._reader_index is not None:
            self._reader_index.add(reader.fingerprint, key)

    def _close(self, key: Key) -> None:
        reader = self._readers[key]
        reader.close()
        opened = self._open.get(reader.source)
        if opened is not None:
            opened.pop(key, None)

    def _resume_offset(
        self, source: SourceConfig, fd: int, stat: os.stat_result, saved: FileCheckpoint | None
    ) -> tuple[int, str]:
        if saved is not None:
            if saved.offset > stat.st_size:
                return 0, "truncated_while_stopped"
            return saved.offset, "checkpoint"
        if self._first_scan and source.start_at == "end":
            return last_line_end(fd, stat.st_size), "end"
        return 0, "beginning"

    # -- identity: checkpoints, copies, truncated contents --------------------------------

    def _remember(self, record: FileCheckpoint) -> None:
        self._next_dormant += 1
        self._dormant[self._next_dormant] = record
        self._dormant_index = None

    def _claim(self, fd: int, stat: os.stat_result, data: bytes) -> FileCheckpoint | None:
        """The saved checkpoint of this file's content, if any; taken off the dormant list.

        Content decides, the inode breaks ties. A record of another inode is only taken when
        its own file is still where it was (so this one is its copy, e.g. copytruncate while
        stopped): a deleted file's record must not make a newcomer that begins alike skip.
        """
        if self._dormant_index is None:
            self._dormant_index = FingerprintIndex()
            for number, record in self._dormant.items():
                self._dormant_index.add(
                    Fingerprint(record.fingerprint, record.fingerprint_len), number
                )
        found = [n for n in self._dormant_index.matching(data) if n in self._dormant]
        same = [n for n in found if same_file(self._dormant[n], stat)]
        pool = same or [n for n in found if still_in_place(self._dormant[n])]
        pool = [n for n in pool if line_start(fd, self._dormant[n].offset, stat.st_size)]
        if not pool:
            return None
        return self._dormant.pop(pool[0])  # longest fingerprint first

    def _twin_of(self, fd: int, stat: os.stat_result, data: bytes) -> Key | None:
        """A tracked file this new one may be a copy of: same first bytes, same tail."""
        if self._reader_index is None:
            self._reader_index = FingerprintIndex()
            for key, reader in self._readers.items():
                self._reader_index.add(reader.fingerprint, key)
        for other in self._reader_index.matching(data):
            original = self._readers.get(other)
            if original is not None and not diverges(fd, stat.st_size, original):
                return other
        return None

    def _orphan_of(self, data: bytes) -> Orphan | None:
        for orphan in self._orphans:
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
        size = os.fstat(fd).st_size
        reader = Reader(
            file_id,
            source.name,
            path,
            fd,
            min(offset, size),
            fp,
            max_line_bytes=self._encoders[source.name].max_line_bytes,
        )
        self._register(source.name, reader)
        log.info("file_opened", path=path, source=source.name, offset=reader.offset, start="copy")

    def _new_id(self) -> FileId:
        self._next_id += 1
        return FileId(self._next_id)

    # -- reading --------------------------------------------------------------------------

    async def read_all(self, stop: asyncio.Event) -> bool:
        """One pass over every file with something to read; True when anything was read."""
        progressed = False
        for key, reader in list(self._readers.items()):
            if not reader.is_open and not (reader.unread and self._reopen(key, reader)):
                continue
            if reader.file_id in self._heirs:
                await self._inherit(reader, self._heirs.pop(reader.file_id), stop)
            progressed |= await self._read_file(key, reader, stop, CHUNKS_PER_TURN)
            if stop.is_set():
                break
        return progressed

    async def _read_file(self, key: Key, reader: Reader, stop: asyncio.Event, turns: int) -> bool:
        """Up to `turns` chunks of one file; True when anything was read."""
        progressed = False
        for _ in range(turns):
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
            self._open[reader.source].move_to_end(key)
            if isinstance(item, LongLine):
                self._long_line(reader, item)
                await asyncio.sleep(0)  # up to SKIP_BYTES_PER_CALL read: let the others run
            else:
                await self._ship(reader, item)
        return progressed

    # -- parsed sources: per-file encoders, held lines, rotations --------------------------

    async def _parsed_encoder(self, reader: Reader) -> ParsedEncoder:
        """The file's encoder; a reloaded source's old one first ships everything it holds
        (its lines are behind the read offset: dropping them would lose them)."""
        source = self._sources[reader.source]
        encoder = self._parsed.get(reader.file_id)
        if encoder is not None and encoder.source != source:
            await self._ship_encoded(reader, encoder.flush(force=True), encoder)
            encoder = None
        if encoder is None:
            from agent.encode.parsed import ParsedEncoder  # the parsing library, when used

            encoder = ParsedEncoder(
                source,
                path=reader.path,
                identity=lambda: identity_of(reader),
                max_event_bytes=self._max_event_bytes,
                piece_bytes=self._piece_bytes,
                start_offset=reader.offset,
            )
            self._parsed[reader.file_id] = encoder
        return encoder

    async def _inherit(self, heir: Reader, old_key: Key, stop: asyncio.Event) -> None:
        """Rotation: read the container's previous file to its end, then move what its
        encoder still holds (a ``P`` fragment, a stack trace) to the new file's encoder.

        The old file gets a `Link` ticket over the moved lines, done only once the heir's
        record carrying them is safe: until then the old file's checkpoint stays before them.
        """
        old = self._readers.get(old_key)
        if old is None or old.source != heir.source or not old.is_open:
            return
        await self._read_file(old_key, old, stop, DRAIN_CHUNKS)  # bounded: a busy late writer
        previous = self._parsed.get(old.file_id)
        if previous is None or previous.pending_offset is None or stop.is_set():
            return
        encoder = await self._parsed_encoder(heir)
        encoder.restore(previous.hand_over())
        link = Link(self._acks.issue(old.file_id, old.offset), heir.file_id, heir.offset)
        self._links.append(link)
        log.info("held_lines_handed_over", path=old.path, to=heir.path, offset=old.offset)

    def _settle_links(self) -> None:
        """Complete the old files' last tickets whose heirs' records are safe."""
        for link in list(self._links):
            heir_gone = not any(r.file_id == link.heir for r in self._readers.values())
            if link.safe or (heir_gone and all(t.done for t in link.waits_for)):
                self._acks.complete(link.ticket)
                self._links.remove(link)

    async def flush_held(self, stop: asyncio.Event, *, force: bool = False) -> None:
        """Ship the records parsed encoders release by timeout (all of them with `force`)."""
        now = time.monotonic()
        for reader in list(self._readers.values()):
            encoder = self._parsed.get(reader.file_id)
            if encoder is None or stop.is_set():
                continue
            due = encoder.next_flush()
            if force or (due is not None and due <= now):
                await self._ship_encoded(reader, encoder.flush(now, force=force), encoder)

    def _held(self, reader: Reader) -> bool:
        encoder = self._parsed.get(reader.file_id)
        return encoder is not None and encoder.pending_offset is not None

    def _reopen(self, key: Key, reader: Reader) -> bool:
        """Reopen a closed file by path, if the path still leads to it; False otherwise."""
        fd = self._open_path(reader.source, reader.path, keep=key)
        if fd is None:
            reader.unread = False  # the scan will see whether it is gone or comes back
            return False
        stat = os.fstat(fd)
        if (stat.st_dev, stat.st_ino) != key:
            os.close(fd)
            reader.unread = False
            return False
        same_content = reader.fingerprint.length == 0 or starts_with(fd, reader.fingerprint)
        reader.reopen(fd)
        self._open[reader.source][key] = None
        if not same_content:  # rewritten in place, or a new file on the reused inode
            self._restart(reader)
        return True

    def _maybe_close_inactive(self, key: Key, reader: Reader, now: float) -> None:
        """Give back the descriptor of a file read to its end and idle for close_inactive."""
        limit = self._sources[reader.source].close_inactive
        if not reader.is_open or now - reader.last_active < limit:
            return
        try:
            finished = reader.size() <= reader.offset + reader.held
        except OSError:
            finished = False
        if finished:
            self._close(key)
            log.info("file_closed_inactive", path=reader.path, offset=reader.offset)

    def checkpoints(self) -> list[FileCheckpoint]:
        self._settle_links()  # e.g. at the end of a backfill, after the tailer stopped
        now = time.time()
        records = [self._record(r, now) for r in [*self._readers.values(), *self._retired]]
        records += [self._record(o, now) for o in self._orphans]
        stale = [n for n, d in self._dormant.items() if now - d.seen_at >= DORMANT_KEEP_SECS]
        for number in stale:
            del self._dormant[number]
        return records + list(self._dormant.values())

    def _record(self, reader: Reader | Orphan, now: float) -> FileCheckpoint:
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

    def source_snapshots(self) -> tuple[SourceSnapshot, ...]:
        """Per configured source: counters, and how far its files are ahead of the checkpoint.

        Cheap enough for every /metrics scrape: one fstat per open file, none for a closed
        one (the size the last scan saw is used).
        """
        lag = dict.fromkeys(self._sources, 0)
        files = dict.fromkeys(self._sources, 0)
        for reader in self._readers.values():
            if reader.source not in lag:
                continue
            size = reader.last_size
            if reader.is_open:
                with contextlib.suppress(OSError):
                    size = reader.size()
            lag[reader.source] += max(0, size - self._acks.committed(reader.file_id))
            files[reader.source] += 1
        return tuple(
            SourceSnapshot(
                name=name,
                lines_read=self.stats.sources[name].lines,
                bytes_read=self.stats.sources[name].bytes_read,
                checkpoint_lag_bytes=lag[name],
                open_files=len(self._open[name]),
                files=files[name],
                parsing=dict(self.stats.sources[name].parsing),
            )
            for name in self._sources
        )

    def close(self) -> None:
        for reader in [*self._readers.values(), *self._retired]:
            reader.close()
        for opened in self._open.values():
            opened.clear()
        self._readers.clear()

    async def _ship(self, reader: Reader, block: Block) -> None:
        per_source = self.stats.sources.setdefault(reader.source, SourceStats())
        per_source.bytes_read += len(block.data)
        self.stats.bytes_read += len(block.data)
        if needs_parsing(self._sources[reader.source]):
            encoder = await self._parsed_encoder(reader)
            per_source.lines += block.data.count(b"\n")
            await self._ship_encoded(reader, encoder.encode(block.data, block.start), encoder)
            return
        stale = self._parsed.pop(reader.file_id, None)
        if stale is not None:  # reloaded without parsing options: what it held goes first
            await self._ship_encoded(reader, stale.flush(force=True), stale)
        data, start = block.data, block.start
        if start == 0 and data.startswith(UTF8_BOM):  # Polaris rejects a BOM
            data, start = data[len(UTF8_BOM) :], len(UTF8_BOM)
        encoded = self._encoders[reader.source].encode(data, start)
        per_source.lines += encoded.blank + len(encoded.rejected)
        per_source.lines += sum(p.events for p in encoded.pieces)
        for name, moved in self._encoders[reader.source].take_counts().items():
            per_source.parsing[name] = per_source.parsing.get(name, 0) + moved  # time_unparsed
        await self._ship_encoded(reader, encoded)

    async def _ship_encoded(
        self, reader: Reader, encoded: Encoded, parsed: ParsedEncoder | None = None
    ) -> None:
        """Dead letters first (written before any ticket can make them safe), then a ticket
        per piece, in file order: what the ack tracker turns into checkpoints."""
        self._count(reader, encoded, parsed)
        for rejected in encoded.rejected:
            self._dead_letters.write(
                rejected.reason, reader.path, rejected.offset, rejected.data, rejected.detail
            )
        connection = self._sources[reader.source].connection or ""
        for piece in encoded.pieces:
            ticket = self._issue(reader.file_id, piece.end_offset)
            if piece.events == 0:
                self._acks.complete(ticket)  # nothing to send: safe as soon as earlier ones are
                continue
            origin = Origin(reader.path, piece.offsets)
            await self._queue.put(
                Piece(piece.data, piece.events, ticket, origin, connection), len(piece.data)
            )
        if parsed is not None:
            for link in self._links:
                if link.heir == reader.file_id:
                    link.released(parsed.pending_offset)

    def _issue(self, file_id: FileId, end_offset: int) -> Ticket:
        ticket = self._acks.issue(file_id, end_offset)
        for link in self._links:
            if link.heir == file_id:
                link.observe(ticket)
        return ticket

    def _count(self, reader: Reader, encoded: Encoded, parsed: ParsedEncoder | None) -> None:
        events = sum(p.events for p in encoded.pieces)
        stats = self.stats
        stats.events += events
        stats.rejected += len(encoded.rejected)
        stats.blank_lines += encoded.blank
        stats.by_source[reader.source] = stats.by_source.get(reader.source, 0) + events
        if parsed is not None:
            counters = stats.sources.setdefault(reader.source, SourceStats()).parsing
            for name, moved in parsed.take_counts().items():
                counters[name] = counters.get(name, 0) + moved

    def _long_line(self, reader: Reader, line: LongLine) -> None:
        """A line over the limit, read through without being held: once its newline is
        seen, dead-lettered with its head, length and offset, and the checkpoint may pass
        it. Until then (the file ends inside it) nothing moves: a restart skips it again."""
        if not line.complete:
            return
        assert line.resume_at is not None
        per_source = self.stats.sources.setdefault(reader.source, SourceStats())
        per_source.lines += 1
        per_source.bytes_read += line.resume_at - line.start
        self.stats.bytes_read += line.resume_at - line.start
        self.stats.rejected += 1
        self._dead_letters.write(
            "line_too_long",
            reader.path,
            line.start,
            line.head,
            f"{line.length} bytes, longer than max_line_bytes={reader.max_line_bytes};"
            f" first {len(line.head)} bytes kept",
        )
        if not self._held(reader):  # else the parsed encoder's next piece covers it
            self._acks.complete(self._issue(reader.file_id, line.resume_at))

    def _restart(self, reader: Reader) -> None:
        """The file was truncated in place: its old content lives on only in a copy, if any.

        A held copy continues the old content now; otherwise the old content waits a moment
        as an orphan for a copy to appear. The file itself starts again at 0 as new content.
        """
        log.warning("file_truncated", path=reader.path, offset=reader.offset)
        self.stats.truncations += 1
        key = (reader.dev, reader.ino)
        old_id, old_fp, old_offset = reader.file_id, reader.fingerprint, reader.line_offset
        copy_key = next((k for k, c in self._copies.items() if c.of == key), None)
        reader.rewind(self._new_id())
        self._acks.track(reader.file_id, 0)
        if copy_key is not None and self._take_copy(copy_key, old_id, old_fp, old_offset):
            return
        self._orphans.append(
            Orphan(
                old_id,
                old_fp,
                old_offset,
                reader.path,
                reader.dev,
                reader.ino,
                time.monotonic() + COPY_WAIT_SECS,
            )
        )

    def _take_copy(self, key: Key, file_id: FileId, fp: Fingerprint, offset: int) -> bool:
        copy = self._copies.pop(key)
        source = self._sources.get(copy.source)
        if source is None:
            return False
        fd = self._open_path(copy.source, copy.path)
        if fd is None:
            return False
        stat = os.fstat(fd)
        if (stat.st_dev, stat.st_ino) != key or not starts_with(fd, fp):
            os.close(fd)
            return False
        self._adopt(source, copy.path, fd, file_id, fp, offset)
        return True

    def _maybe_release(self, key: Key, reader: Reader) -> None:
        """A file no longer found under its globs: let go once read to its end and safe."""
        now = time.monotonic()
        if reader.missing_since is None:
            reader.missing_since = now
        if now - reader.missing_since < ROTATE_WAIT_SECS:
            return
        if self._acks.pending_bytes(reader.file_id) or self._held(reader):
            return  # held lines go out by their flush timeout first
        deleted = False  # a closed file cannot be asked; its record costs little
        if reader.is_open:
            try:
                finished = reader.size() <= reader.offset + reader.held
                deleted = reader.deleted()
            except OSError:
                finished, deleted = True, True
            if not finished:
                return
        if not deleted:
            self._remember(self._record(reader, time.time()))
        self._report_unterminated(reader, deleted)
        self._acks.forget(reader.file_id)
        self._close(key)
        del self._readers[key]
        log.info("file_released", path=reader.path, deleted=deleted)

    def _report_unterminated(self, reader: Reader, deleted: bool) -> None:
        """A file let go with a last line its writer never ended: it is not a line, so it is
        not shipped, but never silently: counted and logged once, with where it starts. (A
        kept record still points before it: should the file come back, it is read again.)"""
        left = reader.offset + reader.held - reader.line_offset
        if left <= 0:
            return
        self.stats.unterminated_lines += 1
        log.warning(
            "unterminated_line_released",
            path=reader.path,
            offset=reader.line_offset,
            bytes=left,
            deleted=deleted,
        )
