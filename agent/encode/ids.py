"""JSON lines with event ids (``event_id = true`` and no other parsing option), a block at a time.

Such a source goes through the parsing library's event builder, which re-serializes every
event (`agent.parse.event.EventBuilder.build`: the object as read, static fields added where
absent, the time normalized, the id added, ``orjson.dumps``). `IdEncoder` does the same for a
whole block with no Python step per line: one ``orjson.loads`` of the block written as rows
(``[[line],[line],...]``, as the fast path's check writes them), the static fields and the ids
set by ``map``, one ``orjson.dumps`` per event by ``map``, one join. The times must be
ISO 8601 UTC with milliseconds (what the builder writes: ``2026-12-03T15:02:58.001Z``, checked
by one match over all of them and validated by one msgspec call, so the builder would leave
each as it is) and inside the windows, or absent everywhere (the read time, counted). Any
other block (a blank, long or broken line, a CR, another way of writing the time, a time near
an edge, a line too deep) goes to the `ParsedEncoder` it wraps, the reference the property
tests compare against (tests/unit/test_encode_ids.py).
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC
from functools import partial
from itertools import accumulate, repeat
from operator import add, itemgetter, methodcaller, setitem
from typing import Any, Final

import msgspec
import orjson

from agent.config import SourceConfig
from agent.encode.cut import cut_events
from agent.encode.parsed import ParsedEncoder
from agent.encode.scan import BLANK_LINE, lines_within, shallow, unremarkable
from agent.encode.times import DATETIMES
from agent.encode.values import NOTHING, NOW, Encoded
from agent.parse.settings import PARSING_KEYS
from agent.parse.timestamps import iso_from_millis, millis_from_datetime

_CANONICAL: Final = re.compile(r"(?:\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d\d\dZ\n)*", re.ASCII)
"""Times as the builder writes them (`iso_from_millis`), one per line."""
_FIRST: Final = itemgetter(0)
_EVENTS_PER_JOIN: Final = 64
"""Events serialized and joined at a time (`orjson.dumps` returns each in a 4 KiB buffer,
however short: a block's worth alive at once would cost MBs of peak memory)."""
_SLICE_BYTES: Final = 65536
"""A block is read this much at a time (`IdEncoder._whole_block`)."""
_HEX: Final = methodcaller("hexdigest")
_BLAKE2B_64: Final = partial(hashlib.blake2b, digest_size=8)


def takes_ids(source: SourceConfig) -> bool:
    """A JSON source whose only parsing option is ``event_id`` (UTF-8, no parser): what
    `IdEncoder` encodes a block at a time."""
    return (
        source.format == "json"
        and source.event_id is not None
        and source.model_fields_set & PARSING_KEYS == {"event_id"}
        and source.charset == "utf-8"
    )


class IdEncoder:
    """One file's JSON lines with event ids -> pieces; the `ParsedEncoder` it wraps decides
    every block the whole-block path cannot vouch for. Not thread-safe: one per file."""

    def __init__(
        self,
        source: SourceConfig,
        *,
        path: str,
        identity: Callable[[], str],
        max_event_bytes: int,
        piece_bytes: int,
        start_offset: int = 0,
        now: NOW = time.time,
    ) -> None:
        self._identity_of: Callable[[], str] | None = identity
        self._identity = ""
        self._parsed = ParsedEncoder(
            source,
            path=path,
            identity=self._resolved,
            max_event_bytes=max_event_bytes,
            piece_bytes=piece_bytes,
            start_offset=start_offset,
            now=now,
        )
        self._now = now
        self._time_field = source.time_field
        assert source.event_id is not None
        self._id_field = source.event_id
        self._fields = list(dict(source.fields).items())
        self._max_event = max_event_bytes - 1  # room for the newline
        self._max_line = min(source.max_line_bytes, self._max_event)
        self._piece_bytes = piece_bytes
        self._late_ms = int(source.late_window * 1000)
        self._early_ms = int(source.early_window * 1000)
        self._time_missing = 0

    def __repr__(self) -> str:
        return f"<IdEncoder {self._parsed!r}>"

    def _resolved(self) -> str:
        """The file's identity, asked once (by whichever path encodes the first block)."""
        if self._identity_of is not None:
            self._identity = self._identity_of()
            self._identity_of = None
        return self._identity

    @property
    def pending_offset(self) -> int | None:
        return self._parsed.pending_offset

    def next_flush(self) -> float | None:
        return self._parsed.next_flush()

    def flush(self, now: float | None = None, *, force: bool = False) -> Encoded:
        if self._parsed.pending_offset is None:
            return NOTHING  # one record per line: nothing is ever held
        return self._parsed.flush(now, force=force)

    def take_counts(self) -> dict[str, int]:
        counts = self._parsed.take_counts()
        if self._time_missing:
            counts["time_missing"] = counts.get("time_missing", 0) + self._time_missing
            self._time_missing = 0
        return counts

    def encode(self, block: bytes, start_offset: int) -> Encoded:
        """`block` holds whole lines, each ending in a newline, starting at `start_offset`."""
        if self._parsed.pending_offset is None:
            encoded = self._whole_block(block, start_offset)
            if encoded is not None:
                return encoded
        return self._parsed.encode(block, start_offset)

    def _whole_block(self, block: bytes, start_offset: int) -> Encoded | None:
        """The events `ParsedEncoder.encode` makes of `block`, when every line is one JSON
        object whose time is written as the builder writes it (or no line has one); None
        for any other block. Read a slice of about `_SLICE_BYTES` at a time: the dicts of a
        whole 1 MB block (~19 MB) were most of the shape's peak memory; the events are cut
        into pieces once, so the pieces are what the whole block would give."""
        if not block or b"\r" in block or block[:1].isspace() or BLANK_LINE.search(block):
            return None
        if not lines_within(block, self._max_line) or not unremarkable(block):
            return None
        now_ms = int(self._now() * 1000)
        sizes: list[int] = []
        starts: list[int] = [start_offset]
        joined: list[bytes] = []
        stamped: set[bool] = set()
        position = 0
        while position < len(block):
            end = block.rfind(b"\n", position, position + _SLICE_BYTES) + 1
            end = end or block.index(b"\n", position) + 1  # a line longer than a slice
            stamp = self._slice(block[position:end], starts, sizes, joined, now_ms)
            if stamp is None:
                return None
            stamped.add(bool(stamp))
            position = end
        if len(stamped) != 1 or max(sizes) > self._max_event:
            return None  # some slices without a time and some with: line by line decides
        if stamped == {True}:
            self._time_missing += len(sizes)
        data = b"".join(joined)
        ends = list(accumulate(map(add, sizes, repeat(1))))
        pieces = cut_events(data, ends, starts, self._piece_bytes)
        # offsets as lists, as the line path gives them
        return Encoded([replace(p, offsets=list(p.offsets)) for p in pieces], [], 0)

    def _slice(
        self,
        block: bytes,
        starts: list[int],
        sizes: list[int],
        joined: list[bytes],
        now_ms: int,
    ) -> str | None:
        """One slice's events appended to `joined` (their sizes to `sizes`, where the next
        line starts to `starts`); the read time when no line of it has a time, "" when
        every one has, None when the slice cannot be vouched for."""
        lines = block.split(b"\n")
        lines.pop()
        try:
            rows = orjson.loads(b"[[" + b"],[".join(lines) + b"]]")
        except orjson.JSONDecodeError:
            return None
        if len(rows) != len(lines) or set(map(len, rows)) != {1}:
            return None
        objects: list[dict[str, Any]] = list(map(_FIRST, rows))
        if set(map(type, objects)) != {dict} or not shallow(block, len(lines)):
            return None
        stamp = self._times(objects, now_ms)
        if stamp is None:
            return None
        for key, value in self._fields:
            list(map(methodcaller("setdefault", key, value), objects))
        if stamp:  # no line has a time: the read time, where the builder writes it
            list(map(setitem, objects, repeat(self._time_field), repeat(stamp)))
        begin = len(starts) - 1
        starts += accumulate(map(add, map(len, lines), repeat(1)), initial=starts[-1])
        del starts[begin + 1]  # accumulate's initial: the slice's first start, already there
        identity = self._resolved().encode().replace(b"%", b"%%") + b":%d"
        ids = map(_HEX, map(_BLAKE2B_64, map(identity.__mod__, starts[begin:-1])))
        list(map(setitem, objects, repeat(self._id_field), ids))
        try:  # a few at a time: orjson.dumps keeps each result in a 4 KiB buffer
            for first in range(0, len(objects), _EVENTS_PER_JOIN):
                events = list(map(orjson.dumps, objects[first : first + _EVENTS_PER_JOIN]))
                sizes += map(len, events)
                joined.append(b"\n".join(events) + b"\n")
        except orjson.JSONEncodeError:
            return None
        return stamp

    def _times(self, objects: list[dict[str, Any]], now_ms: int) -> str | None:
        """ "" when every line's time is as the builder writes it and inside the windows; the
        read time when no line has one; None otherwise."""
        times = list(map(methodcaller("get", self._time_field), objects))
        if times.count(None) == len(times):
            return iso_from_millis(now_ms)
        try:
            joined = "\n".join(times) + "\n"
        except TypeError:
            return None  # a number, an object, null on some line
        if not _CANONICAL.fullmatch(joined):
            return None
        try:
            DATETIMES.decode(orjson.dumps(times))  # each a date that exists
        except (msgspec.DecodeError, msgspec.ValidationError):
            return None
        earliest = millis_from_datetime(DATETIMES.decode(orjson.dumps([min(times)]))[0], UTC)
        latest = millis_from_datetime(DATETIMES.decode(orjson.dumps([max(times)]))[0], UTC)
        if earliest < now_ms - self._late_ms or latest > now_ms + self._early_ms:
            return None
        return ""
