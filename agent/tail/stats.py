"""What the tailer has read: the counters it bumps, and the frozen value it reports.

The tailer only bumps plain integers; `Tailer.snapshot()` freezes them (with the lag and the
descriptors, which it measures then) into a `TailSnapshot` that the operator-facing side
(`agent.ops`) reads: the tail never imports what presents it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from agent.snapshots import SourceSnapshot
from agent.tail.registry import Usage


@dataclass(slots=True)
class SourceStats:
    lines: int = 0  # physical lines read: events + dead-lettered + blank on the fast path
    bytes_read: int = 0
    events: int = 0  # lines (or assembled records) that became events
    read_failures: int = 0  # reads of an open file that failed (logged as read_failed)
    parsing: dict[str, int] = field(default_factory=dict)
    """The encoders' counters, summed over the source's files: unmatched, time_unparsed,
    time_missing, too_late, too_early, invalid_bytes, bom_stripped, container_unparsed,
    partial_joined, partial_flushed, multiline_joined, multiline_split."""


@dataclass(slots=True)
class TailStats:
    events: int = 0
    bytes_read: int = 0
    rejected: int = 0  # lines dead-lettered by the encoders or as too long
    blank_lines: int = 0
    unterminated_lines: int = 0  # last lines never ended, of files let go (logged each)
    sources: dict[str, SourceStats] = field(default_factory=dict)

    def source(self, name: str) -> SourceStats:
        found = self.sources.get(name)
        if found is None:
            found = self.sources[name] = SourceStats()
        return found

    def freeze(
        self, usage: Mapping[str, Usage], truncations: int, held_copies: int
    ) -> TailSnapshot:
        """The counters with `usage`, one entry per configured source, in config order."""
        sources = tuple(
            SourceSnapshot(
                name=name,
                lines_read=self.source(name).lines,
                bytes_read=self.source(name).bytes_read,
                checkpoint_lag_bytes=used.lag_bytes,
                open_files=used.open_files,
                files=used.files,
                parsing=dict(self.source(name).parsing),
                events=self.source(name).events,
                unreadable_files=used.unreadable,
                open_failures=used.open_failures,
                read_failures=self.source(name).read_failures,
            )
            for name, used in usage.items()
        )
        return TailSnapshot(
            sources=sources,
            events=self.events,
            bytes_read=self.bytes_read,
            rejected=self.rejected,
            blank_lines=self.blank_lines,
            truncations=truncations,
            unterminated_lines=self.unterminated_lines,
            held_copies=held_copies,
        )


@dataclass(frozen=True, slots=True)
class TailSnapshot:
    """The tailer's numbers at one moment. Counters only ever grow."""

    sources: tuple[SourceSnapshot, ...]  # one per configured source, in config order
    events: int
    bytes_read: int
    rejected: int
    blank_lines: int
    truncations: int  # files found truncated in place (copytruncate, a writer starting over)
    unterminated_lines: int
    held_copies: int  # new files waiting to be told apart from copies of tracked ones

    @property
    def open_files(self) -> int:
        return sum(s.open_files for s in self.sources)
