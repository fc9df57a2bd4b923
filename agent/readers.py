"""Which sources each reader takes, and the journald sources as the runtime holds them: built
and imported (`agent.journal`, its `journalctl` child handling, ctypes) only once the config
has a journald source, at start or at a reload. A file-only agent never loads that code.

`LazyJournals` has the surface of `agent.journal.runner.JournalSources` (`run_with`, `save`,
`snapshot`, `reconfigure`). Its `run_with(tail)` runs the tailer in one group and, once there
are journald sources, their `JournalSources.run_with` beside it, so cancelling that one task
still stops all reading.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.config import SourceConfig
from agent.records import Piece
from agent.snapshots import SourceSnapshot
from agent.state.acks import AckTracker
from agent.state.deadletter import DeadLetters

if TYPE_CHECKING:
    from agent.journal.runner import JournalSources


def file_sources(sources: Iterable[SourceConfig]) -> list[SourceConfig]:
    """What the tailer reads: every source but the journald ones."""
    return [source for source in sources if source.type != "journald"]


def has_journald(sources: Iterable[SourceConfig]) -> bool:
    return any(source.type == "journald" for source in sources)


class LazyJournals:
    """The journald sources: nothing until the first one is configured."""

    def __init__(
        self,
        sources: Iterable[SourceConfig],
        data_dir: Path,
        *,
        acks: AckTracker,
        dead_letters: DeadLetters,
        emit: Callable[[Piece], Awaitable[None]],
        piece_bytes: int,
    ) -> None:
        self._data_dir = data_dir
        self._acks = acks
        self._dead_letters = dead_letters
        self._emit = emit
        self._group: asyncio.TaskGroup | None = None
        self._once = False
        self.journals: JournalSources | None = None
        sources = list(sources)
        if has_journald(sources):
            self.journals = self._build(sources, piece_bytes)

    def __repr__(self) -> str:
        return f"<LazyJournals {self.journals!r}>"

    def _build(self, sources: list[SourceConfig], piece_bytes: int) -> JournalSources:
        from agent.journal.runner import JournalSources

        return JournalSources(
            sources,
            self._data_dir,
            acks=self._acks,
            dead_letters=self._dead_letters,
            emit=self._emit,
            piece_bytes=piece_bytes,
        )

    async def run_with(self, tail: Coroutine[Any, Any, None], *, once: bool) -> None:
        """The tailer's `run` and, when there are any, the journald readers, in one group.
        `once`: each reader ends at the journal's end as it is when it starts."""
        self._once = once
        try:
            async with asyncio.TaskGroup() as group:
                self._group = group
                group.create_task(tail)
                if self.journals is not None:
                    self._launch(self.journals)
        finally:
            self._group = None

    def _launch(self, journals: JournalSources) -> None:
        assert self._group is not None
        # Following, its group stays open for sources a reload adds, until reading stops;
        # with --once it ends when its readers reach the journal's end.
        held: Coroutine[Any, Any, Any] = asyncio.sleep(0) if self._once else asyncio.Event().wait()
        self._group.create_task(journals.run_with(held, once=self._once))

    def save(self) -> None:
        if self.journals is not None:
            self.journals.save()

    def snapshot(self) -> tuple[SourceSnapshot, ...]:
        return self.journals.snapshot() if self.journals is not None else ()

    def reconfigure(self, sources: Iterable[SourceConfig], piece_bytes: int) -> None:
        """A reload: the first journald source builds and starts them; later ones go to
        `JournalSources.reconfigure` (added, replaced, removed)."""
        if self.journals is not None:
            self.journals.reconfigure(sources, piece_bytes)
            return
        sources = list(sources)
        if not has_journald(sources):
            return
        self.journals = self._build([], piece_bytes)
        self.journals.reconfigure(sources, piece_bytes)  # builds them, saying so in the log
        if self._group is not None:
            self._launch(self.journals)
