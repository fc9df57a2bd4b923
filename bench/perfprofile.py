"""Where a shipper's CPU goes, by library: ``perf record`` over the whole process (issue 13).

cProfile (``--profile``) sees the main thread's Python functions only: not the compression
threads, not what msgspec, isal or libc do inside one call, not the kernel's work for the
process. ``perf`` samples every thread at the instruction, so the agent and the plain loop
can be set side by side by library: what the loop also pays (isal, the kernel, aiohttp's
interpreter work) and what only the agent pays (msgspec's validation, blake2b). Each share
times the run's CPU-s/GB is that library's cost per GB.

Used by ``python -m bench --perf --only shape:…``; needs ``perf`` on PATH (the
``linux-perf`` package) and a kernel that lets this user sample (root, or
``kernel.perf_event_paranoid`` <= 1).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

SAMPLE_HZ: Final = 1999
"""Not a multiple of the kernel's tick: no lock-step with timers."""

LIBRARIES: Final[tuple[tuple[str, re.Pattern[str]], ...]] = (
    ("msgspec (validation)", re.compile(r"^_core\.cpython|msgspec")),
    ("orjson", re.compile(r"orjson")),
    ("isal (gzip)", re.compile(r"isal|igzip")),
    ("zlib", re.compile(r"libz\.|zlib")),
    ("blake2b (event ids)", re.compile(r"_blake2")),
    ("libcrypto (TLS set-up at start)", re.compile(r"libcrypto|libssl|_hashlib|_ssl\.")),
    ("regex", re.compile(r"^_regex")),
    ("aiohttp/yarl/multidict C", re.compile(r"aiohttp|_http|yarl|multidict|propcache|frozenlist")),
    ("pydantic (config)", re.compile(r"pydantic")),
    ("libc (memcpy, memchr, malloc)", re.compile(r"^libc\.")),
    ("kernel (syscalls, page faults)", re.compile(r"^\[kernel")),
)
"""(name, what its shared object's name matches), first match wins; libpython is split by
symbol (`PYTHON_PARTS`); the rest is "other"."""

PYTHON_PARTS: Final[tuple[tuple[str, re.Pattern[str]], ...]] = (
    (
        "Python: running code (eval, calls, lookups)",
        re.compile(
            r"_PyEval|_PyFunction|[Vv]ectorcall|_PyObject_GenericGetAttr|_PyType_Lookup|"
            r"lookdict|unicodekeys_lookup|insertdict|dict_|_PyDict|frame|cfunction|method_|"
            r"_PyArg|MakeTpCall|slot_tp|call_|_PyObject_Call|PyObject_Get|PyObject_Set|"
            r"_PyCode|builtin_|iter_next|_next$|_Py_Check|PyTuple_New|PyList_New|"
            r"_PyLong_|long_|PyLong_|float_|_PyObject_LookupAttr"
        ),
    ),
    (
        "Python: allocation and GC",
        re.compile(r"[Mm]alloc|[Ff]ree|dealloc|gc_|_GC_|PyMem|_Py_Dealloc|resize|visit_"),
    ),
    (
        "Python: imports (unmarshal, compile, new types)",
        re.compile(r"r_object|marshal|_PyPegen|_PyAST|compiler_|PyImport|type_new|update_one_slot"),
    ),
)
"""libpython's symbols of running Python code itself and of object churn, as against the C
work one call does on a whole block ("Python: bytes/str/re C work": replace, split, join,
formatting, ``re``)."""

PYTHON_C_WORK: Final = "Python: bytes/str/re C work"

_ROW: Final = re.compile(r"^\s*([\d.]+)%\s+(\S+)\s+\[[.k]\]\s+(.+?)\s*$")


def available() -> bool:
    return shutil.which("perf") is not None


def recorded(argv: list[str], output: Path) -> list[str]:
    """`argv` run under ``perf record`` of all its threads, into `output`."""
    return ["perf", "record", "-q", "-F", str(SAMPLE_HZ), "-o", str(output), "--", *argv]


def report_rows(data: Path) -> list[str]:
    """``perf report`` by shared object and symbol, one row a pair, as text."""
    done = subprocess.run(
        ["perf", "report", "-i", str(data), "--sort", "dso,sym", "--stdio", "-q"],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    return done.stdout.splitlines()


def costs(rows: Iterable[str], cpu: float) -> dict[str, float]:
    """`report_rows` of a run that took `cpu` CPU-s, as CPU-s by `LIBRARIES` (libpython by
    `PYTHON_PARTS`; "other" for the rest)."""
    totals: dict[str, float] = {}
    for row in rows:
        match = _ROW.match(row)
        if match is None:
            continue
        library = _library(match[2], match[3])
        totals[library] = totals.get(library, 0.0) + float(match[1]) / 100 * cpu
    return totals


def _library(dso: str, symbol: str) -> str:
    if re.search(r"libpython|^python3", dso):
        for name, pattern in PYTHON_PARTS:
            if pattern.search(symbol):
                return name
        return PYTHON_C_WORK
    for name, pattern in LIBRARIES:
        if pattern.search(dso):
            return name
    return "other"


@dataclass(frozen=True, slots=True)
class Profiled:
    """One tool's run and its start-up (the same command on an empty input), each by
    library in CPU-s; what a long-running shipper pays per GB is their difference."""

    tool: str
    run: dict[str, float]
    start_up: dict[str, float]
    gigabytes: float

    def per_gb(self, library: str) -> float:
        spent = self.run.get(library, 0.0) - self.start_up.get(library, 0.0)
        return max(spent, 0.0) / self.gigabytes


def side_by_side(label: str, tools: list[Profiled]) -> str:
    """CPU-s/GB after start-up by library, one column a tool, largest first in the first."""
    if not tools:
        return ""
    names = sorted({name for tool in tools for name in tool.run}, key=lambda n: -tools[0].per_gb(n))
    head = f"{label}: CPU-s/GB after start-up, by library (perf, every thread)"
    lines = [head, f"  {'library':<48}" + "".join(f"{t.tool:>12}" for t in tools)]
    for name in names:
        lines.append(f"  {name:<48}" + "".join(f"{t.per_gb(name):12.2f}" for t in tools))
    totals = "".join(f"{sum(t.per_gb(n) for n in names):12.2f}" for t in tools)
    lines.append(f"  {'all':<48}{totals}")
    return "\n".join(lines)


def top_symbols(rows: Iterable[str], count: int = 12) -> str:
    picked = [row.strip() for row in rows if _ROW.match(row)][:count]
    return "\n".join(f"    {row}" for row in picked)
