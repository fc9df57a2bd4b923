"""What parsed sources need from the tailer beyond reading: stable ids, and rotations that
carry held lines from a container's old file to its new one without breaking at-least-once.

A rotation hand-over moves a ``P`` fragment (or a held stack trace) from the old file's
assembler to the new file's, where it is joined with what follows. The old file's checkpoint
must not pass those lines until the record they end up in is safe, so the old file gets one
more ticket, a `Link`, that is done only when every ticket the new file issued up to and
including the release of the inherited lines is done. A crash before that re-reads the
held lines from the old file (if the include globs still find it; see README).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field

from agent.records import FileId, Ticket
from agent.tail.fingerprint import FINGERPRINT_BYTES


def event_identity(fd: int) -> str:
    """A file's identity for event ids: the digest of its first line (at most 1 KiB).

    The tailer's fingerprint grows with a young file (< 1 KiB) and would change the ids of
    lines already sent; the first line is complete before any event of the file exists and
    never changes, so the same line re-read after a crash gets the same id. Two files whose
    first lines are identical byte for byte share ids at equal offsets (a first line carrying
    a timestamp makes that rare).
    """
    head = os.pread(fd, FINGERPRINT_BYTES, 0)
    newline = head.find(b"\n")
    first = head if newline < 0 else head[: newline + 1]
    return hashlib.blake2b(first, digest_size=8).hexdigest()


@dataclass(slots=True, eq=False)
class Link:
    """The old file's last stretch (`ticket`), safe once the heir's record carrying the
    inherited lines is: `collecting` while they are held, then waiting for `waits_for`."""

    ticket: Ticket
    heir: FileId
    at: int  # where the inherited lines were placed in the heir
    collecting: bool = True
    waits_for: list[Ticket] = field(default_factory=list)

    def __repr__(self) -> str:
        state = "collecting" if self.collecting else f"waiting={len(self.waits_for)}"
        return f"<Link {self.ticket} heir={self.heir} at={self.at} {state}>"

    def observe(self, ticket: Ticket) -> None:
        """A ticket the heir issued: while collecting, the inherited lines may be in it."""
        if self.collecting:
            self.waits_for.append(ticket)

    def released(self, pending_offset: int | None) -> None:
        """After the heir shipped: once nothing at or before `at` is held, stop collecting."""
        if pending_offset is None or pending_offset > self.at:
            self.collecting = False

    @property
    def safe(self) -> bool:
        return not self.collecting and all(t.done for t in self.waits_for)
