"""The disk spool: payloads that could not be delivered now, kept safe until they can be.

A batch goes to the spool when its retries run out, when Polaris refuses the key, while the
endpoint is known to be down, and at shutdown. Once a batch is spooled its lines are safe, so
the checkpoints move past them: the spool, not the log files, then holds the only copy.

Each spooled batch is one immutable file, written tmp + fsync + rename:

    magic "PAS1" | crc32 u32 | header length u32 | body length u64 | header JSON | body

The body is the gzip-compressed NDJSON, written as the sender compressed it (no second
compression) and read back compressed (replay posts it as it is); the header names the
connection, the event count, where each event came from (for dead letters) and, since the
ship chain, the NDJSON size (optional: older files without it read the same). The CRC
covers header and body. Names sort oldest first. A file that fails its check is moved to
`quarantine/`, counted and logged: it never blocks the start or the replay of the others.
So is a symlink posing as a spool file (files are read without following links). A file
that cannot be read *now* (permissions, too many open files, an I/O error) is not damaged:
it is set aside, logged once, and tried again every `UNREADABLE_RETRY_SECS`, while the
files after it replay. A write the disk refuses (full, read-only, an I/O error) is not
raised: the batch stays in memory, unacknowledged, and is written again once a file goes or
every `DISK_RETRY_SECS` (logged once, `spool_write_failed`); the readers wait meanwhile, and
before each wait the writer may place it elsewhere (`put(meanwhile=...)`: the sender offers
it to Polaris, so a full disk does not hold a batch back from an endpoint that is back).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import re
import stat
import struct
import time
import zlib
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal, TypeVar

import orjson
import structlog

from agent.config import SpoolConfig
from agent.records import Origin
from agent.ship.compress import gzip_compressor
from agent.ship.payload import EventOrigins, Payload, PieceOrigins
from agent.state.files import UnsafeState, private_dir, read_private, write_atomically

T = TypeVar("T")

log = structlog.get_logger("agent.spool")

MAGIC: Final = b"PAS1"
_PREFIX: Final = struct.Struct("<4sIIQ")
SUFFIX: Final = ".spool"
FULL_RECHECK_SECS: Final = 0.2
UNREADABLE_RETRY_SECS: Final = 30.0
"""How long a spool file that could not be read (EACCES, EMFILE, EIO...) waits before the
next try: long enough not to flood the log or the disk, short enough to resume soon after
an operator fixes the permissions."""
MAX_FILE_BYTES: Final = 64 * 2**20
"""No spool file is larger: a payload is at most 1 MB of NDJSON (its gzip no larger), and its
header names at most ~333,000 events' offsets (`{}` lines), a few MB. A larger file (a sparse
one costs no disk) was read whole: MemoryError, exit 1 at every start."""
DISK_RETRY_SECS: Final = 1.0
"""How long a write the disk refused waits before the next try (sooner when a replayed file
frees room): a full disk is logged once, not once a second."""
_DAMAGED_ERRNOS: Final = frozenset({errno.ELOOP, errno.EINVAL, errno.EISDIR, errno.ENOENT})
"""Read errors that say the file itself is wrong (a link, not a regular file, gone): these
are quarantined like a failed CRC. Every other OSError is taken as passing."""

_GZIP_MAGIC: Final = b"\x1f\x8b"
_GZIP_MIN: Final = 18  # header and trailer of an empty member

WhenFull = Literal["block", "drop_oldest"]


class SpoolCorrupt(Exception):
    """A spool file failed its length or CRC check."""


SpoolEntry = Payload
"""One spooled request: a payload (what to send, where, and where its events came from)."""


@dataclass(slots=True)
class SpoolStats:
    files: int = 0
    bytes: int = 0
    written: int = 0
    replayed: int = 0
    corrupt: int = 0
    dropped_events: int = 0


@dataclass(frozen=True, slots=True, order=True)
class SpoolFile:
    name: str
    size: int = field(compare=False)


def encode_entry(entry: Payload, compress: Callable[[bytes], bytes]) -> bytes:
    """The file for `entry`. A payload already compressed is written as it is; one that is
    not is compressed here (the spool always holds gzip). Inflated only when its origins
    are a batch's lazy offsets, which are read from the NDJSON."""
    body = entry.gzipped
    ndjson = entry.body if body is None or isinstance(entry.origins, PieceOrigins) else b""
    if isinstance(entry.origins, EventOrigins):
        origins = entry.origins.origins
    else:
        origins = entry.origins.select(ndjson, [(0, len(ndjson))])
    header = orjson.dumps(
        {
            "connection": entry.connection,
            "events": entry.events,
            "origins": [[o.path, list(o.offsets)] for o in origins],
            "size": entry.size,
        }
    )
    if body is None:
        body = compress(ndjson)
    crc = zlib.crc32(body, zlib.crc32(header))
    return _PREFIX.pack(MAGIC, crc, len(header), len(body)) + header + body


