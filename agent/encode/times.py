"""The event's own time under a common name, when the source does not say where it is (issue 14).

A source that leaves ``time_field`` unset keeps ``timestamp`` as the field Polaris maps
``__time`` from, and a line without one is not stamped with the read time at once: the first
of `CANDIDATES` that holds a time is copied into ``timestamp``:

- an RFC 3339 string (what msgspec reads as a datetime, and ``TIME_PARSE`` without a format)
  is copied as written: ``{"@timestamp":"2025-11-24T10:00:00.123Z",...}`` gains
  ``"timestamp":"2025-11-24T10:00:00.123Z"``;
- an epoch number (seconds, milliseconds, micro- or nanoseconds by magnitude, from the year
  2000 on) becomes ISO 8601 UTC with milliseconds: ``{"ts":1764028800123,...}`` gains
  ``"timestamp":"2025-11-25T00:00:00.123Z"``.

The line keeps its own field as it was; only ``timestamp`` is added, spliced before the
closing brace, so a Polaris job maps ``__time`` the same way for every shape
(``TIME_PARSE("timestamp")``). Anything else under those names (text that is no RFC 3339
time, null, an object, a number before 2000) is not a time and the next name is tried; when
none holds one, the read time is added, counted as ``time_missing``. Both encoder paths decide
with these functions (`own_time` on a decoded value, the block path on raw values in bulk).
"""

from __future__ import annotations

import glob
from bisect import bisect_left
from collections.abc import Iterable
from datetime import UTC, datetime
from functools import lru_cache
from itertools import repeat
from math import isfinite
from operator import floordiv, mod, mul
from typing import Final, NamedTuple

import msgspec
import orjson

from agent.config import SourceConfig
from agent.parse.settings import needs_parsing
from agent.parse.timestamps import iso_from_millis, millis_from_datetime, parse_epoch

CANDIDATES: Final = ("@timestamp", "time", "ts", "event_time", "datetime")
"""Looked at in this order when ``time_field`` is not set and the line has no ``timestamp``."""
PLAUSIBLE_MILLIS: Final = 946_684_800_000
"""2000-01-01T00:00:00Z: a smaller number under a time-like name is a duration, not a time."""

_DATETIME: Final = msgspec.json.Decoder(datetime)
DATETIMES: Final = msgspec.json.Decoder(list[datetime])
NUMBERS: Final = msgspec.json.Decoder(list[int | float])


def candidates(source: SourceConfig) -> tuple[str, ...]:
    """The names looked at for `source`: none when it sets ``time_field`` (the user said
    where the time is), nor a name that is also a static field."""
    if "time_field" in source.model_fields_set:
        return ()
    return tuple(
        name for name in CANDIDATES if name != source.time_field and name not in source.fields
    )


def own_time(value: object) -> tuple[bytes, int] | None:
    """(the JSON value for the time field, epoch milliseconds) when `value` is a time this
    module recognises; None otherwise."""
    kind = type(value)
    if kind is str:
        raw = orjson.dumps(value)
        try:
            moment = _DATETIME.decode(raw)
        except (msgspec.DecodeError, msgspec.ValidationError):
            return None
        return raw, millis_from_datetime(moment, UTC)
    if kind is int or kind is float:
        millis = parse_epoch(value, None)
        if millis is None or millis < PLAUSIBLE_MILLIS:
            return None
        return iso_value(millis), millis
    return None


def iso_value(millis: int) -> bytes:
    """``"2025-11-25T00:00:00.123Z"`` (with its quotes)."""
    return b'"' + iso_from_millis(millis).encode() + b'"'


@lru_cache(maxsize=4096)
def _second(second: int) -> bytes:
    return iso_from_millis(second * 1000)[:-5].encode()


def epoch_unit(number: float) -> float:
    """Milliseconds per unit of an epoch `number`, by its magnitude (`parse_epoch`'s rule)."""
    size = abs(number)
    return 1000.0 if size < 1e11 else 1.0 if size < 1e14 else 1e-3 if size < 1e17 else 1e-6


