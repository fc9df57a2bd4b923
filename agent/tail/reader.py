"""One open file: whole lines from a start offset, a partial last line held back."""

from __future__ import annotations

import os
from dataclasses import dataclass

from agent.records import FileId
from agent.tail.fingerprint import Fingerprint, fingerprint

CHUNK_BYTES = 1 << 20


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
    """A line over the limit: its head, where it starts, and where reading resumes."""

    head: bytes
    start: int
    resume_at: int | None  # None while its newline has not been seen yet


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
        self.fd = fd
        self.offset = offset
        self.fingerprint = fp
        self.max_line_bytes = max_line_bytes
        stat = os.fstat(fd)
        self.dev, self.ino = stat.st_dev, stat.st_ino
        self.held = 0  # bytes of a partial last line waiting for its newline
        self.missing_since: float | None = None  # monotonic time its globs stopped finding it
        self._skipping_from: int | None = None  # start of an over-long line being skipped
        self._chunk = max(CHUNK_BYTES, max_line_bytes + 1)

    def __repr__(self) -> str:
        return f"<Reader {self.path} offset={self.offset} held={self.held}>"

    def size(self) -> int:
        return os.fstat(self.fd).st_size

    def deleted(self) -> bool:
        return os.fstat(self.fd).st_nlink == 0

    def read(self) -> Block | LongLine | None:
        """The next whole lines, an over-long line to dead-letter, or None at the end."""
        size = self.size()
        if size < self.offset:
            raise Truncated(f"{self.path}: size {size} < offset {self.offset}")
        if size == self.offset:
            self.held = 0
            return None
        data = os.pread(self.fd, min(self._chunk, size - self.offset), self.offset)
        if self._skipping_from is not None:
            return self._skip(data)
        cut = data.rfind(b"\n") + 1
        if cut == 0:
            self.held = len(data)
            if len(data) > self.max_line_bytes:
                return self._start_skip(data)
            return None
        first = data.find(b"\n")
        if first > self.max_line_bytes:
            return self._start_skip(data)
        start = self.offset
        self.offset += cut
        self.held = len(data) - cut
        self._refresh_fingerprint()
        return Block(data[:cut], start)

    def _start_skip(self, data: bytes) -> LongLine | None:
        self._skipping_from = self.offset
        return self._skip(data, head=data[: self.max_line_bytes])

    def _skip(self, data: bytes, head: bytes = b"") -> LongLine | None:
        start = self._skipping_from
        assert start is not None
        newline = data.find(b"\n")
        if newline == -1:
            self.offset += len(data)  # in memory only: the checkpoint stays at `start`
            return LongLine(head, start, None) if head else None
        self.offset += newline + 1
        self._skipping_from = None
        return LongLine(head, start, self.offset)

    def rewind(self, file_id: FileId) -> None:
        """Start over at byte 0 as a new file: it was truncated in place."""
        self.file_id = file_id
        self.offset = 0
        self.held = 0
        self._skipping_from = None
        self.fingerprint = fingerprint(self.fd, self.size())

    def _refresh_fingerprint(self) -> None:
        """A young file's fingerprint grows with it, up to its full length."""
        if not self.fingerprint.complete:
            self.fingerprint = fingerprint(self.fd, self.size())

    def close(self) -> None:
        os.close(self.fd)
