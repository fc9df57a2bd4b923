"""Looking at files to tell them apart: the same content under another name, a copy that
copytruncate made, a checkpoint's content moved while the agent was stopped.

These only look (stat, pread, a directory listing) and never change anything; the decisions
are `agent.tail.identity.Identity`'s.
"""

from __future__ import annotations

import os

from agent.state.checkpoint import FileCheckpoint
from agent.tail.fingerprint import Fingerprint, starts_with
from agent.tail.handoff import event_identity
from agent.tail.reader import Reader

TAIL_COMPARE_BYTES = 4096  # bytes compared to tell a copy from a file that begins alike


def identity_of(reader: Reader) -> str:
    try:
        return event_identity(reader.fd)
    except OSError:  # closed: only records released by a timeout can ask, ids best effort
        return ""


def head_of(reader: Reader) -> bytes:
    """The file's first bytes (a BOM's at most), b"" once it is closed."""
    try:
        return os.pread(reader.fd, 4, 0)
    except OSError:
        return b""


def same_file(record: FileCheckpoint, stat: os.stat_result) -> bool:
    return (record.dev, record.ino) == (stat.st_dev, stat.st_ino)


def still_in_place(record: FileCheckpoint) -> bool:
    """Whether the file a record was taken from is still at its path (so others are copies)."""
    try:
        return same_file(record, os.stat(record.path))
    except OSError:
        return False


def truncated_nearby(records: list[FileCheckpoint]) -> list[FileCheckpoint]:
    """Those of `records` whose own file was renamed within its directory and no longer
    holds the content checkpointed: copytruncate, then a rotation by rename, while the agent
    was stopped (`app.log` copied to `app.log.1` and truncated, then renamed to `app.log.2`).
    A file beginning like such a record is its copy, as when the original is still in place.

    One directory listing per directory (`by_inode`); each inode found is opened and checked
    for device, inode and content. An original still holding the content was merely renamed:
    it is its own record's, and a file beginning like it is not a copy of a truncated file.
    """
    wanted: dict[str, list[FileCheckpoint]] = {}
    for record in records:
        wanted.setdefault(os.path.dirname(record.path), []).append(record)
    found: list[FileCheckpoint] = []
    for directory, kept in wanted.items():
        paths = by_inode(directory, {r.ino for r in kept})
        for record in kept:
            if any(_truncated_at(record, path) for path in paths.get(record.ino, [])):
                found.append(record)
    return found


def _truncated_at(record: FileCheckpoint, path: str) -> bool:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        stat = os.fstat(fd)
        if not same_file(record, stat):
            return False
        known = Fingerprint(record.fingerprint, record.fingerprint_len)
        return stat.st_size < record.offset or not starts_with(fd, known)
    except OSError:
        return False
    finally:
        os.close(fd)


def line_start(fd: int, offset: int, size: int) -> bool:
    """A checkpoint offset is always a line start; in another content it rarely is."""
    return offset == 0 or offset > size or os.pread(fd, 1, offset - 1) == b"\n"


def diverges(fd: int, size: int, original: Reader) -> bool:
    """Whether a file beginning like `original` differs from it after all (not a copy).

    While the original still holds what was read, a copy of it is never longer than it and
    ends with the bytes the original has at that position. Once the original is truncated
    (the next read will find out) any file beginning like it may be its copy.
    """
    if not original.is_open:
        return False  # cannot tell cheaply; the copy wait decides
    try:
        original_size = original.size()
        if original_size < original.offset or not original.unchanged():
            return False
        if original_size < size:
            return True
        count = min(size, TAIL_COMPARE_BYTES)
        return os.pread(fd, count, size - count) != os.pread(original.fd, count, size - count)
    except OSError:
        return False


def last_line_end(fd: int, size: int) -> int:
    """Where the last complete line ends: `start_at = "end"` must not begin mid-line."""
    tail = os.pread(fd, min(size, 65536), max(0, size - 65536))
    newline = tail.rfind(b"\n")
    return size if newline == -1 else size - len(tail) + newline + 1


MOVED_SCAN_ENTRIES = 100_000
"""Directory entries looked at per directory when looking for files renamed while stopped:
a directory of millions of files must not hold the start (the lookup is by inode, from the
directory listing, without a stat per entry)."""


def by_inode(directory: str, inodes: set[int]) -> dict[int, list[str]]:
    """The paths in `directory` of the given inodes: where files renamed within their
    directory while the agent was stopped are now (rotated to a name their globs no longer
    find). One listing per directory, however many records live in it.

    Only inodes are compared, from the listing; the caller opens each path and checks
    device, inode and content (`is_moved`): the listing may be stale, and an inode may have
    been reused by another content.
    """
    found: dict[int, list[str]] = {}
    try:
        with os.scandir(directory or ".") as entries:
            for number, entry in enumerate(entries):
                if number >= MOVED_SCAN_ENTRIES:
                    break
                if entry.inode() in inodes:
                    found.setdefault(entry.inode(), []).append(entry.path)
    except OSError:
        pass
    return found


def is_moved(record: FileCheckpoint, fd: int, stat: os.stat_result) -> bool:
    """Whether open file `fd` is the content `record` was taken from, grown past it.

    Same device and inode, same first bytes (a record of an empty file has none to check:
    its offset is 0, so reading it from there loses and repeats nothing), the offset a line
    start, and bytes after it to read.
    """
    if not same_file(record, stat) or stat.st_size <= record.offset:
        return False
    known = Fingerprint(record.fingerprint, record.fingerprint_len)
    if known.length and not starts_with(fd, known):
        return False
    return line_start(fd, record.offset, stat.st_size)
