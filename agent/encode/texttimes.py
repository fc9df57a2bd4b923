"""A time field written as text that is not RFC 3339, checked a block at a time.

python-json-logger writes ``"asctime": "2026-12-03 10:00:00,123"``, Java loggers
``"2026-12-03 10:00:00.123"``: times the line path reads (`agent.parse.timestamps`, a space
for the ``T``, a comma for the point) and forwards as written, but that msgspec does not
read as a datetime, so every block of such a file went line by line (28 ms/MB against 2).
The block path reads these times as strings and vouches for them without a Python step per
line when they are all written alike, most significant digit first (`ORDERED`: their order
as text is their order in time): every distinct second is read once by the line path's own
parser (a valid second makes every fraction of it valid), and the least and greatest decide
the window. Anything else (numeric offsets, other shapes, several shapes) goes line by line.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from functools import lru_cache
from operator import itemgetter
from typing import Any, Final

import msgspec

from agent.encode.scan import renamable
from agent.parse.timestamps import parse_iso8601

ORDERED: Final = re.compile(rb"0000-00-00[T ]00:00:00(?:[.,]0{1,9})?Z?")
"""The times' shape, digits written as 0: year first, no numeric offset (every time in the
same zone: the source's, or UTC), so that text order is time order."""
_DIGITS_AS_ZERO: Final = bytes.maketrans(b"123456789", b"000000000")
_SECOND: Final = itemgetter(slice(0, 19))
_DATETIME_VALUE: Final = msgspec.json.Decoder(datetime)


def text_times_inside(times: list[Any], inside_millis: tuple[float, float]) -> bool:
    """Every one of `times` a string of the `ORDERED` shape whose second the line path reads,
    strictly inside `inside_millis` (a day within each edge of the window)."""
    try:
        text = "\n".join(times).encode("ascii")
    except (TypeError, UnicodeEncodeError):
        return False  # not all strings, or not ASCII: no shape of ours
    written = text.translate(_DIGITS_AS_ZERO).split(b"\n")
    if len(written) != len(times):
        return False  # a time holding a newline: more shapes than times, none of them its own
    shapes = set(written)
    if len(shapes) != 1 or ORDERED.fullmatch(shapes.pop()) is None:
        return False
    for second in set(map(_SECOND, times)):
        if parse_iso8601(second, UTC) is None:
            return False  # a month 13, a 25th hour: the line path keeps it aside
    low, high = parse_iso8601(min(times)[:19], UTC), parse_iso8601(max(times)[:19], UTC)
    earliest, latest = inside_millis
    return low is not None and high is not None and earliest < low and high < latest


def first_time_is_text(block: bytes, time_field: str) -> bool:
    """Whether the first line of `block` holds the time field as a string msgspec does not
    read as a datetime: worth a text-time read of the block (`JsonBlocks`), once the usual
    reads failed."""
    if not renamable((time_field,)):
        return False
    try:
        probe = _first_time(time_field).decode(block[: block.find(b"\n")])
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
        return False
    raw = probe.f0
    if raw is msgspec.UNSET or bytes(raw)[:1] != b'"':
        return False
    try:
        _DATETIME_VALUE.decode(raw)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return True
    return False


@lru_cache(maxsize=64)
def _first_time(time_field: str) -> msgspec.json.Decoder[Any]:
    probe = msgspec.defstruct(
        "FirstTime", [("f0", msgspec.Raw, msgspec.UNSET)], rename={"f0": time_field}, gc=False
    )
    return msgspec.json.Decoder(probe)
