"""Records -> events: parsed fields, pod metadata, one normalized time, an optional id.

Every event leaves with a valid time in the source's ``time_field`` (ISO 8601 UTC with
milliseconds and ``Z``, which ``TIME_PARSE`` reads without a format), because Polaris needs a
``__time`` for every row. The time comes from, in order: the parsed time field, the container
runtime's time (CRI/Docker), the read time. An event whose time lies outside the late/early
windows is returned as a `Rejection` to be dead-lettered here, with its reason, because
Polaris would drop it silently.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import orjson

from agent.parse.assemble import Record
from agent.parse.kubernetes import PodMetadata, metadata_from_env, metadata_from_path
from agent.parse.parsers import Parser, build_parser
from agent.parse.settings import SourceParsing
from agent.parse.timestamps import TimeParser, iso_from_millis, parse_iso8601, time_parser

TOO_LATE: Final = "too_late"
TOO_EARLY: Final = "too_early"
INVALID_TIME: Final = "invalid_time"
RAW_TIME_SUFFIX: Final = "_raw"


@dataclass(frozen=True, slots=True)
class Rejection:
    """An event that must not be sent; `reason` is a stable name, `detail` says why."""

    reason: str
    detail: str


@dataclass(slots=True)
class EventCounters:
    """What the builder could not do as asked; every field only grows."""

    unmatched: int = 0  # the parser did not match: shipped as {"message": ...}
    time_unparsed: int = 0  # a time was there but not in the format: read time used, value kept
    time_missing: int = 0  # no time anywhere: read time used
    too_late: int = 0
    too_early: int = 0


def event_id(identity: str, offset: int) -> str:
    """16 hex characters: blake2b-64 of ``"<identity>:<offset>"``.

    `identity` is the file's fingerprint (hex); `offset` where the record starts. The same
    record read twice (after a crash) gets the same id, so duplicates can be removed at query
    time (e.g. ``LATEST_BY``/``GROUP BY event_id``). The identity must not change as the file
    grows: use a fingerprint only once it is complete, or the digest of the first line.
    """
    return hashlib.blake2b(f"{identity}:{offset}".encode(), digest_size=8).hexdigest()


class EventBuilder:
    """One file's records -> JSON objects (bytes, no newline) or rejections.

    `now` is the wall clock (epoch seconds): the read time and the reference for the windows.
    `fields` are the source's static fields; an event's own field wins over them.
    `identity` is the file's fingerprint for event ids (see `event_id`).
    """

    def __init__(
        self,
        options: SourceParsing,
        *,
        path: str,
        now: Callable[[], float] = time.time,
        fields: Mapping[str, Any] | None = None,
        identity: str = "",
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.path = path
        self.identity = identity
        self.counters = EventCounters()
        self._now = now
        self._time_field = options.time_field
        self._parser: Parser | None = (
            None if options.parser is None else build_parser(options.parser)
        )
        self._time: TimeParser = time_parser(options.time.format, options.time.zone)
        self._container_time: TimeParser = time_parser("iso8601", options.time.zone)
        self._time_key = _time_key(options, self._parser)
        self._raw_time_key = options.time_field + RAW_TIME_SUFFIX
        self._consume_time_key = (
            self._parser is not None
            and self._time_key == self._parser.time_key
            and self._time_key != self._time_field
        )
        self._late_ms = int(options.late_window * 1000)
        self._early_ms = int(options.early_window * 1000)
        self._extra = {**_metadata(options, path, environ), **(fields or {})}
        self._id_field = options.event_id

    def __repr__(self) -> str:
        return f"<EventBuilder {self.path} {self.counters}>"

    def build(self, record: Record) -> bytes | Rejection:
        """The event for `record`, or why it must not be sent."""
        now_ms = int(self._now() * 1000)
        fields = self._fields(record.text)
        millis = self._event_time(fields, record, now_ms)
        if millis is None:  # a value no reader understands: the read time, the value kept
            rejection = self._keep_unparsed(fields)
            if rejection is not None:
                return rejection
            millis = now_ms
        rejection = self._check_window(millis, now_ms)
        if rejection is not None:
            return rejection
        if record.stream is not None:
            fields.setdefault("stream", record.stream)
        for key, value in self._extra.items():
            fields.setdefault(key, value)
        fields[self._time_field] = iso_from_millis(millis)
        if self._id_field is not None:
            fields[self._id_field] = event_id(self.identity, record.start_offset)
        return orjson.dumps(fields)

    def build_parsed(self, parsed: list[dict[str, Any]], starts: list[int]) -> list[bytes] | None:
        """The events `build` makes of lines whose parser matched into `parsed` (one dict per
        line, from the line starting at `starts[i]`, no container stream or time), without
        its per-line steps that cannot apply: one read of the clock, each distinct time
        string converted once. None when a line needs what only `build` does (no time, a
        time that does not parse or lies outside the windows): nothing is counted then, and
        the caller goes line by line."""
        now_ms = int(self._now() * 1000)
        earliest, latest = now_ms - self._late_ms, now_ms + self._early_ms
        key, consume, parse = self._time_key, self._consume_time_key, self._time.parse
        converted: dict[str, int | None] = {}
        extra, time_field, id_field = self._extra.items(), self._time_field, self._id_field
        events: list[bytes] = []
        for fields, start in zip(parsed, starts, strict=False):
            value = fields.get(key)
            if type(value) is not str or not value:
                return None
            millis = converted.get(value, -1)
            if millis == -1:
                millis = converted[value] = parse(value, now_ms)
            if millis is None or not earliest <= millis <= latest:
                return None
            if consume:
                del fields[key]
            for name, static in extra:
                fields.setdefault(name, static)
            fields[time_field] = iso_from_millis(millis)
            if id_field is not None:
                fields[id_field] = event_id(self.identity, start)
            events.append(orjson.dumps(fields))
        return events

    def _fields(self, text: str) -> dict[str, Any]:
        if self._parser is None:
            return {"message": text}
        fields = self._parser.parse(text)
        if fields is None:
            self.counters.unmatched += 1
            return {"message": text}
        return fields

    def _event_time(self, fields: dict[str, Any], record: Record, now_ms: int) -> int | None:
        """Epoch milliseconds; None when the record has a time value that does not parse
        (left in `fields` for `_keep_unparsed`)."""
        value = fields.get(self._time_key)
        if value is not None and value != "":
            millis = self._time.parse(value, now_ms)
            if millis is None:
                return None
            if self._consume_time_key:
                del fields[self._time_key]
            return millis
        if self._consume_time_key:
            fields.pop(self._time_key, None)
        if record.time:
            millis = parse_iso8601(record.time, self._container_time.zone)
            if millis is not None:
                return millis
        self.counters.time_missing += 1
        return now_ms

    def _keep_unparsed(self, fields: dict[str, Any]) -> Rejection | None:
        """Polaris fails or drops a row whose time does not parse, so the event leaves with
        the read time; the value stays where it was, or — when it sits in ``time_field``,
        which the read time takes — moves to ``<time_field>_raw``. Refused (dead letter)
        only when that name is taken too: nothing is overwritten."""
        self.counters.time_unparsed += 1
        if self._time_key != self._time_field:
            return None  # it stays under its own name
        if self._raw_time_key in fields:
            return Rejection(
                INVALID_TIME,
                f"{self._time_field!r} holds no time and {self._raw_time_key!r} is taken",
            )
        fields[self._raw_time_key] = fields[self._time_field]
        return None

    def _check_window(self, millis: int, now_ms: int) -> Rejection | None:
        if millis < now_ms - self._late_ms:
            self.counters.too_late += 1
            return Rejection(TOO_LATE, _window_detail(millis, now_ms, "late", self._late_ms))
        if millis > now_ms + self._early_ms:
            self.counters.too_early += 1
            return Rejection(TOO_EARLY, _window_detail(millis, now_ms, "early", self._early_ms))
        return None


def _time_key(options: SourceParsing, parser: Parser | None) -> str:
    if options.time.field is not None:
        return options.time.field
    if parser is not None and parser.time_key is not None:
        return parser.time_key
    return options.time_field


def _metadata(
    options: SourceParsing, path: str, environ: Mapping[str, str] | None
) -> dict[str, str]:
    kubernetes = options.kubernetes
    if kubernetes is None:
        return {}
    found = PodMetadata()
    if kubernetes.metadata_from_path:
        found = found.merged(metadata_from_path(path) or PodMetadata())
    if kubernetes.sidecar_env:
        found = found.merged(
            metadata_from_env(os.environ if environ is None else environ) or PodMetadata()
        )
    return found.event_fields()


def _window_detail(millis: int, now_ms: int, side: str, window_ms: int) -> str:
    days = abs(now_ms - millis) / 86_400_000
    direction = "before" if side == "late" else "after"
    return (
        f"event time {iso_from_millis(millis)} is {days:.1f} days {direction} the read time "
        f"{iso_from_millis(now_ms)}, outside the {side} window of {window_ms / 86_400_000:g} days"
    )
