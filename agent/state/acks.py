"""Out-of-order acknowledgements become in-order safe offsets."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from agent.records import FileId, Ticket


@dataclass(slots=True)
class _FileAcks:
    committed: int
    pending: deque[Ticket] = field(default_factory=deque)


class AckTracker:
    """A file's checkpoint moves to the end of a piece only when every earlier piece from that
    file is safe too: batches finish out of order, a checkpoint never skips a hole."""

    def __init__(self) -> None:
        self._files: dict[FileId, _FileAcks] = {}
        self._outstanding = 0
        self.version = 0
        """Bumped whenever a committed offset moves; lets the saver skip idle seconds."""

    def track(self, file: FileId, committed: int) -> None:
        """Start following `file`, whose safe prefix already ends at `committed`."""
        self._files[file] = _FileAcks(committed)

    def forget(self, file: FileId) -> None:
        acks = self._files.pop(file, None)
        if acks is not None:
            self._outstanding -= sum(1 for t in acks.pending if not t.done)

    def issue(self, file: FileId, end_offset: int) -> Ticket:
        ticket = Ticket(file, end_offset)
        self._files[file].pending.append(ticket)
        self._outstanding += 1
        return ticket

    def complete(self, ticket: Ticket) -> None:
        if ticket.done:
            return
        ticket.done = True
        acks = self._files.get(ticket.file)
        if acks is None:
            return  # the file was forgotten (truncated, removed); its offsets no longer matter
        self._outstanding -= 1
        moved = False
        while acks.pending and acks.pending[0].done:
            acks.committed = acks.pending.popleft().end_offset
            moved = True
        if moved:
            self.version += 1

    def committed(self, file: FileId) -> int:
        return self._files[file].committed

    def outstanding(self) -> int:
        """Tickets issued and not yet safe, over all files."""
        return self._outstanding

    def pending_bytes(self, file: FileId) -> int:
        acks = self._files[file]
        return acks.pending[-1].end_offset - acks.committed if acks.pending else 0
