"""Files -> pieces: schedules scans and reads, and hands what it encodes to one callback.

    Registry (sources, tracked files, descriptors) ─ Identity (what each file is)
        │                                              │
    Tailer: scan → read each file a few chunks a turn → its encoder → Outlet → emit(piece)
                                        │
                               Handoffs (rotations of parsed sources' containers)

A file is tracked from the moment its globs find it until it is gone and safe: read to its
end, every ticket done, nothing held by its encoder.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

import structlog

from agent.config import SourceConfig
from agent.encode import Encoded, EncodeLimits, LineEncoder, line_limit
from agent.encode.scan import occurrences
from agent.state.acks import AckTracker
from agent.state.checkpoint import FileCheckpoint
from agent.state.deadletter import DeadLetters
from agent.tail.encoders import FileEncoders
from agent.tail.handoff import Handoffs
from agent.tail.identity import Identity
from agent.tail.outlet import Emit, Outlet
from agent.tail.quarantine import quarantine
from agent.tail.reader import Block, Key, LongLine, Reader, Truncated
from agent.tail.registry import Registry
from agent.tail.release import Release
from agent.tail.stats import TailSnapshot, TailStats

if TYPE_CHECKING:
    from agent.parse.kubernetes import PodDirectory

log = structlog.get_logger("agent.tailer")

CHUNKS_PER_TURN = 8  # per file per pass: one busy file must not starve the others
DRAIN_CHUNKS = 64  # a rotated file read to its end before its held lines move to the new one


class Tailer:
    """Reads every tracked file a few chunks per turn and emits encoded pieces through `emit`."""

    def __init__(
        self,
        sources: list[SourceConfig],
        saved: Iterable[FileCheckpoint],
        *,
        acks: AckTracker,
        dead_letters: DeadLetters,
        emit: Emit,
        limits: EncodeLimits,
        pods: PodDirectory | None = None,  # pod labels from the API (agent.kube)
    ) -> None:
        self._acks = acks
        self._registry = Registry()
        self._encoders = FileEncoders(limits, pods)
        self._handoffs = Handoffs(acks)
        self._identity = Identity(self._registry, acks, self._line_limit, self._opened)
        self._stats = TailStats()
        self._outlet = Outlet(acks, dead_letters, emit, self._handoffs, self._stats)
        self._release = Release(self._registry, self._identity, acks, self._encoders, self._stats)
        self._first_scan = True
        for record in saved:
            self._identity.dormant.remember(record)
        self._apply(sources)

    def __repr__(self) -> str:
        return f"<Tailer {self._registry!r} {self._identity!r} {self._handoffs!r}>"

    @property
    def readers(self) -> list[Reader]:
        return list(self._registry.readers.values())

    def watch_roots(self) -> tuple[frozenset[str], bool]:
        return self._registry.watch_roots()

    async def run(
        self,
        stop: asyncio.Event,
        wake: asyncio.Event,
        *,
        once: bool,
        before_waiting: Callable[[], object] | None = None,
    ) -> None:
        """Scan and read until `stop`; with `once`, until a pass finds nothing new.

        `before_waiting` is called each time the tailer is about to wait for `wake` (or its
        scan interval): `run --once` starts its watcher there, since a backfill that reads
        to the end and stops never waits, and need not pay for one."""
        while not stop.is_set():
            wake.clear()
            self.scan()
            progressed = await self.read_all(stop)
            await self.flush_held(stop)
            self._settle_links()
            if once and not progressed and not self._identity.copies:
                await self.flush_held(stop, force=True)  # a backfill's end: nothing follows
                return
            if progressed:
                continue
            if before_waiting is not None:
                before_waiting()
            try:
                async with asyncio.timeout(self._interval()):
                    await wake.wait()  # set by the watcher, and by whoever sets `stop`
            except TimeoutError:
                pass

    def _interval(self) -> float:
        """Until the next scan, or sooner when a held record's flush timeout is up first."""
        sources = self._registry.sources.values()
        interval = min((s.scan_interval for s in sources), default=1.0)
        due = self._encoders.next_flush()
        if due is not None:
            interval = min(interval, max(0.0, due - time.monotonic()) + 0.001)
        return interval

    # -- configuration --------------------------------------------------------------------

    def reconfigure(self, sources: list[SourceConfig], limits: EncodeLimits | None = None) -> None:
        """Apply a reloaded source list and batch limits (SIGHUP) between two passes.

        New sources are scanned from the next pass. A removed source's files are closed and
        no longer read; tickets already issued still complete, and its checkpoints are kept
        (a re-added source resumes where it was). A file of a changed source, or of any
        source when the limits change, gets a new encoder at its next read, after shipping
        what the old one holds: lines read from then on follow the new options.
        """
        if limits is not None:
            self._encoders.limits = limits
        added, removed, changed = self._apply(sources)
        log.info("sources_reconfigured", added=added, removed=removed, changed=changed)

    def _apply(self, sources: list[SourceConfig]) -> tuple[list[str], list[str], list[str]]:
        added, removed, changed = self._registry.apply(sources)
        for name in removed:
            self._identity.forget_copies(source=name)
        for name in added:
            self._stats.source(name)
        for reader in self._registry.readers.values():
            reader.set_max_line_bytes(self._line_limit(reader.source))
        return added, removed, changed

    def _line_limit(self, source: str) -> int:
        return line_limit(self._registry.sources[source], self._encoders.limits.max_event_bytes)

    # -- scanning -------------------------------------------------------------------------

    def scan(self) -> None:
        """Open files that appeared; close idle ones; let go of files gone and finished."""
        now = time.monotonic()
        seen: set[Key] = set()
        for source, path in self._registry.find():
            key = self._identity.track(source, path, first_scan=self._first_scan)
            if key is not None:
                seen.add(key)
        if self._first_scan:
            self._identity.finish_moved()
        self._first_scan = False
        for key, reader in list(self._registry.readers.items()):
            if key not in seen:
                self._release.missing(reader)
            else:
                self._registry.close_inactive(reader, now)
        self._identity.forget_copies(keep=seen)
        self._identity.settle(now)
        self._release.settle_retired()
        alive = self._registry.alive() | {o.file_id for o in self._identity.orphans}
        self._encoders.forget(alive)
        self._handoffs.forget(alive)

    def _opened(self, source: SourceConfig, reader: Reader) -> None:
        self._handoffs.opened(source, reader, self._registry.readers, first_scan=self._first_scan)

    # -- reading --------------------------------------------------------------------------

    async def read_all(self, stop: asyncio.Event) -> bool:
        """One pass over every file with something to read; True when anything was read."""
        progressed = False
        for reader in list(self._registry.readers.values()):
            if not reader.is_open and not (reader.unread and self._reopen(reader)):
                continue
            old_key = self._handoffs.take_heir(reader.file_id)
            if old_key is not None:
                await self._inherit(reader, old_key, stop)
            progressed |= await self._read_file(reader, stop, CHUNKS_PER_TURN)
            if stop.is_set():
                break
        return progressed

    def _reopen(self, reader: Reader) -> bool:
        same_content = self._registry.reopen(reader)
        if same_content is None:
            return False
        if not same_content:  # rewritten in place, or a new file on the reused inode
            self._identity.restart(reader)
        return True

    async def _read_file(self, reader: Reader, stop: asyncio.Event, turns: int) -> bool:
        """Up to `turns` chunks of one file; True when anything was read."""
        progressed = False
        for _ in range(turns):
            if stop.is_set():
                return progressed
            try:
                item = reader.read()
            except Truncated:
                self._identity.restart(reader)
                continue
            except OSError as exc:
                log.warning("read_failed", path=reader.path, error=str(exc))
                self._stats.source(reader.source).read_failures += 1
                break
            if item is None:
                break
            progressed = True
            self._registry.touched(reader)
            if isinstance(item, LongLine):
                self._outlet.long_line(reader, item, held=self._encoders.held(reader.file_id))
                await asyncio.sleep(0)  # up to SKIP_BYTES_PER_CALL read: let the others run
            else:
                await self._ship(reader, item)
        return progressed

    async def _ship(self, reader: Reader, block: Block) -> None:
        """Encode a block of whole lines and hand the pieces on."""
        per_source = self._stats.source(reader.source)
        per_source.bytes_read += len(block.data)
        per_source.lines += occurrences(block.data, b"\n")  # memchr: count() checks each byte
        self._stats.bytes_read += len(block.data)
        encoder = await self._encoder(reader, upto=block.start)
        try:
            encoded = encoder.encode(block.data, block.start)
        except Exception as error:  # a defect of ours: it costs these lines, not the agent
            await self._fail(reader, encoder, error, block.start, block.data)
            return
        await self._send(reader, encoded, encoder)

    async def _encoder(self, reader: Reader, upto: int | None = None) -> LineEncoder:
        """The file's encoder; one it replaces (a reload) first ships everything it holds,
        which ends at `upto` (the block about to be encoded; else the read offset)."""
        encoder, stale = self._encoders.take(reader, self._registry.sources[reader.source])
        if stale is not None:
            try:
                flushed, by = stale.flush(force=True), stale
            except Exception as error:  # as in `_ship`
                end = reader.offset if upto is None else upto
                flushed, by = quarantine(reader, stale, error, end), encoder
            await self._send(reader, flushed, by)
        return encoder

    async def _fail(
        self, reader: Reader, encoder: LineEncoder, error: Exception, start: int, data: bytes
    ) -> None:
        """The lines `encoder` failed on (and held) dead-lettered; the file's next read
        gets a fresh encoder (`agent.tail.quarantine`)."""
        encoded = quarantine(reader, encoder, error, start, data)
        self._encoders.drop(reader.file_id)
        await self._send(reader, encoded, await self._encoder(reader))

    async def _send(self, reader: Reader, encoded: Encoded, encoder: LineEncoder) -> None:
        connection = self._registry.sources[reader.source].connection or ""
        await self._outlet.ship(reader, encoded, encoder, connection)

    async def _inherit(self, heir: Reader, old_key: Key, stop: asyncio.Event) -> None:
        """Rotation: read the container's previous file to its end, then move what its
        encoder still holds (a ``P`` fragment, a stack trace) to the new file's encoder."""
        old = self._registry.readers.get(old_key)
        if old is None or old.source != heir.source or not old.is_open:
            return
        await self._read_file(old, stop, DRAIN_CHUNKS)  # bounded: a busy late writer
        previous = self._encoders.get(old.file_id)
        if previous is None or previous.pending_offset is None or stop.is_set():
            return
        self._handoffs.hand_over(old, previous, heir, await self._encoder(heir))

    async def flush_held(self, stop: asyncio.Event, *, force: bool = False) -> None:
        """Ship the records encoders release by timeout (all of them with `force`)."""
        now = time.monotonic()
        for reader in list(self._registry.readers.values()):
            encoder = self._encoders.get(reader.file_id)
            if encoder is None or stop.is_set():
                continue
            due = encoder.next_flush()
            if force or (due is not None and due <= now):
                try:
                    flushed = encoder.flush(now, force=force)
                except Exception as error:  # as in `_ship`
                    await self._fail(reader, encoder, error, reader.offset, b"")
                    continue
                await self._send(reader, flushed, encoder)

    def _settle_links(self) -> None:
        self._handoffs.settle({r.file_id for r in self._registry.readers.values()})

    # -- what survives, what operators see -------------------------------------------------

    def checkpoints(self) -> list[FileCheckpoint]:
        self._settle_links()  # e.g. at the end of a backfill, after the tailer stopped
        now = time.time()
        tracked = [*self._registry.readers.values(), *self._registry.retired]
        return [self._identity.record(r, now) for r in tracked] + self._identity.untracked(now)

    def snapshot(self) -> TailSnapshot:
        """Counters, and per source how far its files are ahead of the checkpoint.

        Cheap enough for every /metrics scrape: one fstat per open file, none for a closed
        one (the size the last scan saw is used).
        """
        usage = self._registry.usage(self._acks.committed)
        return self._stats.freeze(usage, self._identity.truncations, len(self._identity.copies))

    def close(self) -> None:
        self._registry.close_all()
