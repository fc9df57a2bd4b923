"""The reading side's metrics: per source (files, lines, bytes, parsing, journal numbers) and
the readers' totals. Read from the `AgentSnapshot` like every other family (see metrics.py)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Final

from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric

from agent.ops.families import counter, gauge, metric_name, per_source
from agent.ops.snapshot import AgentSnapshot, SourceSnapshot

_JOURNAL: Final = (  # a journald source's numbers (SourceSnapshot.journal)
    ("entries", CounterMetricFamily, "Journal entries read (events, excluded and dead letters)."),
    ("cursor_lag_pieces", GaugeMetricFamily, "Pieces read whose cursor is not safe yet."),
    ("child_restarts", CounterMetricFamily, "journalctl children that exited and were restarted."),
    ("cursor_gaps", CounterMetricFamily, "Saved cursors found gone (vacuumed): see the log."),
)


def _journal_metrics(sources: tuple[SourceSnapshot, ...]) -> Iterator[Metric]:
    journals = [s for s in sources if s.journal]
    for key, kind, doc in _JOURNAL:
        family = kind(metric_name(f"journal_{key}"), doc, labels=["source"])
        for source in journals:
            family.add_metric([source.name], source.journal.get(key, 0))
        yield family


def source_metrics(sources: tuple[SourceSnapshot, ...]) -> Iterator[Metric]:
    yield from _journal_metrics(sources)
    label = ["source"]
    parsing = CounterMetricFamily(
        metric_name("parse_outcomes"),
        "What parsing made of lines, by source and outcome: unmatched (shipped as message), "
        "time_unparsed / time_missing (read time used), too_late / too_early (dead-lettered), "
        "invalid_bytes, bom_stripped, partial_joined, multiline_joined, ...",
        labels=["source", "outcome"],
    )
    for source in sources:
        for outcome, count in sorted(source.parsing.items()):
            parsing.add_metric([source.name, outcome], count)
    yield parsing
    yield per_source(
        CounterMetricFamily(
            metric_name("read_lines"),
            "Complete lines read from the source's files (events, dead letters and blank lines).",
            labels=label,
        ),
        sources,
        lambda s: s.lines_read,
    )
    yield per_source(
        CounterMetricFamily(
            metric_name("read_events"),
            "Lines (or assembled records) of the source's files that became events.",
            labels=label,
        ),
        sources,
        lambda s: s.events,
    )
    yield per_source(
        CounterMetricFamily(
            metric_name("read_bytes"), "File bytes consumed from the source's files.", labels=label
        ),
        sources,
        lambda s: s.bytes_read,
    )
    yield per_source(
        GaugeMetricFamily(
            metric_name("checkpoint_lag_bytes"),
            "Bytes on disk beyond the checkpoint (read but not yet acknowledged, or unread); "
            "what a restart would read again. Growing without bound means the agent falls behind.",
            labels=label,
        ),
        sources,
        lambda s: s.checkpoint_lag_bytes,
    )
    yield per_source(
        GaugeMetricFamily(
            metric_name("open_files"),
            "File descriptors held open for the source's files.",
            labels=label,
        ),
        sources,
        lambda s: s.open_files,
    )
    yield per_source(
        GaugeMetricFamily(
            metric_name("tracked_files"),
            "Files the source follows, open or closed for inactivity.",
            labels=label,
        ),
        sources,
        lambda s: s.files,
    )
    yield per_source(
        GaugeMetricFamily(
            metric_name("unreadable_files"),
            "Files the source's globs found that could not be opened at the last try "
            "(permissions, ...); each is logged once as open_failed.",
            labels=label,
        ),
        sources,
        lambda s: s.unreadable_files,
    )
    errors = CounterMetricFamily(
        metric_name("file_errors"),
        "File errors by source and operation: open (a path became unopenable, logged as "
        "open_failed) or read (a read of an open file failed, logged as read_failed).",
        labels=["source", "operation"],
    )
    for source in sources:
        errors.add_metric([source.name, "open"], source.open_failures)
        errors.add_metric([source.name, "read"], source.read_failures)
    yield errors


def reading_metrics(snap: AgentSnapshot) -> Iterator[Metric]:
    yield counter(
        "file_truncations",
        "Files found shorter than the offset read (truncated or copytruncated): read again "
        "from their start.",
        snap.truncations,
    )
    yield gauge(
        "held_copies",
        "New files held back until they can be told apart from copies of tracked files "
        "(copytruncate, a log copied aside); not yet read.",
        snap.held_copies,
    )
    yield counter("blank_lines", "Empty lines skipped: they make no event.", snap.blank_lines)
    yield counter(
        "rejected_lines",
        "Lines the readers could not make an event of (too long, not JSON, outside the time "
        "window, ...): the readers' share of dead_letters_total.",
        snap.rejected_lines,
    )
    yield counter(
        "unterminated_lines",
        "Last lines without a newline in files let go (removed or rotated away): shipped as "
        "they were, each one logged.",
        snap.unterminated_lines,
    )
