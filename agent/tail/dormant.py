"""Checkpoints of files not tracked now: gone from their globs, or not found yet since start.

A file that comes back, or turns up under another name, is claimed by its first bytes and
resumed where it was safe; a record not seen for a week is forgotten.
"""

from __future__ import annotations

import os

from agent.state.checkpoint import FileCheckpoint
from agent.tail.compare import line_start, same_file, still_in_place, truncated_nearby
from agent.tail.fingerprint import Fingerprint, FingerprintIndex

DORMANT_KEEP_SECS = 7 * 86400  # how long to remember a file that went away


class Dormant:
    """The records, numbered in the order they were kept, with an index by fingerprint."""

    def __init__(self) -> None:
        self._records: dict[int, FileCheckpoint] = {}
        self._next = 0
        self._index: FingerprintIndex[int] | None = None

    def __repr__(self) -> str:
        return f"<Dormant records={len(self._records)}>"

    def __len__(self) -> int:
        return len(self._records)

    def __getitem__(self, number: int) -> FileCheckpoint:
        return self._records[number]

    def items(self) -> list[tuple[int, FileCheckpoint]]:
        return list(self._records.items())

    def remember(self, record: FileCheckpoint) -> None:
        self._next += 1
        self._records[self._next] = record
        self._index = None

    def take(self, number: int) -> FileCheckpoint:
        self._index = None
        return self._records.pop(number)

    def claim(self, fd: int, stat: os.stat_result, data: bytes) -> FileCheckpoint | None:
        """The record of the content open on `fd` (whose head is `data`), taken off the list.

        Content decides, the inode breaks ties. A record of another inode is only taken when
        its own file is still where it was (so this one is its copy, e.g. copytruncate while
        stopped), or was renamed within its directory and no longer holds that content
        (copytruncate, then rotated by rename, while stopped): a deleted file's record must
        not make a newcomer that begins alike skip.
        """
        if self._index is None:
            self._index = FingerprintIndex()
            for number, record in self._records.items():
                self._index.add(Fingerprint(record.fingerprint, record.fingerprint_len), number)
        found = [n for n in self._index.matching(data) if n in self._records]
        same = [n for n in found if same_file(self._records[n], stat)]
        pool = same or [n for n in found if still_in_place(self._records[n])]
        pool = [n for n in pool if line_start(fd, self._records[n].offset, stat.st_size)]
        if not pool and not same:  # the original renamed too, after copytruncate: a copy
            fits = [n for n in found if line_start(fd, self._records[n].offset, stat.st_size)]
            truncated = truncated_nearby([self._records[n] for n in fits])
            pool = [n for n in fits if self._records[n] in truncated]
        if not pool:
            return None
        return self.take(pool[0])  # longest fingerprint first

    def records(self, now: float) -> list[FileCheckpoint]:
        """Every record kept; those not seen for DORMANT_KEEP_SECS are forgotten now."""
        stale = [n for n, d in self._records.items() if now - d.seen_at >= DORMANT_KEEP_SECS]
        for number in stale:
            del self._records[number]
        return list(self._records.values())
