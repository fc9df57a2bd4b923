"""One open file: whole lines from a start offset, a partial last line held back."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

from agent.records import FileId
from agent.tail.fingerprint import Fingerprint, fingerprint, starts_with

CHUNK_BYTES = 368_000
"""Three pieces of a full-size batch a read (see agent.encode.PIECES_PER_BATCH), and more than
the default longest line: big enough for few calls, small enough not to weigh on the
footprint. A little under three times 125,000: the encoder cuts each piece at a newline, so
three pieces hold a few lines less than that, and a read of exactly 375,000 bytes left a
fourth piece of a few lines after every read (10.2 pieces per MB on the bench's JSON, 2.2 of
them tiny, each paying a ticket, a queue hand-off and a batch slot; 8.2 with this margin of
about 20 lines of 350 bytes)."""

LONG_LINE_HEAD_BYTES = 1024
"""What a dead letter keeps of an over-long line: enough to recognise it, whatever the line
limit (also at max_line_bytes = 0 or 1, where the limit itself would keep nothing)."""

SKIP_READ_BYTES = 1 << 20
"""One pread while skipping an over-long line: the line is read through, never held."""

Key = tuple[int, int]
"""(st_dev, st_ino): which file a path leads to right now."""

SKIP_BYTES_PER_CALL = 16 << 20
"""At most this much of an over-long line is skipped per `read()` (milliseconds from the page
cache): a 10 GB line must not hold the event loop. The call reports progress, the tailer
yields, and the next call goes on at once (no scan interval in between)."""


@dataclass(frozen=True, slots=True)
class Block:
    """Whole lines (each ending in a newline) read from `start` to `end`."""

    data: bytes
    start: int

    @property
    def end(self) -> int:
        return self.start + len(self.data)


@dataclass(frozen=True, slots=True)
class LongLine:
    """A line over the limit, skipped without being held: its head, where it starts, how
    long it is (so far), and where reading resumes.

    `resume_at` is None while its newline has not been seen yet (the file ends inside it, or
    the call's skip budget ran out): progress to report, nothing to dead-letter yet.
    """

    head: bytes  # its first LONG_LINE_HEAD_BYTES bytes
    start: int
    length: int  # bytes before its newline (skipped so far, while resume_at is None)
    resume_at: int | None

    @property
    def complete(self) -> bool:
        return self.resume_at is not None


class ClosedError(OSError):
    """The reader gave its descriptor back (inactive, or over the open-file cap)."""


class Truncated(Exception):
    """The file shrank below what was read: copytruncate, or a writer starting over."""


class Reader:
    """Owns one file descriptor and `offset`, the next byte to read: always a line start."""

    def __init__(
        self,
        file_id: FileId,
        source: str,
        path: str,
        fd: int,
        offset: int,
        fp: Fingerprint,
        *,
        max_line_bytes: int,
    ) -> None:
        self.file_id = file_id
        self.source = source
        self.path = path
        self._fd: int | None = fd
        self.offset = offset
        self.fingerprint = fp
        stat = os.fstat(fd)
        self.dev, self.ino = stat.st_dev, stat.st_ino
        self.held = 0  # bytes of a partial last line waiting for its newline
        self.missing_since: float | None = None  # monotonic time its globs stopped finding it
        self.last_active = time.monotonic()  # when lines were last read (or it was opened)
        self.closed_stat: tuple[int, int] = (stat.st_size, stat.st_mtime_ns)  # size, mtime
        self.last_size = stat.st_size  # as last seen (by fstat, or by the scan while closed)
        self.unread = False  # closed with bytes after `offset` that still need reading
        self._skipping_from: int | None = None  # start of an over-long line being skipped
        self._skip_head = b""  # its first bytes, for the dead letter once its end is seen
        self._checked_mtime: int | None = None  # mtime at which unchanged() last held
        self.set_max_line_bytes(max_line_bytes)

    def __repr__(self) -> str:
        state = "open" if self._fd is not None else "closed"
        return f"<Reader {self.path} offset={self.offset} held={self.held} {state}>"

    @property
    def fd(self) -> int:
        if self._fd is None:
            raise ClosedError(f"{self.path} is closed")
        return self._fd

    @property
    def key(self) -> Key:
        return (self.dev, self.ino)

    @property
    def is_open(self) -> bool:
        return self._fd is not None

    def set_max_line_bytes(self, max_line_bytes: int) -> None:
        """A reloaded source may change its line limit; reading goes on with the new one."""
        self.max_line_bytes = max_line_bytes
        self._chunk = max(CHUNK_BYTES, max_line_bytes + 1)

    def size(self) -> int:
        return os.fstat(self.fd).st_size

    def deleted(self) -> bool:
        return os.fstat(self.fd).st_nlink == 0

    def unchanged(self) -> bool:
        """Whether the file still holds what was read: truncated and refilled past `offset`
        before we looked (copytruncate racing a busy writer), its size alone would not tell.

        Two reads per call that finds new data, none per line: the first bytes must still be
        the fingerprint's and the byte before `offset` must still end a line.
        """
        if self.fingerprint.length and not starts_with(self.fd, self.fingerprint):
            return False
        if self.offset == 0 or self._skipping_from is not None:
            return True
        return os.pread(self.fd, 1, self.offset - 1) == b"\n"

    def changed_since_close(self, stat: os.stat_result) -> bool:
        """Whether a closed file looks different now (grew, shrank or was rewritten)."""
        return (stat.st_size, stat.st_mtime_ns) != self.closed_stat

    def read(self) -> Block | LongLine | None:
        """The next whole lines, an over-long line to dead-letter, or None at the end."""
        stat = os.fstat(self.fd)
        size = stat.st_size
        if size < self.offset:
            raise Truncated(f"{self.path}: size {size} < offset {self.offset}")
        if stat.st_mtime_ns != self._checked_mtime:  # written to since the last look
            if not self.unchanged():
                raise Truncated(f"{self.path}: rewritten below offset {self.offset}")
            self._checked_mtime = stat.st_mtime_ns
        if size == self.offset:
            self.held = 0
            return None
        if self._skipping_from is not None:
            return self._skip(size)
        data = os.pread(self.fd, min(self._chunk, size - self.offset), self.offset)
        first = data.find(b"\n")
        if first > self.max_line_bytes or (first == -1 and len(data) > self.max_line_bytes):
            return self._start_skip(data, size)
        cut = data.rfind(b"\n") + 1
        if cut == 0:
            self.held = len(data)
            return None
        cut = _before_long_line(data, cut, self.max_line_bytes)  # the next read skips it
        start = self.offset
        self.offset += cut
        self.held = len(data) - cut
        self.last_active = time.monotonic()
        self._refresh_fingerprint()
        return Block(data[:cut], start)

    @property
    def line_offset(self) -> int:
        """Where the line being read starts: `offset`, or the start of a line being skipped
        (`offset` is then inside it, which no checkpoint or copy may resume at)."""
        return self.offset if self._skipping_from is None else self._skipping_from

    def _start_skip(self, data: bytes, size: int) -> LongLine | None:
        """`data` (read at `offset`) begins with a line over the limit: skip it in one pass."""
        self._skipping_from = self.offset
        newline = data.find(b"\n")
        self._skip_head = data[: LONG_LINE_HEAD_BYTES if newline == -1 else newline][
            :LONG_LINE_HEAD_BYTES
        ]
        if newline != -1:
            return self._skipped(self.offset + newline)
        self.offset += len(data)  # in memory only: no ticket until its newline is seen
        self.held = 0
        return self._skip(size) or self._skip_progress()

    def _skip(self, size: int) -> LongLine | None:
        """Read through the line being skipped, SKIP_READ_BYTES at a time, without keeping
        it: the whole line when its newline is there, else up to SKIP_BYTES_PER_CALL bytes.
        None when there was nothing more to skip (the file ends inside the line)."""
        budget = SKIP_BYTES_PER_CALL
        moved = False
        while self.offset < size and budget > 0:
            data = os.pread(self.fd, min(SKIP_READ_BYTES, size - self.offset), self.offset)
            if not data:
                break  # shrank since the fstat: the next read finds out
            newline = data.find(b"\n")
            if newline != -1:
                return self._skipped(self.offset + newline)
            self.offset += len(data)
            budget -= len(data)
            moved = True
        self.held = 0
        return self._skip_progress() if moved else None

    def _skip_progress(self) -> LongLine:
        start = self._skipping_from
        assert start is not None
        self.last_active = time.monotonic()
        return LongLine(self._skip_head, start, self.offset - start, None)

    def _skipped(self, newline_at: int) -> LongLine:
        """The skipped line ends at `newline_at`: reading resumes after it."""
        start = self._skipping_from
        assert start is not None
        line = LongLine(self._skip_head, start, newline_at - start, newline_at + 1)
        self.offset = newline_at + 1
        self.held = 0
        self._skipping_from = None
        self._skip_head = b""
        self.last_active = time.monotonic()
        self._refresh_fingerprint()
        return line

    def rewind(self, file_id: FileId) -> None:
        """Start over at byte 0 as a new file: it was truncated in place."""
        self.file_id = file_id
        self.offset = 0
        self.held = 0
        self._skipping_from = None
        self._skip_head = b""
        self._checked_mtime = None
        self.fingerprint = fingerprint(self.fd, self.size())

    def _refresh_fingerprint(self) -> None:
        """A young file's fingerprint grows with it, up to its full length."""
        if not self.fingerprint.complete:
            self.fingerprint = fingerprint(self.fd, self.size())

    def close(self) -> None:
        """Give the descriptor back; `offset` and identity stay, so it can be reopened."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            stat = os.fstat(fd)
            self.closed_stat = (stat.st_size, stat.st_mtime_ns)
            self.last_size = stat.st_size
            self.unread = stat.st_size > self.offset + self.held
        finally:
            os.close(fd)

    def reopen(self, fd: int) -> None:
        """Continue on `fd`, which the caller checked is this file (same inode and content)."""
        if self._fd is not None:
            os.close(self._fd)
        self._fd = fd
        self.unread = False
        self.last_active = time.monotonic()


def _before_long_line(data: bytes, cut: int, limit: int) -> int:
    """`cut`, or the start of the first line of `data[:cut]` longer than `limit`: every
    over-long line goes the same way (skipped, dead-lettered with its head and length).

    A jump of about `limit` bytes per step: two or three steps a chunk at the default limit.
    """
    position = 0
    while position < cut:
        newline = data.rfind(b"\n", position, min(cut, position + limit + 1))
        if newline == -1:
            return position
        position = newline + 1
    return cut
