"""One row per scenario, printed as a fixed-width table."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

MB = 1e6
GB = 1e9


@dataclass
class Check:
    """One target: `what` (as printed) and whether it was met."""

    what: str
    ok: bool


@dataclass
class Result:
    scenario: str
    tool: str = "agent"
    lines: int = 0
    raw_bytes: int = 0  # the raw lines in the files
    seconds: float | None = None  # launch -> the endpoint counted the last line
    first_seconds: float | None = None  # launch -> the first line arrived
    cpu: float | None = None  # user + sys seconds of the shipper's processes
    peak_rss: int | None = None  # bytes
    lost: int | None = None
    duplicates: int | None = None
    p50_ms: float | None = None
    p99_ms: float | None = None
    checks: list[Check] = field(default_factory=list)
    note: str = ""
    rates: bool = True  # MB/s, events/s and CPU-s/GB mean something (a shipping run)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def mb(self) -> float:
        return self.raw_bytes / MB

    @property
    def mb_per_s(self) -> float | None:
        if not self.rates or not self.seconds or not self.raw_bytes:
            return None
        return self.raw_bytes / MB / self.seconds

    @property
    def events_per_s(self) -> float | None:
        if not self.rates or not self.seconds or not self.lines:
            return None
        return self.lines / self.seconds

    @property
    def cpu_per_gb(self) -> float | None:
        if not self.rates or self.cpu is None or not self.raw_bytes:
            return None
        return self.cpu / (self.raw_bytes / GB)

    @property
    def verdict(self) -> str:
        if not self.checks:
            return ""
        return "PASS" if all(c.ok for c in self.checks) else "FAIL"

    def check(self, what: str, ok: bool) -> None:
        self.checks.append(Check(what, ok))

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(
            mb_per_s=self.mb_per_s,
            events_per_s=self.events_per_s,
            cpu_per_gb=self.cpu_per_gb,
            verdict=self.verdict,
        )
        return data


def _num(value: float | None, digits: int = 1) -> str:
    if value is None:
        return "-"
    return f"{value:,.{digits}f}"


def _int(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"


COLUMNS = [
    ("scenario", "<"),
    ("tool", "<"),
    ("lines", ">"),
    ("MB", ">"),
    ("s", ">"),
    ("1st s", ">"),
    ("MB/s", ">"),
    ("events/s", ">"),
    ("CPU-s", ">"),
    ("CPU-s/GB", ">"),
    ("RSS MB", ">"),
    ("loss", ">"),
    ("dups", ">"),
    ("p50 ms", ">"),
    ("p99 ms", ">"),
    ("result", "<"),
    ("targets / notes", "<"),
]


def row(result: Result) -> list[str]:
    notes = "; ".join(f"{c.what} {'ok' if c.ok else 'MISSED'}" for c in result.checks)
    if result.note:
        notes = f"{notes}; {result.note}" if notes else result.note
    return [
        result.scenario,
        result.tool,
        _int(result.lines) if result.lines else "-",
        _num(result.mb, 0) if result.raw_bytes else "-",
        _num(result.seconds, 2),
        _num(result.first_seconds, 2),
        _num(result.mb_per_s),
        _num(result.events_per_s, 0),
        _num(result.cpu, 2),
        _num(result.cpu_per_gb),
        _num(result.peak_rss / MB if result.peak_rss else None),
        _int(result.lost),
        _int(result.duplicates),
        _num(result.p50_ms, 0),
        _num(result.p99_ms, 0),
        result.verdict,
        notes,
    ]


def table(results: Iterable[Result]) -> str:
    rows = [[name for name, _ in COLUMNS]] + [row(r) for r in results]
    widths = [max(len(r[i]) for r in rows) for i in range(len(COLUMNS) - 1)]
    lines = []
    for index, cells in enumerate(rows):
        parts = [
            f"{cell:{align}{width}}"
            for cell, (_, align), width in zip(cells[:-1], COLUMNS[:-1], widths, strict=True)
        ]
        lines.append("  ".join(parts) + "  " + cells[-1])
        if index == 0:
            lines.append("-" * len(lines[0]))
    return "\n".join(lines)


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile of a non-empty list."""
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, math.ceil(pct / 100 * len(ordered)) - 1))
    return ordered[rank]
