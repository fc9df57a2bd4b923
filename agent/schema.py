"""The value types every config section is built from: durations, sizes, intervals, and
`Section`, the base of every section model (frozen; unknown keys are errors).

A leaf module (pydantic only), so that a stage's own settings (`agent.parse.settings`) and the
agent's `Config` build on it without importing each other.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
)

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]i?B|B)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "tb": 10**12,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
}

MIN_INTERVAL = 0.01
"""10 ms: the shortest checkpoint, scan or retry interval; 0 would spin a core and flood logs."""
MAX_DURATION = 100 * 365 * 86400.0
"""100 years: longer durations are typos, and overflow timer APIs."""
MAX_SIZE = 2**50
"""1 PiB: any size above this is a typo (and would not fit a 64-bit JSON integer later)."""


def parse_duration(value: object) -> float:
    """Seconds from ``"500ms"``, ``"30s"``, ``"1m30s"`` or a bare number of seconds."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as '500ms' or '30s'")
    if isinstance(value, int | float):
        if not 0 <= value < float("inf"):  # TOML allows inf and nan; neither is a timeout
            raise ValueError("a duration must be a finite number of seconds, not negative")
        if value > MAX_DURATION:  # before float(): a 400-digit integer overflows it
            raise ValueError("a duration must be at most 100 years")
        return float(value)
    if not isinstance(value, str):
        raise ValueError("expected a duration such as '500ms' or '30s'")
    text = value.strip()
    parts = _DURATION_PART.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"invalid duration {value!r}; use e.g. '500ms', '30s', '5m', '1h'")
    return _bounded_duration(sum(float(n) * _DURATION_UNITS[unit] for n, unit in parts))


def _bounded_duration(seconds: float) -> float:
    if not seconds <= MAX_DURATION:  # also catches inf from a 400-digit number
        raise ValueError("a duration must be at most 100 years")
    return seconds


def parse_size(value: object) -> int:
    """Bytes from ``"1GiB"``, ``"512KiB"``, ``"1MB"`` or a bare integer."""
    if isinstance(value, bool):
        raise ValueError("expected a size such as '64MiB' or 1000000")
    if isinstance(value, int):
        if value < 0:
            raise ValueError("a size cannot be negative")
        return _bounded_size(value)
    if not isinstance(value, str):
        raise ValueError("expected a size such as '64MiB' or 1000000")
    match = _SIZE.match(value)
    if match is None:
        raise ValueError(f"invalid size {value!r}; use e.g. '512KiB', '64MiB', '1GiB'")
    number, unit = match.groups()
    size = float(number) * _SIZE_UNITS[(unit or "B").lower()]
    return _bounded_size(int(size) if size <= MAX_SIZE else MAX_SIZE + 1)  # inf: no int()


def _bounded_size(size: int) -> int:
    if size > MAX_SIZE:
        raise ValueError("a size must be at most 1PiB")
    return size


def _interval(seconds: float) -> float:
    """A loop's period: below MIN_INTERVAL the loop spins a core (and logs each turn)."""
    if seconds < MIN_INTERVAL:
        raise ValueError(f"must be at least {MIN_INTERVAL * 1000:.0f}ms")
    return seconds


def no_nul(text: str) -> str:
    if "\0" in text:
        raise ValueError("must not contain a NUL character")
    return text


Duration = Annotated[float, BeforeValidator(parse_duration)]
Interval = Annotated[float, BeforeValidator(parse_duration), AfterValidator(_interval)]
"""A duration that paces a loop: at least MIN_INTERVAL."""
Size = Annotated[int, BeforeValidator(parse_size)]
Count = Annotated[int, Field(ge=1, le=1_000_000)]


class Section(BaseModel):
    """A config section. Its validator is built when it is first used, not at import: a
    section nested in `Config` is validated by `Config`'s own, so building one per section
    at import was start-up time spent for nothing (a tenth of `check`'s)."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


def is_utf8(text: str) -> bool:
    """False for a str holding lone surrogates (TOML escapes, environment bytes): it cannot be
    sent as JSON or written to a file."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