def epoch_values(numbers: list[int | float]) -> tuple[list[bytes], int, int] | None:
    """Numbers read as epochs (as `own_time` reads each): their ISO values and the earliest
    and latest milliseconds; None when one is not a plausible epoch (the line path decides
    those). Numbers of one type and one resolution are converted without a Python step per
    number; any other list number by number."""
    if not numbers:
        return None
    lo, hi = min(numbers), max(numbers)
    if not (_finite(lo) and _finite(hi)):
        return None  # 1e400: msgspec reads infinity, orjson refuses it
    unit = epoch_unit(lo)
    kinds = set(map(type, numbers))
    if epoch_unit(hi) == unit and len(kinds) == 1:
        millis = _scaled(numbers, unit)
    else:
        found = [parse_epoch(n, None) for n in numbers]
        if None in found:
            return None
        millis = found  # type: ignore[assignment]  # no None left
    earliest, latest = min(millis), max(millis)
    if earliest < PLAUSIBLE_MILLIS or not _in_range(latest):
        return None
    args = iso_args(millis)
    values = list(map(ISO_FORMAT.__mod__, zip(args[::2], args[1::2], strict=True)))
    return values, earliest, latest


ISO_FORMAT: Final = b'"%b.%bZ"'
"""An epoch's ISO value as `iso_value` writes it, from the two `iso_args` of its millis (its
milliseconds as text too: a ``%b`` copies bytes, a ``%03d`` formats an int, about 0.2 ms/MB
more over a block's ``%``)."""
_MILLIS_TEXT: Final = [b"%03d" % n for n in range(1000)]
"""A millisecond's three digits by its number. A list, not a tuple: a list's bound
``__getitem__`` is a C method called directly, a tuple's a slot wrapper (~0.05 ms/MB more
over a block's epochs). Never written to."""


class EpochMillis(NamedTuple):
    """`epoch_millis`' answer: the numbers' milliseconds, the earliest and the latest, and
    whether they are in order (`iso_args` then need not check)."""

    millis: list[int]
    earliest: int
    latest: int
    ordered: bool


def epoch_millis(numbers: list[int] | list[float]) -> EpochMillis | None:
    """Numbers all of one type, as msgspec read them for a block of one shape (`BlockShape`),
    read as epochs as `own_time` reads each, without a Python step per number: their
    milliseconds, the earliest and the latest; None when they are not all of one resolution,
    or one is not a plausible epoch. Floats only in seconds or milliseconds (msgspec reads an
    integer written where floats are as a float: below 1e14, in those units, it converts
    exactly as the int would), ints below 2**63 (orjson reads a larger one as a float).

    A log's numbers are mostly in order: one sort of sorted numbers (a pass of C comparisons,
    specialised for floats or ints) says so, and the ends are the least and the greatest,
    where ``min`` and ``max`` cost about 6x as much (~0.1 ms/MB on the bench's epochs).
    (JSON holds no NaN, which would make either answer wrong; msgspec reads 1e400 as
    infinity, which sorts last.)"""
    if not numbers:
        return None
    ordered = numbers == sorted(numbers)
    lo, hi = (numbers[0], numbers[-1]) if ordered else (min(numbers), max(numbers))
    floats = type(lo) is float or type(hi) is float
    if hi >= (1e14 if floats else 2**63) or not (_finite(lo) and _finite(hi)):
        return None
    unit = epoch_unit(lo)
    if epoch_unit(hi) != unit:
        return None
    # scaling is monotonic: the least and greatest numbers give the earliest and latest
    earliest, latest = _scaled([lo, hi], unit)
    if earliest < PLAUSIBLE_MILLIS or not _in_range(latest):
        return None
    # scaling is monotonic too: numbers in order give milliseconds in order
    if unit == 1 and not floats:
        return EpochMillis(list(numbers), earliest, latest, ordered)  # type: ignore[arg-type]
    return EpochMillis(_scaled(numbers, unit), earliest, latest, ordered)