def decode_entry(data: bytes) -> Payload:
    """The payload in a spool file, its body left compressed (replay posts it as it is).
    Files written before `size` was in the header read the same: it is optional."""
    if len(data) < _PREFIX.size:
        raise SpoolCorrupt(f"{len(data)} bytes: shorter than the prefix")
    magic, crc, header_len, body_len = _PREFIX.unpack_from(data)
    if magic != MAGIC:
        raise SpoolCorrupt(f"bad magic {magic!r}")
    if len(data) != _PREFIX.size + header_len + body_len:
        raise SpoolCorrupt(f"{len(data)} bytes, expected {_PREFIX.size + header_len + body_len}")
    header = data[_PREFIX.size : _PREFIX.size + header_len]
    body = data[_PREFIX.size + header_len :]
    if zlib.crc32(body, zlib.crc32(header)) != crc:
        raise SpoolCorrupt("CRC mismatch")
    if not body.startswith(_GZIP_MAGIC) or len(body) < _GZIP_MIN:
        raise SpoolCorrupt("body is not gzip")
    try:
        doc = orjson.loads(header)
        connection, events, origins = doc["connection"], doc["events"], doc["origins"]
        size = doc.get("size")
        if not isinstance(connection, str) or (connection and not _CONNECTION.match(connection)):
            raise ValueError(f"connection {str(connection)[:80]!r} is not a connection name")
        if not _count(events) or not (size is None or _count(size)):
            raise ValueError(f"events {events!r} or size {size!r} is not a count")
        return Payload(connection, None, events, _origins(origins), gzipped=body, size=size)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise SpoolCorrupt(f"unreadable: {exc}") from None


_CONNECTION: Final = re.compile(r"^(?!\.{1,2}$)[A-Za-z0-9._-]{1,64}$")
"""A Polaris connection name as config allows it (`polaris.valid_connection`), or "" (the
default connection). A header is CRC-checked, not trusted: a name like `../../x` sent the
spooled events to another path of the API, retried forever there (a 404 keeps the data),
and every spool file after it waited."""


def _count(value: object) -> bool:
    return type(value) is int and value >= 0


def _origins(value: object) -> tuple[Origin, ...]:
    """`[[path, [offset, ...]], ...]` exactly: offsets go into dead letters and checkpoints."""
    if not isinstance(value, list):
        raise ValueError("origins is not a list")
    origins = []
    for item in value:
        if not (isinstance(item, list) and len(item) == 2 and isinstance(item[0], str)):
            raise ValueError(f"origin {str(item)[:80]} is not [path, offsets]")
        path, offsets = item
        if not isinstance(offsets, list) or not all(type(o) is int and o >= -1 for o in offsets):
            raise ValueError(f"offsets of {path[:80]!r} are not offsets")  # -1: not known
        origins.append(Origin(path, offsets))
    return tuple(origins)


