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
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC
from typing import Any, Final

import orjson

from agent.parse.assemble import Record
from agent.parse.kubernetes import PodDirectory, PodMetadata, metadata_from_env, metadata_from_path
from agent.parse.parsers import Parser, build_parser
from agent.parse.settings import SourceParsing
from agent.parse.timestamps import (
    IsoSeconds,
    TimeParser,
    iso_from_millis,
    parse_iso8601,
    time_parser,
    written,
)
from agent.parse.userregex import PatternTimeout

TOO_LATE: Final = "too_late"
TOO_EARLY: Final = "too_early"
INVALID_TIME: Final = "invalid_time"
PARSE_TIMEOUT: Final = "parse_timeout"
"""The user's pattern did not finish on the line within its bound (`agent.parse.userregex`)."""
RAW_TIME_SUFFIX: Final = "_raw"
_UNSEEN: Final = "\x00unseen"
"""Not a time string `BlockTimes` has converted yet (an ISO time holds no NUL)."""
_UNSEEN_SECOND: Final = -1 << 62
_UTC_TEXT = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3,9}Z"
).fullmatch


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
    parse_timeout: int = 0  # the user's pattern took too long on the line: dead-lettered


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
    `pods`: where a ``metadata_from_api`` source finds the labels of the file's pod; asked
    again whenever its generation moves, so a label changed on the pod shows on later lines.
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
        pods: PodDirectory | None = None,
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
        self._container_time = IsoSeconds(options.time.zone)
        self._container_parse = time_parser("iso8601", options.time.zone)
        self._time_key = _time_key(options, self._parser)
        self._raw_time_key = options.time_field + RAW_TIME_SUFFIX
        self._consume_time_key = (
            self._parser is not None
            and self._time_key == self._parser.time_key
            and self._time_key != self._time_field
        )
        self._late_ms = int(options.late_window * 1000)
        self._early_ms = int(options.early_window * 1000)
        self._static = dict(fields or {})
        self._pod = _metadata(options, path, environ)
        self._extra = {**(self._pod.event_fields() if self._pod else {}), **self._static}
        self._pods = _directory(options, self._pod, pods)
        self._pods_seen = -1  # the directory's generation `_extra` was made at
        self._id_field = options.event_id

    def __repr__(self) -> str:
        return f"<EventBuilder {self.path} {self.counters}>"

    def build(self, record: Record) -> bytes | Rejection:
        """The event for `record`, or why it must not be sent."""
        if self._pods is not None and self._pods.generation != self._pods_seen:
            self._ask_pods(self._pods)
        now_ms = int(self._now() * 1000)
        try:
            fields = self._fields(record.text)
        except PatternTimeout as timeout:
            self.counters.parse_timeout += 1
            return Rejection(PARSE_TIMEOUT, timeout.detail)
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

    def build_parsed(
        self, parsed: list[dict[str, Any]], starts: list[int]
    ) -> tuple[list[bytes], int] | None:
        """The events `build` makes of lines whose parser matched into `parsed` (one dict per
        line, from the line starting at `starts[i]`, no container stream or time), without
        its per-line steps that cannot apply: one read of the clock, each distinct time
        string converted once, a missing time the one read time. None when a line needs what
        only `build` does (a time that is not a string, does not parse or lies outside the
        windows): the caller goes line by line. With the events, how many times were
        missing, for the caller to count (``counters.time_missing``) once it sends them."""
        if self._pods is not None and self._pods.generation != self._pods_seen:
            self._ask_pods(self._pods)
        now_ms = int(self._now() * 1000)
        earliest, latest = now_ms - self._late_ms, now_ms + self._early_ms
        key, consume = self._time_key, self._consume_time_key
        times = BlockTimes(self._time, now_ms, earliest, latest)
        read_time = iso_from_millis(now_ms)  # inside the windows: both are longer than zero
        extra, time_field, id_field = self._extra.items(), self._time_field, self._id_field
        missing = 0
        events: list[bytes] = []
        for fields, start in zip(parsed, starts, strict=False):
            value = fields.get(key)
            if value is None or value == "":
                if consume:
                    fields.pop(key, None)
                missing += 1
                iso: str | None = read_time
            elif type(value) is str:
                iso = times.iso(value)
                if iso is None:
                    return None
                if consume:
                    del fields[key]
            else:
                return None
            for name, static in extra:
                fields.setdefault(name, static)
            fields[time_field] = iso
            if id_field is not None:
                fields[id_field] = event_id(self.identity, start)
            events.append(orjson.dumps(fields))
        return events, missing

    def build_container_lines(
        self, messages: list[str], streams: list[str], times: list[str], starts: list[int]
    ) -> tuple[list[bytes], int] | None:
        """The events `build` makes of whole container lines (no parser, no ``P`` fragment,
        no blank message) holding `messages[i]`, written to `streams[i]` at the runtime's
        `times[i]`, from the line starting at `starts[i]`: ``{"message", "stream", static
        fields, time}`` in that order, as `build` sets them, with one read of the clock and
        each time read as `BlockTimes` reads it. None when a line needs what only `build`
        does (a time that does not parse or lies outside the windows, a parser, a time field
        that is the message): the caller goes line by line. With the events, how many times
        were missing (`build_parsed`)."""
        if self._parser is not None or self._time_key == "message":
            return None
        if self._pods is not None and self._pods.generation != self._pods_seen:
            self._ask_pods(self._pods)
        now_ms = int(self._now() * 1000)
        block_times = BlockTimes(self._container_parse, now_ms, *self._window(now_ms))
        read_time = iso_from_millis(now_ms)
        isos = [block_times.iso(time) if time else read_time for time in times]
        if None in isos:
            return None
        # `build`'s setdefault of each static field and assignment of the time, as a display:
        # a repeated key keeps its first place and takes the last value
        rest = {k: v for k, v in self._extra.items() if k not in ("message", "stream")}
        time_field, id_field = self._time_field, self._id_field
        if id_field is None:
            events = [
                orjson.dumps({"message": m, "stream": s, **rest, time_field: t})
                for m, s, t in zip(messages, streams, isos, strict=True)
            ]
        else:
            identity = self.identity
            events = [
                orjson.dumps(
                    {
                        "message": m,
                        "stream": s,
                        **rest,
                        time_field: t,
                        id_field: event_id(identity, o),
                    }
                )
                for m, s, t, o in zip(messages, streams, isos, starts, strict=False)
            ]
        return events, times.count("")

    def _window(self, now_ms: int) -> tuple[int, int]:
        return now_ms - self._late_ms, now_ms + self._early_ms

    def _ask_pods(self, pods: PodDirectory) -> None:
        """The path's fields, then the API's (labels...), then the source's static ones."""
        assert self._pod is not None
        self._pods_seen = pods.generation
        details = pods.details(self._pod)
        found = {} if details is None else details.event_fields()
        self._extra = {**self._pod.event_fields(), **found, **self._static}

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
            millis = self._container_time(record.time)
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


