"""Dead letters: what cannot be delivered is written down with its reason, never dropped
silently, and kept within bounds.

Files: `data_dir/dead-letter/YYYY-MM-DD.ndjson` (0600), one NDJSON record per line; a day
that outgrows an eighth of `max_size` continues in `YYYY-MM-DD.1.ndjson`, `.2`, ... so that
the size bound can delete the oldest records a file at a time. Bounds (`DeadLetterLimits`):
files whose newest record is older than `max_age` are deleted, and the oldest files go while
the directory holds more than `max_size`; the file being written is never deleted. Each
deletion is counted (`pruned_snapshot()`: records by bound, `size` or `age`) and logged
(`dead_letters_pruned`). `reconfigure(limits)` (a SIGHUP) applies new bounds at once: tighter
ones prune right away, the file being written included once it is past the new segment size
(it is closed first; the next record starts a new one).

Logging: the first dead letter of each reason is logged with its path and offset; later ones
are counted and said as one `dead_letters_summary` line per `summary_every` (60 s), with the
counts per reason, so that a misconfigured source does not flood the log.

The `dead-letters` commands read and rewrite these files while the agent may be appending:
every append and every rewrite holds an exclusive `flock` on the file, and the agent reopens
its file when it finds that a rewrite replaced it (`st_nlink == 0`).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
import stat
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import structlog

from agent.state.files import open_append, private_dir, sync_dir

log = structlog.get_logger("agent.dead_letter")
MAX_STORED_BYTES = 1_048_576
MIN_SEGMENT_BYTES = 64 * 1024
MAX_RECORD_LINE = 16 * 1024 * 1024
"""No record line is longer (a line is stored up to 1 MiB, escaped at most 6 times as long)."""
MAX_UNWRITTEN_BYTES = 64 * 1024 * 1024
"""Records the disk refused, kept in memory until it takes them: past this, the oldest go
(each logged with its line's place, counted as pruned `unwritten`)."""
AGE_CHECK_EVERY = 60.0
_NAME = re.compile(r"^(\d{4}-\d{2}-\d{2})(?:\.(\d+))?\.ndjson$")


@dataclass(frozen=True, slots=True)
class DeadLetterLimits:
    """`[dead_letter]` as the state stage takes it (it knows nothing of config)."""

    max_size: int = 0  # bytes for the whole directory; 0: no bound
    max_age: float = 0.0  # seconds; 0: kept until deleted by hand
    summary_every: float = 60.0

    @property
    def segment_bytes(self) -> int:
        """A file is continued in a new one past this size, so the oldest records can go."""
        return max(self.max_size // 8, MIN_SEGMENT_BYTES) if self.max_size else 0


class DeadLetters:
    """Appends NDJSON records to `data_dir/dead-letter/` (see the module's docstring).

    A file is opened without following links (`open_append`): a link planted at its name is
    moved aside, never appended through."""

    def __init__(
        self,
        directory: Path,
        limits: DeadLetterLimits | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.directory = private_dir(directory)  # refused now (UnsafeState), not at a 3 a.m. write
        self.limits = limits or DeadLetterLimits()
        self.count = 0
        self.by_reason: dict[str, int] = {}
        self.pruned: dict[str, int] = {}  # records deleted by bound ("size", "age")
        self._clock = clock
        self._fd: int | None = None
        self._path: Path | None = None
        self._size = 0  # bytes in the file being written
        self._logged: set[str] = set()  # reasons whose first dead letter was logged
        self._unwritten: deque[_Unwritten] = deque()  # records the disk refused, oldest first
        self._unwritten_bytes = 0
        self._refusing = False  # the last write was refused: logged once until one works
        self._unsaid: dict[str, int] = {}  # dead letters since the last summary, by reason
        self._said_at = clock()
        self._aged_at = 0.0
        self._total = sum(size for _, size in _files_with_sizes(self.directory))
        self._prune()

    def __repr__(self) -> str:
        return f"<DeadLetters {self.directory} count={self.count}>"

    def write(self, reason: str, path: str, offset: int, data: bytes, detail: str = "") -> None:
        record = {
            "time": _iso(self._clock()),
            "reason": reason,
            "path": path,
            "offset": offset,
            "bytes": len(data),
            "line": data[:MAX_STORED_BYTES].decode("utf-8", "replace"),
        }
        if detail:
            record["detail"] = detail
        self._unwritten.append(_Unwritten(orjson.dumps(record) + b"\n", reason, path, offset))
        self._unwritten_bytes += len(self._unwritten[-1].line)
        self._write_unwritten()
        self.count += 1
        self.by_reason[reason] = self.by_reason.get(reason, 0) + 1
        if reason not in self._logged:
            self._logged.add(reason)
            log.warning(
                "dead_lettered",
                reason=reason,
                path=path,
                offset=offset,
                bytes=len(data),
                file=str(self._path),
                more=f"later ones are summarised every {self.limits.summary_every:g} s",
            )
        else:
            self._unsaid[reason] = self._unsaid.get(reason, 0) + 1
            self._summarise()
        if self.limits.max_size and self._total > self.limits.max_size:
            self._prune()

    def snapshot(self) -> dict[str, int]:
        """Records written since start, by reason."""
        return dict(self.by_reason)

    def pruned_snapshot(self) -> dict[str, int]:
        """Records deleted by a bound since start: `size`, `age`."""
        return dict(self.pruned)

    def reconfigure(self, limits: DeadLetterLimits) -> None:
        """New bounds and summary interval, applied now (see the module's docstring)."""
        self.limits = limits
        if limits.segment_bytes and self._size >= limits.segment_bytes:
            self._close_fd()  # full by the new measure: prunable, and no longer appended to
            self._path = None
        if limits.max_size or limits.max_age:
            self._prune()

    @property
    def unwritten(self) -> int:
        """Records the disk refused, kept in memory until it takes them: while there are
        any, a checkpoint moving past their lines would lose them at a crash."""
        return len(self._unwritten)

    def sync(self) -> None:
        """Make written records durable: called before a checkpoint moves past them. Also
        where the summary and the age bound are kept up when no new record comes, and where
        records the disk refused are written again."""
        self._write_unwritten()
        if self._fd is not None:
            try:
                os.fsync(self._fd)
            except OSError as exc:
                self._refused(exc)
        self._summarise()
        if self.limits.max_age and self._clock() - self._aged_at >= AGE_CHECK_EVERY:
            self._prune()

    def close(self) -> None:
        self._summarise(final=True)
        self._write_unwritten()
        if self._unwritten:  # the disk never took them: said, each with its line's place
            log.error(
                "dead_letters_unwritten",
                records=len(self._unwritten),
                lines=[f"{u.reason} {u.path}:{u.offset}" for u in list(self._unwritten)[:100]],
                effect="not written to the dead-letter directory (the disk refused them)",
            )
        with contextlib.suppress(OSError):
            self._close_fd()
        self._fd = None

    def today_path(self) -> Path:
        """The first file today's records go to (UTC days)."""
        return self.directory / f"{_day(self._clock())}.ndjson"

    # -- writing ---------------------------------------------------------------------------

    def _write_unwritten(self) -> None:
        """Append the records not yet on disk, oldest first. A write the disk refuses (full,
        read-only, an I/O error) keeps them in memory, up to `MAX_UNWRITTEN_BYTES` (beyond
        that the oldest go, each logged with its line's place): raising here ended the agent
        (exit 1) on the same line at every start while the disk stayed full."""
        while self._unwritten:
            first = self._unwritten[0]
            try:
                self._append(first.line)
            except OSError as exc:
                self._refused(exc)
                self._bound_unwritten()
                return
            self._unwritten.popleft()
            self._unwritten_bytes -= len(first.line)
        if self._refusing:
            self._refusing = False
            log.info("dead_letters_writable_again", directory=str(self.directory))

    def _refused(self, exc: OSError) -> None:
        if not self._refusing:
            self._refusing = True
            log.error(
                "dead_letter_write_failed",
                directory=str(self.directory),
                error=exc.strerror or str(exc),
                unwritten=len(self._unwritten),
                effect="kept in memory and written again at the next record or checkpoint",
            )

    def _bound_unwritten(self) -> None:
        while self._unwritten_bytes > MAX_UNWRITTEN_BYTES and len(self._unwritten) > 1:
            lost = self._unwritten.popleft()
            self._unwritten_bytes -= len(lost.line)
            self.pruned["unwritten"] = self.pruned.get("unwritten", 0) + 1
            log.error(
                "dead_letter_lost",
                reason=lost.reason,
                path=lost.path,
                offset=lost.offset,
                why=f"the disk refused it and {MAX_UNWRITTEN_BYTES} bytes of records wait",
            )

    def _append(self, line: bytes) -> None:
        while True:
            fd = self._open()
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                if os.fstat(fd).st_nlink == 0:  # a `dead-letters replay` replaced the file
                    self._close_fd()
                    continue
                _append_whole(fd, line)
            finally:
                if self._fd is not None:
                    fcntl.flock(fd, fcntl.LOCK_UN)
            self._size += len(line)
            self._total += len(line)
            return

    def _open(self) -> int:
        day = _day(self._clock())
        segment = self.limits.segment_bytes
        current = self._path
        same_day = current is not None and current.name.startswith(day)
        if self._fd is not None and same_day and (not segment or self._size < segment):
            return self._fd
        self._close_fd()
        private_dir(self.directory)
        path = self._next_path(day, segment)
        self._fd = open_append(path)
        self._path = path
        self._size = os.fstat(self._fd).st_size
        sync_dir(self.directory)  # the new file's name survives a crash with its records
        return self._fd

    def _next_path(self, day: str, segment: int) -> Path:
        """Today's newest file, or the next one when it is full."""
        numbers = [n for d, n, _ in _day_files(self.directory) if d == day]
        number = max(numbers, default=0)
        path = _segment_path(self.directory, day, number)
        if segment and path.exists() and path.stat().st_size >= segment:
            path = _segment_path(self.directory, day, number + 1)
        return path

    def _close_fd(self) -> None:
        if self._fd is not None:
            os.fsync(self._fd)
            os.close(self._fd)
            self._fd = None

    # -- bounds and summaries ----------------------------------------------------------------

    def _prune(self) -> None:
        now = self._clock()
        self._aged_at = now
        limits = self.limits
        files = _files_with_sizes(self.directory)
        self._total = sum(size for _, size in files)
        for path, size in files:
            if path == self._path:
                continue  # the file being written stays
            why = ""
            if limits.max_age and now - _mtime(path) > limits.max_age:
                why = "age"
            elif limits.max_size and self._total > limits.max_size:
                why = "size"
            if not why:
                continue
            records = _count_records(path)
            try:
                path.unlink()
            except FileNotFoundError:
                continue
            self._total -= size
            self.pruned[why] = self.pruned.get(why, 0) + records
            log.warning(
                "dead_letters_pruned",
                file=path.name,
                records=records,
                bytes=size,
                bound=why,
                max_size=limits.max_size or None,
                max_age_seconds=limits.max_age or None,
            )

    def _summarise(self, *, final: bool = False) -> None:
        now = self._clock()
        if not self._unsaid or (not final and now - self._said_at < self.limits.summary_every):
            return
        log.warning(
            "dead_letters_summary",
            counts=dict(sorted(self._unsaid.items())),
            seconds=round(now - self._said_at, 1),
            total=self.count,
        )
        self._unsaid = {}
        self._said_at = now


def _append_whole(fd: int, line: bytes) -> None:
    """All of `line` or none of it: a record torn by a full disk is cut off again, or the next
    record would continue its line and both would be unreadable (skipped by `list`)."""
    size = os.fstat(fd).st_size
    try:
        view = memoryview(line)
        while view:
            view = view[os.write(fd, view) :]
    except OSError:
        with contextlib.suppress(OSError):
            os.ftruncate(fd, size)
        raise


@dataclass(frozen=True, slots=True)
class _Unwritten:
    """A record the disk has not taken yet, with what a log line says of it if it is lost."""

    line: bytes
    reason: str
    path: str
    offset: int


# -- reading and removing, for the `dead-letters` commands --------------------------------


@dataclass(frozen=True, slots=True)
class StoredLetter:
    """One record as stored: its file and line, the raw line and the decoded record."""

    file: Path
    index: int
    raw: bytes
    record: dict[str, Any]

    @property
    def reason(self) -> str:
        return str(self.record.get("reason", ""))

    @property
    def time(self) -> str:
        return str(self.record.get("time", ""))

    @property
    def epoch(self) -> float:
        return _parse_iso(self.time)


def read_letters(directory: Path) -> Iterator[StoredLetter]:
    """Every record, oldest file first, in file order; lines that are not records (a torn
    last line after a crash, junk) are skipped. Streamed, a file at a time and 1 MiB at a
    time, the shared lock held for each read only (never while the caller prints): a file
    may be huge, and each was read whole (a MemoryError in `dead-letters list`)."""
    for path, _size in _files_with_sizes(directory):
        try:
            for index, raw in _record_lines(path):
                try:
                    record = orjson.loads(raw)
                except orjson.JSONDecodeError:
                    continue
                if isinstance(record, dict):
                    yield StoredLetter(path, index, raw, record)
        except FileNotFoundError:
            continue


def _record_lines(path: Path) -> Iterator[tuple[int, bytes]]:
    """(index, line) of each non-empty line of `path` up to `MAX_RECORD_LINE` bytes; a longer
    one (no record is: a line is stored up to 1 MiB) is skipped without being held."""
    fd = _open_record_file(path)
    try:
        index, position, pending, skipping = 0, 0, b"", False
        while True:
            fcntl.flock(fd, fcntl.LOCK_SH)
            try:
                chunk = os.pread(fd, 1 << 20, position)
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
            if not chunk:
                break
            position += len(chunk)
            *whole, rest = (pending + chunk).split(b"\n")
            for line in whole:
                if line and not skipping:
                    yield index, line
                index += 1
                skipping = False
            pending = rest
            if len(pending) > MAX_RECORD_LINE:
                pending, skipping = b"", True
        if pending and not skipping:
            yield index, pending
    finally:
        os.close(fd)


def remove_letters(letters: Iterable[StoredLetter]) -> int:
    """Delete these records from their files (each rewritten under its lock; a record whose
    line changed since it was read stays); the number removed. Every other byte of a file
    stays as it was, in order. Streamed through a temp file: a file may be GiB-sized, and
    each was read whole and split (a MemoryError in `dead-letters replay`)."""
    by_file: dict[Path, dict[int, bytes]] = {}
    for letter in letters:
        by_file.setdefault(letter.file, {})[letter.index] = letter.raw
    removed = 0
    for path, lines in by_file.items():
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except FileNotFoundError:
            continue
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                continue
            fcntl.flock(fd, fcntl.LOCK_EX)
            removed += _rewrite_without(fd, path, lines)
        finally:
            os.close(fd)  # releases the lock, after the rename: the writer reopens then
    return removed


def _rewrite_without(fd: int, path: Path, lines: dict[int, bytes]) -> int:
    """Copy `fd` to a private temp file without the lines at these indexes that still hold
    these bytes, then rename it over `path` (or remove `path` when no record is left); the
    number of lines left out. Memory: one read, one write buffer and the longest line
    being compared, whatever the file's size."""
    tmp = path.with_name(f".{path.name}.tmp")
    copy = _LineFilter(_create_private(tmp), lines)
    try:
        try:
            position = 0
            while chunk := os.pread(fd, _CHUNK, position):
                position += len(chunk)
                copy.feed(chunk)
            copy.finish()
            os.fsync(copy.out)
        finally:
            os.close(copy.out)
        if not copy.removed:
            os.unlink(tmp)
        elif copy.kept_records:
            os.replace(tmp, path)
        else:
            os.unlink(tmp)
            path.unlink()
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    if copy.removed:
        sync_dir(path.parent)
    return copy.removed


_CHUNK = 1 << 20


class _LineFilter:
    """Writes what it is fed to `out`, except the lines to remove. A line is held in memory
    only while it may still be one of them (its index is listed and it is no longer than
    the listed bytes); any other line passes straight through, a piece at a time."""

    def __init__(self, out: int, lines: dict[int, bytes]) -> None:
        self.out = out
        self.removed = 0
        self.kept_records = False  # a non-empty line was kept: the file stays
        self._lines = lines
        self._index = 0
        self._target = lines.get(0)
        self._held = bytearray()  # the current line, while it may be a target
        self._started = False  # the current line has bytes (written or held)
        self._buffer = bytearray()

    def __repr__(self) -> str:
        return f"<_LineFilter line={self._index} removed={self.removed}>"

    def feed(self, chunk: bytes) -> None:
        view, start = memoryview(chunk), 0
        while (end := chunk.find(b"\n", start)) >= 0:
            self._piece(view[start:end])
            self._end_line(newline=True)
            start = end + 1
        self._piece(view[start:])

    def finish(self) -> None:
        if self._started or self._held:
            self._end_line(newline=False)
        self._flush()

    def _piece(self, piece: memoryview) -> None:
        if not piece:
            return
        self._started = True
        if self._target is not None:
            if len(self._held) + len(piece) <= len(self._target):
                self._held += piece
                return
            self._target = None  # longer than the record replayed: not it
            self._write(self._held)
            self._held = bytearray()
        self._write(piece)

    def _end_line(self, *, newline: bool) -> None:
        if self._target is not None and self._started and self._held == self._target:
            self.removed += 1
        else:
            if self._started:
                self.kept_records = True
            self._write(self._held)
            if newline:
                self._write(b"\n")
        self._held = bytearray()
        self._started = False
        self._index += 1
        self._target = self._lines.get(self._index)

    def _write(self, data: bytes | bytearray | memoryview) -> None:
        self._buffer += data
        if len(self._buffer) >= _CHUNK:
            self._flush()

    def _flush(self) -> None:
        view = memoryview(self._buffer)
        while view:
            view = view[os.write(self.out, view) :]
        view.release()
        self._buffer.clear()


def _create_private(path: Path) -> int:
    """A new file at `path` (0600), never through a link: whatever is at its name (a stale
    temp file, a planted link) is unlinked first, never written through."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        return os.open(path, flags, 0o600)
    except FileExistsError:
        os.unlink(path)
        return os.open(path, flags, 0o600)


# -- helpers ----------------------------------------------------------------------------


def _segment_path(directory: Path, day: str, number: int) -> Path:
    return directory / (f"{day}.ndjson" if number == 0 else f"{day}.{number}.ndjson")


def _day_files(directory: Path) -> list[tuple[str, int, Path]]:
    found = []
    try:
        entries = list(directory.iterdir())
    except FileNotFoundError:
        return []
    for path in entries:
        match = _NAME.match(path.name)
        if match and _is_regular(path):  # a link, a FIFO, a directory: not the agent's
            found.append((match.group(1), int(match.group(2) or 0), path))
    return sorted(found)


def _is_regular(path: Path) -> bool:
    """A regular file, not through a link. A FIFO at a record file's name blocked every
    reader that opened it (the agent's age bound, `status`, `dead-letters list`) forever;
    a directory raised IsADirectoryError out of them."""
    try:
        return stat.S_ISREG(path.lstat().st_mode)
    except OSError:
        return False


def count_records(directory: Path) -> int:
    """Records in the dead-letter files (lines; a torn last line counts), for `status`."""
    return sum(_count_records(path) for path, _ in _files_with_sizes(directory))


def _files_with_sizes(directory: Path) -> list[tuple[Path, int]]:
    """The record files, oldest first, with their sizes."""
    out = []
    for _, _, path in _day_files(directory):
        try:
            out.append((path, path.stat().st_size))
        except FileNotFoundError:
            continue
    return out


def _open_record_file(path: Path) -> int:
    """A descriptor reading `path`, never blocking and never through a link: OSError unless
    it is a regular file (it could have been swapped for a FIFO since it was listed)."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise FileNotFoundError(errno.ENOENT, "not a regular file", str(path))
    return fd


def _count_records(path: Path) -> int:
    try:
        fd = _open_record_file(path)
    except OSError:
        return 0
    try:
        count, position = 0, 0
        while chunk := os.pread(fd, 1 << 20, position):  # a chunk at a time: files may be big
            count += chunk.count(b"\n")
            position += len(chunk)
        return count
    except OSError:
        return 0
    finally:
        os.close(fd)


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return float("inf")


def _day(epoch: float) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(epoch))


def _iso(epoch: float) -> str:
    """``2026-11-26T01:02:03.456Z`` (UTC, milliseconds): the form events carry their time in."""
    millis = int(epoch * 1000)
    second = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(millis // 1000))
    return f"{second}.{millis % 1000:03d}Z"


def _parse_iso(text: str) -> float:
    from datetime import datetime

    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0