class Spool:
    """The spool directory, its size accounting and its `max_size` policy.

    File I/O runs in worker threads (fsync is slow); the bookkeeping stays on the loop.
    """

    read_file = staticmethod(read_private)
    """Reads one spool file whole, never through a link; a seam for tests (as root, a real
    permission error cannot be produced)."""

    def __init__(
        self,
        directory: Path,
        max_bytes: int,
        when_full: WhenFull,
        *,
        read_file: Callable[[Path], bytes] | None = None,
        retry_unreadable: float = UNREADABLE_RETRY_SECS,
        retry_write: float = DISK_RETRY_SECS,
    ) -> None:
        self.directory = private_dir(directory)
        self.quarantine = directory / "quarantine"
        self.max_bytes = max_bytes
        self.when_full = when_full
        self.stats = SpoolStats()
        self._files: list[SpoolFile] = []
        self._held: set[str] = set()  # being replayed: never dropped from under the replayer
        self._read_file = read_file or read_private
        self._retry_unreadable = retry_unreadable
        self._unreadable: dict[str, float] = {}  # name -> loop time of its next try
        self._retry_write = retry_write
        self._write_failing = False  # the last write was refused: logged once until one works
        self._seq = 0
        self._changed = asyncio.Condition()
        self._reserved = 0  # bytes being written, not yet in stats.bytes
        self._dropping = asyncio.Lock()  # one writer at a time picks and drops the oldest
        self._compress = gzip_compressor(1)
        # One thread of its own: spool I/O is sequential anyway, and a thread per call from
        # the loop's default pool would each keep a malloc arena of freed bodies (seen: RSS
        # +7 MB over a long outage).
        self._io = ThreadPoolExecutor(1, thread_name_prefix="spool")
        self._load()

    def __repr__(self) -> str:
        return f"<Spool {self.directory} files={self.stats.files} bytes={self.stats.bytes}>"

    def reconfigure(self, section: SpoolConfig) -> None:
        """A reloaded `[spool]`: the size cap and the policy apply to the next write (a
        smaller cap drops or blocks then, never deletes what is on disk now)."""
        self.max_bytes = section.max_size
        self.when_full = section.when_full

    async def put(
        self,
        entry: SpoolEntry,
        stopping: asyncio.Event | None = None,
        *,
        meanwhile: Callable[[], Awaitable[bool]] | None = None,
    ) -> bool:
        """Write `entry` durably; True once it is on disk. With `block`, waits for room
        (False if `stopping` is set first); with `drop_oldest`, deletes the oldest files.

        While the disk refuses the write, `meanwhile` is tried before each wait (the sender
        offers the batch to Polaris): when it returns True the entry is needed no more, and
        put returns False without writing it."""
        data = await self._run(encode_entry, entry, self._compress)
        if not await self._make_room(len(data), stopping):
            return False
        while True:
            self._seq += 1
            name = f"{time.time_ns():020d}-{os.getpid()}-{self._seq:08d}{SUFFIX}"
            self._reserved += len(data)  # writers at once must not all count the same room
            try:
                await self._run(write_atomically, self.directory / name, data)
                break
            except OSError as exc:
                failure = exc
            finally:
                self._reserved -= len(data)
            self._refused(failure)
            if meanwhile is not None and await meanwhile():
                return False
            if not await self._wait_for_disk(stopping):
                return False
        if self._write_failing:
            self._write_failing = False
            log.info("spool_writable_again", directory=str(self.directory))
        self._add(SpoolFile(name, len(data)))
        self.stats.written += 1
        log.info("spooled", file=name, events=entry.events, bytes=len(data))
        await self._notify()
        return True

    def _refused(self, failure: OSError) -> None:
        """A write the disk refused (ENOSPC, EDQUOT, EROFS, EIO, the directory gone): logged
        once, until a write works again."""
        if not self._write_failing:
            self._write_failing = True
            log.error(
                "spool_write_failed",
                directory=str(self.directory),
                error=failure.strerror or str(failure),
                retry_in_seconds=self._retry_write,
            )

    async def _wait_for_disk(self, stopping: asyncio.Event | None) -> bool:
        """After a refused write: wait for a file to go or `DISK_RETRY_SECS`, then the caller
        writes again; False when `stopping` is set first. The batch stays in memory,
        unacknowledged, meanwhile: the readers wait (the log files are the buffer) and
        nothing is dropped. Raising here ended the agent with exit 1, at every start while
        the disk stayed full."""
        if stopping is not None and stopping.is_set():
            return False
        async with self._changed:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), self._retry_write)
        if stopping is not None and stopping.is_set():
            return False
        with contextlib.suppress(UnsafeState, OSError):
            await self._run(private_dir, self.directory)  # a directory removed: made again
        return True

    async def wait_for_files(self) -> None:
        """Until `oldest()` has a file: one is written, or an unreadable one's time comes."""
        async with self._changed:
            while self.oldest() is None:
                delay = self._next_retry_in()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), delay)

    async def wait_until_empty(self) -> None:
        """Until every file is replayed, except those that cannot be read now: they stay on
        disk (safe, logged) for a later run rather than holding `run --once` forever."""
        async with self._changed:
            await self._changed.wait_for(
                lambda: all(f.name in self._unreadable for f in self._files)
            )

    def oldest(self) -> SpoolFile | None:
        """The oldest file to replay now (unreadable ones wait for their next try)."""
        if not self._unreadable:
            return self._files[0] if self._files else None
        now = asyncio.get_running_loop().time()
        for file in self._files:
            if self._unreadable.get(file.name, now) <= now:
                return file
        return None

    def hold(self, file: SpoolFile) -> None:
        """The replayer is sending `file`: `drop_oldest` must pick another one."""
        self._held.add(file.name)

    def release(self, file: SpoolFile) -> None:
        self._held.discard(file.name)

    async def read(self, file: SpoolFile) -> SpoolEntry | None:
        """The entry in `file`, or None: when it is damaged (then it is quarantined) or cannot
        be read now (then it waits `retry_unreadable` for its next try, logged once)."""
        if file.size > MAX_FILE_BYTES:  # never written so: not read whole into memory
            await self.quarantine_file(file, f"{file.size} bytes: larger than any spool entry")
            return None
        try:
            data = await self._run(self._read_file, self.directory / file.name)
            entry = await self._run(decode_entry, data)
        except SpoolCorrupt as exc:
            await self.quarantine_file(file, str(exc))
            return None
        except OSError as exc:
            if exc.errno in _DAMAGED_ERRNOS:
                await self.quarantine_file(file, exc.strerror or str(exc))
            else:
                self._set_aside(file, exc)
            return None
        if self._unreadable.pop(file.name, None) is not None:
            log.info("spool_file_readable", file=file.name)
        return entry

    async def remove(self, file: SpoolFile, *, replayed: bool = True) -> None:
        """Forget a file whose events are now delivered (or dead-lettered)."""
        if file not in self._files:
            return
        await self._run(_unlink, self.directory / file.name)
        self._discard(file)
        if replayed:
            self.stats.replayed += 1
        await self._notify()

    # -- internals ----------------------------------------------------------------------

    async def _run(self, function: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._io, function, *args)

    async def _notify(self) -> None:
        """Wake whoever waits for files, for an empty spool or for room."""
        async with self._changed:
            self._changed.notify_all()

    def _load(self) -> None:
        """Files left by an earlier run; a stray tmp file from a crash is removed."""
        for path in sorted(self.directory.iterdir()):
            if path.name.startswith(".") and path.name.endswith(".tmp"):
                try:
                    _unlink(path)
                except OSError as exc:  # a directory there: not ours to remove, not fatal
                    log.warning("spool_stray_left", file=path.name, error=exc.strerror)
            elif path.name.endswith(SUFFIX):
                info = path.lstat()  # a symlink is listed, then quarantined unread
                if stat.S_ISREG(info.st_mode) or stat.S_ISLNK(info.st_mode):
                    self._add(SpoolFile(path.name, info.st_size))
        if self._files:
            log.info("spool_found", files=self.stats.files, bytes=self.stats.bytes)

    async def _make_room(self, size: int, stopping: asyncio.Event | None) -> bool:
        if not self._over(size):
            return True
        if self.when_full == "drop_oldest":
            # Serialized: writers dropping at once would pick the same oldest file (counting
            # its events twice) and, seeing the bytes not yet freed, drop more than needed.
            async with self._dropping:
                while self._over(size):
                    victims = [
                        f
                        for f in self._files
                        if f.name not in self._held and f.name not in self._unreadable
                    ]
                    if not victims:
                        break  # only held or unreadable files are left: over max_size, kept
                    await self._drop(victims[0])
            return True
        log.warning("spool_full", bytes=self.stats.bytes, max_bytes=self.max_bytes)
        while self._over(size):
            if stopping is not None and stopping.is_set():
                return False
            async with self._changed:
                # Woken when a file goes; the timeout notices `stopping`, which cannot notify.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), FULL_RECHECK_SECS)
        return True

    def _over(self, size: int) -> bool:
        """Whether `size` more bytes would pass `max_size`; an empty spool takes any entry."""
        if not self._files and not self._reserved:
            return False
        return self.stats.bytes + self._reserved + size > self.max_bytes

    async def _drop(self, file: SpoolFile) -> None:
        entry = await self.read(file)
        events = entry.events if entry is not None else 0
        if entry is not None:
            await self.remove(file, replayed=False)
        self.stats.dropped_events += events
        log.warning("spool_dropped_oldest", file=file.name, events=events, reason="spool_full")

    def _set_aside(self, file: SpoolFile, exc: OSError) -> None:
        """Not damaged, only unreadable now: tried again later, never quarantined."""
        if file.name not in self._unreadable:
            log.error(
                "spool_file_unreadable",
                file=file.name,
                error=exc.strerror or str(exc),
                retry_in_seconds=self._retry_unreadable,
            )
        self._unreadable[file.name] = asyncio.get_running_loop().time() + self._retry_unreadable

    def _next_retry_in(self) -> float | None:
        """Seconds until the soonest unreadable file may be tried again (None: none waits)."""
        if not self._unreadable:
            return None
        return max(min(self._unreadable.values()) - asyncio.get_running_loop().time(), 0.0)

    async def quarantine_file(self, file: SpoolFile, why: str) -> None:
        try:
            private_dir(self.quarantine)
        except UnsafeState as exc:  # left where it is, and out of the replay until restart
            log.error("spool_quarantine_unusable", file=file.name, error=str(exc))
        else:
            with contextlib.suppress(OSError):
                await self._run(os.replace, self.directory / file.name, self.quarantine / file.name)
        self._discard(file)
        self.stats.corrupt += 1
        log.error("spool_file_corrupt", file=file.name, error=why, moved_to=str(self.quarantine))
        await self._notify()

    def _add(self, file: SpoolFile) -> None:
        self._files.append(file)
        self._files.sort()
        self.stats.files += 1
        self.stats.bytes += file.size

    def _discard(self, file: SpoolFile) -> None:
        self._unreadable.pop(file.name, None)
        if file in self._files:
            self._files.remove(file)
            self.stats.files -= 1
            self.stats.bytes -= file.size


def _unlink(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
