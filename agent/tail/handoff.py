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
from collections.abc import Mapping
from dataclasses import dataclass, field

import structlog

from agent.config import SourceConfig
from agent.encode import CarriesHeld, LineEncoder
from agent.parse.settings import needs_parsing
from agent.records import FileId, Ticket
from agent.state.acks import AckTracker
from agent.tail.fingerprint import FINGERPRINT_BYTES
from agent.tail.reader import Key, Reader

log = structlog.get_logger("agent.tailer")


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


class Handoffs:
    """Which new files inherit from which old ones (`heirs`), and the old files' last
    tickets (`Link`) until what they handed over is safe in the heirs."""

    def __init__(self, acks: AckTracker) -> None:
        self._acks = acks
        self._heirs: dict[FileId, Key] = {}  # a new file -> its container's previous file
        self._links: list[Link] = []  # rotated files' last stretches, waiting for their heirs

    def __repr__(self) -> str:
        return f"<Handoffs heirs={len(self._heirs)} links={len(self._links)}>"

    def opened(
        self, source: SourceConfig, new: Reader, readers: Mapping[Key, Reader], *, first_scan: bool
    ) -> None:
        """A new file of a container whose previous file is tracked: a rotation. Its held
        lines move over before the new file is first read (`take_heir`).

        Not at the first scan: then old and new files are found together and which came
        first is unknown; each is read on its own (nothing is lost, a fragment split by the
        rotation arrives as two events).
        """
        if first_scan or not needs_parsing(source):
            return
        from agent.parse.kubernetes import container_key  # the parsing library, when used

        wanted = container_key(new.path)
        for other_key, other in readers.items():
            same = other.source == source.name and container_key(other.path) == wanted
            if same and other_key != new.key:
                self._heirs[new.file_id] = other_key
                return

    def take_heir(self, file_id: FileId) -> Key | None:
        """The previous file `file_id` inherits from, once (None: not an heir)."""
        return self._heirs.pop(file_id, None)

    def hand_over(
        self, old: Reader, previous: LineEncoder, heir: Reader, encoder: LineEncoder
    ) -> None:
        """Move what `previous` (the old file's encoder, read to its end) holds to the heir's
        encoder; the old file gets a `Link` ticket over the moved lines, done only once the
        heir's record carrying them is safe: until then its checkpoint stays before them."""
        if not isinstance(previous, CarriesHeld) or not isinstance(encoder, CarriesHeld):
            return
        encoder.restore(previous.hand_over())
        link = Link(self._acks.issue(old.file_id, old.offset), heir.file_id, heir.offset)
        self._links.append(link)
        log.info("held_lines_handed_over", path=old.path, to=heir.path, offset=old.offset)

    def observe(self, file_id: FileId, ticket: Ticket) -> None:
        """A ticket `file_id` issued: an heir's inherited lines may be in it."""
        for link in self._links:
            if link.heir == file_id:
                link.observe(ticket)

    def released(self, file_id: FileId, pending_offset: int | None) -> None:
        """`file_id`'s encoder shipped and now holds from `pending_offset` (None: nothing)."""
        for link in self._links:
            if link.heir == file_id:
                link.released(pending_offset)

    def settle(self, tracked: set[FileId]) -> None:
        """Complete the old files' last tickets whose heirs' records are safe (or whose
        heirs are no longer `tracked`, once every ticket they issued is done)."""
        for link in list(self._links):
            heir_gone = link.heir not in tracked
            if link.safe or (heir_gone and all(t.done for t in link.waits_for)):
                self._acks.complete(link.ticket)
                self._links.remove(link)

    def forget(self, alive: set[FileId]) -> None:
        for file_id in [f for f in self._heirs if f not in alive]:
            del self._heirs[file_id]