def iso_args(millis: list[int], ordered: bool | None = None) -> list[object]:
    """For each of `millis`, the two values `ISO_FORMAT` writes it from (its second in ISO,
    formatted once per distinct second; its milliseconds' three digits), one after the other:
    what one ``%`` over a whole block takes. `ordered`: whether `millis` are in order, as the
    caller knows (`EpochMillis`); None: checked here."""
    args: list[object] = [b""] * (2 * len(millis))
    # operator's functions over a repeat: cheaper per number than a bound slot wrapper
    args[1::2] = map(_MILLIS_TEXT.__getitem__, map(mod, millis, repeat(1000)))
    if ordered is None:
        ordered = millis == sorted(millis)
    if not (ordered and _seconds_by_runs(millis, args)):
        seconds = list(map(floordiv, millis, repeat(1000)))
        written = {second: _second(second) for second in set(seconds)}
        args[::2] = map(written.__getitem__, seconds)
    return args


def _seconds_by_runs(millis: list[int], args: list[object]) -> bool:
    """Each second's ISO text into `args` a run of lines at a time, for `millis` in order
    (checked by the caller; a log's lines mostly are: a bisect per second); False, `args`
    half written, when runs are short (a step per second would cost more than a step per
    line)."""
    start, size, runs = 0, len(millis), 0
    while start < size:
        runs += 1
        if runs > 16 + size // 16:
            return False
        second = millis[start] // 1000
        end = bisect_left(millis, (second + 1) * 1000, start)
        args[2 * start : 2 * end : 2] = [_second(second)] * (end - start)
        start = end
    return True


def _scaled(numbers: list[int] | list[float], unit: float) -> list[int]:
    """`parse_epoch`'s milliseconds of numbers of one type and one `unit`. Floats as
    `parse_epoch` converts each (``int(number * unit)``, the same product and truncation), by
    ``operator.mul`` and ``float.__trunc__``: about half the cost of ``int`` over a bound
    ``unit.__mul__`` (~0.13 ms/MB on the bench's epoch seconds)."""
    if type(numbers[0]) is float:
        return list(map(float.__trunc__, map(mul, numbers, repeat(unit))))
    if unit >= 1:
        return list(map(int(unit).__mul__, numbers))  # type: ignore[arg-type]
    divisor = round(1 / unit)
    return [int(n) // divisor for n in numbers]


def _finite(number: float) -> bool:
    """Not infinite nor NaN; an int always is (`isfinite` would overflow on a huge one)."""
    return type(number) is int or isfinite(number)


def _in_range(millis: int) -> bool:
    return millis <= 253_402_300_799_999  # datetime's range: iso_from_millis can write it


def describe(source: SourceConfig, sample: Iterable[bytes] = ()) -> str:
    """What `check` says about a source's event time: where it is taken from, and, given some
    of its lines, which field they carry."""
    field = source.time_field
    names = candidates(source)
    if needs_parsing(source):
        return (
            f"{field!r} from the parser's time (or `time.field`), else a container's, "
            "else the read time"
        )
    if source.format != "json":
        return f"{field!r}: the read time (text lines carry no field)"
    if not names:
        return f"{field!r} (set); the read time when a line has none"
    seen: dict[str, int] = {}
    lines = 0
    for line in sample:
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        if type(obj) is not dict:
            continue
        lines += 1
        found = next(
            (n for n in (field, *names) if n in obj and (n == field or own_time(obj[n]))), None
        )
        key = found or "read time"
        seen[key] = seen.get(key, 0) + 1
    rule = (
        f"{field!r}, else the first of {', '.join(names)} copied into {field!r}, else the read time"
    )
    if not lines:
        return rule
    counts = ", ".join(f"{name} in {count} of {lines}" for name, count in seen.items())
    return f"{rule}; the first lines: {counts}"


SAMPLE_BYTES: Final = 64 * 1024


def describe_files(source: object) -> str | None:
    """`describe` for a file source, over the first lines of the first file its `include`
    matches (None for any other kind of source): what ``polaris-agent check`` shows."""
    if not isinstance(source, SourceConfig):
        return None
    for pattern in source.include:
        for path in sorted(glob.glob(pattern)):
            try:
                with open(path, "rb") as file:
                    head = file.read(SAMPLE_BYTES)
            except OSError:
                continue
            return describe(source, head.split(b"\n")[:-1][:20])
    return describe(source)
