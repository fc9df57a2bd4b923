"""The journald sources as one component of the running agent (what the runtime builds).

    JournalReader ──► JournalPiece ──► emit: ticket (CursorTracker) + dead letters ──► queue
                                                      │
    <data_dir>/journal/<source>.cursor ◄── save() ◄───┘ committed: only safe cursors

One `SourceRun` per ``type = "journald"`` source: its reader, its cursor tracker over the
shared `AckTracker` (a negative `FileId` per source, never one of the tailer's) and its
cursor file. `run_with(tail)` runs the tailer and every reader in one group, so the runtime's
"stop reading" (cancelling that task) stops both: a reader cancelled while its emit waits
for room in the queue kills its child on the way out (`JournalReader._run_child`); a piece
whose put was cancelled never reached the queue, and its ticket stays open, so its cursor
is never saved (read again at the next start). `save()` is called with the file checkpoints,
after the dead letters were synced. `reconfigure` adds, replaces and removes sources while
running (SIGHUP).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from pathlib import Path
from typing import Any, Final

import structlog

from agent.config import Config, Problem, SourceConfig
from agent.journal.cursor import CursorFileError, CursorStore, CursorTracker
from agent.journal.event import EntryEncoder, JournalPiece
from agent.journal.reader import JournalctlMissing, JournalReader, find_journalctl
from agent.records import FileId, LineStarts, Origin, Piece
from agent.snapshots import SourceSnapshot
from agent.state.acks import AckTracker
from agent.state.deadletter import DeadLetters
from agent.state.files import UnsafeState, private_dir

log = structlog.get_logger("agent.journal")

JOURNAL_DIR: Final = "journal"
"""Inside data_dir: one ``<source>.cursor`` per journald source."""

Emit = Callable[[Piece], Awaitable[None]]


def journald_sources(sources: Iterable[SourceConfig]) -> list[SourceConfig]:
    return [source for source in sources if source.type == "journald"]


def journalctl_problems(config: Config) -> list[Problem]:
    """`check`: a journald source on a host without journalctl, named by its key."""
    problems = []
    for index, source in enumerate(config.sources):
        if source.type == "journald":
            try:
                find_journalctl()
            except JournalctlMissing as missing:
                problems.append(Problem(f"sources[{index}]", f"{source.name!r}: {missing}"))
    return problems


class SourceRun:
    """One journald source while it runs: reader, cursors, cursor file, its own stop."""

    def __init__(
        self,
        source: SourceConfig,
        file: FileId,
        store: CursorStore,
        acks: AckTracker,
        *,
        piece_bytes: int,
        follow: bool,
        journalctl: str,
    ) -> None:
        self.source = source
        self.store = store
        try:
            saved = store.load()
        except CursorFileError as error:  # not ours or another version: read from the start
            log.warning("journal_cursor_unusable", source=source.name, error=str(error))
            saved = None
        self.saved = saved
        self.cursors = CursorTracker(acks, file, committed=saved)
        encoder = EntryEncoder(
            source,
            time_field=source.time_field,
            fields=source.fields,
            piece_bytes=piece_bytes,
            late_window=source.late_window,
            early_window=source.early_window,
            event_id=source.event_id,
        )
        self.reader = JournalReader(
            source.name, source, encoder, resume=saved, journalctl=journalctl, follow=follow
        )
        self.stop = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        return f"<SourceRun {self.source.name} {self.reader!r}>"

    def save(self) -> None:
        cursor = self.cursors.committed()
        if cursor is not None and cursor != self.saved and self.store.save(cursor):
            self.saved = cursor  # not when the disk refused it: the next save tries again

    def snapshot(self) -> SourceSnapshot:
        stats = self.reader.stats
        return SourceSnapshot(
            name=self.source.name,
            lines_read=stats.entries,
            bytes_read=stats.bytes,
            checkpoint_lag_bytes=0,
            open_files=0,
            files=0,
            parsing={"invalid_bytes": stats.invalid_utf8, "unreadable": stats.unreadable},
            events=stats.events,
            journal={
                "entries": stats.entries,
                "cursor_lag_pieces": self.cursors.pending(),
                "child_restarts": stats.restarts,
                "cursor_gaps": stats.cursor_gaps,
                "excluded": stats.skipped,
                "child_running": int(self.reader.pid is not None),
            },
        )


class JournalSources:
    """Every journald source of the config; the runtime's one handle on them."""

    def __init__(
        self,
        sources: Iterable[SourceConfig],
        data_dir: Path,
        *,
        acks: AckTracker,
        dead_letters: DeadLetters,
        emit: Emit,
        piece_bytes: int,
        journalctl: str = "journalctl",
    ) -> None:
        self._dir = data_dir / JOURNAL_DIR
        self._acks = acks
        self._dead_letters = dead_letters
        self._emit = emit
        self._piece_bytes = piece_bytes
        self._journalctl = journalctl
        self._next_file = -1
        self._follow = True
        self._group: asyncio.TaskGroup | None = None
        self._retired: list[SourceRun] = []  # removed on reload, saved once more then dropped
        self.runs: dict[str, SourceRun] = {}
        for source in journald_sources(sources):
            self.runs[source.name] = self._build(source)

    def __repr__(self) -> str:
        return f"<JournalSources {sorted(self.runs)}>"

    def _build(self, source: SourceConfig) -> SourceRun:
        private_dir(self._dir)  # 0700, the agent's own, never a link (UnsafeState)
        file, self._next_file = FileId(self._next_file), self._next_file - 1
        store = CursorStore(str(self._dir / f"{source.name}.cursor"), source.name)
        return SourceRun(
            source,
            file,
            store,
            self._acks,
            piece_bytes=self._piece_bytes,
            follow=self._follow,
            journalctl=self._journalctl,
        )

    async def run_with(self, tail: Coroutine[Any, Any, None], *, once: bool) -> None:
        """The tailer's `run` and every reader, in one group: cancelling this task stops all
        reading. `once`: each reader ends at the journal's end as it is when it starts."""
        self._follow = not once
        async with asyncio.TaskGroup() as group:
            self._group = group
            group.create_task(tail)
            for run in list(self.runs.values()):
                if once:  # built before `once` was known: readers without --follow
                    run = self.runs[run.source.name] = self._rebuilt(run)
                self._start(run)
        self._group = None

    def _rebuilt(self, run: SourceRun) -> SourceRun:
        self._acks.forget(run.cursors.file)
        return self._build(run.source)

    def _start(self, run: SourceRun) -> None:
        assert self._group is not None
        run.task = self._group.create_task(self._read(run), name=f"journal-{run.source.name}")

    async def _read(self, run: SourceRun) -> None:
        async def emit(piece: JournalPiece) -> None:
            if run.stop.is_set():  # removed by a reload: its tickets are forgotten
                return
            for rejected in piece.rejected:  # before the ticket: written before it is safe
                self._dead_letters.write(
                    rejected.reason, f"journal:{run.source.name}", 0, rejected.data, rejected.cursor
                )
            ticket = run.cursors.issue(piece.cursor)
            if not piece.events:
                self._acks.complete(ticket)  # nothing to send (excluded or dead-lettered)
                return
            origin = Origin(f"journal:{run.source.name}", LineStarts(piece.data, 0))
            connection = run.source.connection or ""
            await self._emit(Piece(piece.data, piece.events, ticket, origin, connection))

        try:
            await run.reader.run(run.stop, emit)
        except JournalctlMissing as missing:  # `check` says so too; the other sources go on
            log.error("journal_source_failed", source=run.source.name, error=str(missing))

    def save(self) -> None:
        """Write each source's cursor that moved (only safe ones: `CursorTracker`)."""
        for run in [*self.runs.values(), *self._retired]:
            run.save()
        for run in [r for r in self._retired if not r.cursors.pending()]:
            self._retired.remove(run)
            run.cursors.forget()

    def snapshot(self) -> tuple[SourceSnapshot, ...]:
        return tuple(run.snapshot() for run in self.runs.values())

    def reconfigure(self, sources: Iterable[SourceConfig], piece_bytes: int) -> None:
        """A reload: new sources start, removed ones stop (their cursor saved once more when
        what they sent is safe), changed ones restart from their last safe cursor."""
        self._piece_bytes = piece_bytes
        wanted = {source.name: source for source in journald_sources(sources)}
        for name, run in list(self.runs.items()):
            if wanted.get(name) != run.source:
                run.stop.set()
                del self.runs[name]
                run.save()
                self._retired.append(run)
                log.info("journal_source_stopped", source=name)
        for name, source in wanted.items():
            if name not in self.runs:
                replaced = next((r for r in self._retired if r.source.name == name), None)
                if replaced is not None:  # read on from its last safe cursor, in a new child
                    with contextlib.suppress(ValueError):
                        self._retired.remove(replaced)
                    self._acks.forget(replaced.cursors.file)
                try:
                    run = self.runs[name] = self._build(source)
                except UnsafeState as unsafe:  # running and shipping: this source, not all
                    log.error("journal_source_failed", source=name, error=str(unsafe))
                    continue
                if self._group is not None:
                    self._start(run)
                log.info("journal_source_started", source=name, resume=run.saved)