class BlockTimes:
    """One block's event times as `EventBuilder.build` writes them, each read once: a time in
    UTC as ISO 8601 writes it with milliseconds or more (``2026-12-03T15:02:58.123Z``, what
    RFC 5424, Docker and most JSON loggers write) by its second, read once and kept, and its
    first three fraction digits, which is what ``auto`` and ``iso8601`` make of it; any other
    text once per distinct value."""

    __slots__ = ("_converted", "_earliest", "_latest", "_now_ms", "_parse", "_seconds", "_utc")

    def __init__(self, time: TimeParser, now_ms: int, earliest: int, latest: int) -> None:
        self._parse = time.parse
        self._utc = time.format in ("auto", "iso8601")
        self._now_ms, self._earliest, self._latest = now_ms, earliest, latest
        self._seconds: dict[str, int | None] = {}
        self._converted: dict[str, str | None] = {}

    def iso(self, value: str) -> str | None:
        """`value` as the event's time field, None when it is not a time inside the
        windows (the line path decides what that becomes)."""
        if self._utc and _UTC_TEXT(value) is not None:
            second = value[:19]
            base = self._seconds.get(second, _UNSEEN_SECOND)
            if base == _UNSEEN_SECOND:
                base = self._seconds[second] = _utc_second(second)
            if base is None:
                return None
            if not self._earliest <= base + int(value[20:23]) <= self._latest:
                return None
            return value if len(value) == 24 else value[:23] + "Z"
        iso = self._converted.get(value, _UNSEEN)
        if iso is _UNSEEN:
            millis = self._parse(value, self._now_ms)
            if millis is not None and self._earliest <= millis <= self._latest:
                iso = self._converted[value] = iso_from_millis(millis)
            else:
                iso = self._converted[value] = None
        return iso


def _utc_second(second: str) -> int | None:
    """The epoch milliseconds of ``YYYY-MM-DDTHH:MM:SS`` in UTC, when `iso_from_millis` writes
    that second as it is written here (not the year 1, which it writes ``1-01-01``)."""
    millis = parse_iso8601(second + "Z", UTC)
    if millis is None or not iso_from_millis(millis).startswith(second):
        return None
    return millis


def _time_key(options: SourceParsing, parser: Parser | None) -> str:
    if options.time.field is not None:
        return options.time.field
    if parser is not None and parser.time_key is not None:
        return parser.time_key
    return options.time_field


def _metadata(
    options: SourceParsing, path: str, environ: Mapping[str, str] | None
) -> PodMetadata | None:
    kubernetes = options.kubernetes
    if kubernetes is None:
        return None
    found = PodMetadata()
    if kubernetes.metadata_from_path:
        found = found.merged(metadata_from_path(path) or PodMetadata())
    if kubernetes.sidecar_env:
        found = found.merged(
            metadata_from_env(os.environ if environ is None else environ) or PodMetadata()
        )
    return found


def _directory(
    options: SourceParsing, pod: PodMetadata | None, pods: PodDirectory | None
) -> PodDirectory | None:
    """`pods` when the source asks the API and the path or environment names a pod."""
    kubernetes = options.kubernetes
    if pods is None or kubernetes is None or not kubernetes.metadata_from_api:
        return None
    if pod is None or not (pod.pod_uid or (pod.namespace and pod.pod)):
        return None
    return pods


def _window_detail(millis: int, now_ms: int, side: str, window_ms: int) -> str:
    days = abs(now_ms - millis) / 86_400_000
    direction = "before" if side == "late" else "after"
    return (
        f"event time {written(millis)} is {days:.1f} days {direction} the read time "
        f"{written(now_ms)}, outside the {side} window of {window_ms / 86_400_000:g} days"
    )
