"""What the tailer has read, per source: the counters /metrics and the logs report."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class SourceStats:
    lines: int = 0  # fast path: events + dead-lettered + blank; parsed: physical lines read
    bytes_read: int = 0
    parsing: dict[str, int] = field(default_factory=dict)
    """Parsed sources' counters, summed over their files: unmatched, time_unparsed,
    time_missing, too_late, too_early, invalid_bytes, bom_stripped, container_unparsed,
    partial_joined, partial_flushed, multiline_joined, multiline_split."""


@dataclass(slots=True)
class TailStats:
    events: int = 0
    bytes_read: int = 0
    rejected: int = 0
    blank_lines: int = 0
    truncations: int = 0
    unterminated_lines: int = 0  # last lines never ended, of files let go (logged each)
    by_source: dict[str, int] = field(default_factory=dict)  # events per source
    sources: dict[str, SourceStats] = field(default_factory=dict)
