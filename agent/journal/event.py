"""Journal entries (``journalctl -o json`` lines) -> NDJSON events.

The mapping, one rule per kind of field:

===========================  ==============================================================
journal field                event key
===========================  ==============================================================
``MESSAGE``                  ``message`` (bytes decoded as UTF-8, invalid bytes replaced
                             and counted; several values joined by newlines)
``__REALTIME_TIMESTAMP``     the source's time field (``timestamp``), ISO 8601 UTC, ms
``PRIORITY``                 ``level``: emerg alert crit err warning notice info debug
                             (a value outside 0..7 is kept as written)
``_FOO`` (trusted, set by    ``FOO``: ``_SYSTEMD_UNIT`` -> ``SYSTEMD_UNIT``, ``_PID`` ->
journald)                    ``PID``, ``_HOSTNAME``, ``_BOOT_ID``, ``_COMM``, ``_UID``...;
                             a client's own field of the same name loses to the trusted one
``FOO`` (from the client)    ``FOO``: ``SYSLOG_IDENTIFIER``, ``CODE_FILE``...
``__CURSOR``, other ``__*``  not sent (the cursor is the checkpoint, not data)
===========================  ==============================================================

An entry whose time is outside the source's late/early window (Polaris would drop it without
a word) is not sent: it rides the block's last piece as a dead letter (`too_late`,
`too_early`), written before that piece's cursor can become safe. With ``event_id``, the
event gets 16 hex characters of a digest of its cursor: the same when read twice.

``include_fields``/``exclude_fields`` name journal fields (``_COMM``, ``CODE_LINE``); the
core ones (message, time, level, unit, identifier, pid, hostname, boot id) are always kept.
A field journalctl prints as an array of numbers holds bytes that are not printable text: it
is decoded like MESSAGE. The static ``fields`` of the source are added where the entry has
no key of that name.

The per-entry work is one ``orjson.loads`` (a whole block at once), one dict comprehension
and one ``orjson.dumps``; the time is formatted once per second of journal time.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import orjson

from agent.encode.values import ENCODER_FAILED
from agent.encode.window import ReadClock
from agent.journal.settings import LEVELS, JournalSettings

CORE_FIELDS: Final = (
    "MESSAGE",
    "PRIORITY",
    "_SYSTEMD_UNIT",
    "SYSLOG_IDENTIFIER",
    "_PID",
    "_HOSTNAME",
    "_BOOT_ID",
)
_LEVEL_OF: Final = {str(number): name for number, name in enumerate(LEVELS)}
MAX_FIELD_NAMES: Final = 4096


@dataclass(frozen=True, slots=True)
class EncodedEntries:
    """Events for a run of entries, cut into pieces of at most `piece_bytes`."""

    pieces: list[JournalPiece]
    skipped: int  # entries dropped by exclude_units
    invalid_utf8: int  # values whose invalid UTF-8 was replaced
    unreadable: int  # lines that were not a JSON object (counted, never sent)


@dataclass(frozen=True, slots=True)
class JournalPiece:
    """Whole NDJSON events; `cursor` is the last entry's: what becomes safe with the piece."""

    data: bytes
    events: int
    cursor: str
    rejected: tuple[Rejected, ...] = ()  # entries this piece's cursor covers, not sent

    def __repr__(self) -> str:
        return f"<JournalPiece events={self.events} bytes={len(self.data)}>"


@dataclass(frozen=True, slots=True)
class Rejected:
    """An entry Polaris would drop silently: dead-lettered with its reason and cursor."""

    reason: str  # too_late, too_early
    cursor: str
    data: bytes  # the event as it would have been sent


_CURSOR: Final = re.compile(rb'"__CURSOR":"((?:[^"\\]|\\.)*)"')


def quarantined(lines: list[bytes]) -> EncodedEntries:
    """Entries the encoder failed on (a defect of ours some entry found), as dead letters
    ``encoder_failed`` under their cursors, in one empty piece whose cursor is the last one:
    the position moves past them once the letters are written, and nothing else stops (as
    `agent.tail.quarantine` does for files). Lines without a cursor are counted unreadable."""
    rejected: list[Rejected] = []
    cursor = ""
    for line in lines:
        found = _CURSOR.search(line)
        if found is None:
            continue
        cursor = found.group(1).decode("utf-8", "replace")
        rejected.append(Rejected(ENCODER_FAILED, cursor, line))
    pieces = [JournalPiece(b"", 0, cursor, tuple(rejected))] if cursor else []
    return EncodedEntries(pieces, 0, 0, len(lines) - len(rejected))


@dataclass(slots=True)
class _Counts:
    invalid_utf8: int = 0
    unreadable: int = 0
    skipped: int = 0


class EntryEncoder:
    """Encodes blocks of ``journalctl -o json`` lines from one source."""

    def __init__(
        self,
        settings: JournalSettings,
        *,
        time_field: str = "timestamp",
        fields: Mapping[str, str | int | float | bool] | None = None,
        piece_bytes: int = 1 << 20,
        late_window: float | None = None,
        early_window: float | None = None,
        event_id: str | None = None,
        now: Callable[[], float] = time.time,
    ) -> None:
        self._clock = (
            ReadClock(now, time_field, late_window, early_window or float(2**40))
            if late_window is not None
            else None
        )
        self._event_id = event_id
        self._time_field = time_field
        self._fields = dict(fields or {})
        self._piece_bytes = piece_bytes
        self._include = (
            frozenset(settings.include_fields) | frozenset(CORE_FIELDS)
            if settings.include_fields
            else None
        )
        self._exclude = frozenset(settings.exclude_fields) - frozenset(CORE_FIELDS)
        self._exclude_units = frozenset(settings.exclude_units)
        self._second = -1
        self._prefix = ""
        self._counts = _Counts()
        self._names: dict[str, str] = {}  # journal field -> event key, "" = not sent
        self._contested: set[str] = set()  # X for every trusted _X seen

    def __repr__(self) -> str:
        return f"<EntryEncoder time_field={self._time_field} piece_bytes={self._piece_bytes}>"

    def encode(self, lines: list[bytes]) -> EncodedEntries:
        """`lines`: whole JSON lines without their newlines, in journal order. Every entry's
        cursor ends up in a piece: an entry dropped by exclude_units moves the cursor of the
        next piece, or of an empty one at the end (safe as soon as the ones before it)."""
        self._counts = counts = _Counts()
        body = b",".join(lines)
        arrays = b'":[' in body  # a binary or repeated field somewhere in the block
        try:
            entries: list[Any] = orjson.loads(b"[" + body + b"]")
        except orjson.JSONDecodeError:
            entries = [self._load_one(line) for line in lines]
        pieces: list[JournalPiece] = []
        events: list[bytes] = []
        size = 0
        cursor = last = ""
        dumps = orjson.dumps
        clock, rejected = self._clock, []
        if clock is not None:
            clock.tick()
        for entry in entries:
            if type(entry) is not dict or type(entry.get("__CURSOR")) is not str:
                counts.unreadable += 1
                continue
            event = self._event(entry, arrays)
            if event is None:
                counts.skipped += 1
                cursor = entry["__CURSOR"]
                continue
            if self._event_id is not None:
                digest = hashlib.blake2b(entry["__CURSOR"].encode(), digest_size=8)
                event.setdefault(self._event_id, digest.hexdigest())
            data = dumps(event)
            stamp = entry.get("__REALTIME_TIMESTAMP")
            if clock is not None and stamp is not None:
                reason = clock.outside(int(stamp) // 1000)
                if reason is not None:
                    cursor = entry["__CURSOR"]
                    rejected.append(Rejected(reason, cursor, data))
                    continue
            if events and size + len(data) + 1 > self._piece_bytes:
                pieces.append(JournalPiece(b"\n".join(events) + b"\n", len(events), last))
                events, size = [], 0
            events.append(data)
            size += len(data) + 1
            cursor = last = entry["__CURSOR"]
        # The last piece's cursor covers the whole block: it carries the block's rejections.
        if events:
            data = b"\n".join(events) + b"\n"
            pieces.append(JournalPiece(data, len(events), cursor, tuple(rejected)))
        elif cursor:
            pieces.append(JournalPiece(b"", 0, cursor, tuple(rejected)))
        return EncodedEntries(pieces, counts.skipped, counts.invalid_utf8, counts.unreadable)

    def _load_one(self, line: bytes) -> Any:
        try:
            return orjson.loads(line)
        except orjson.JSONDecodeError:
            return None

    def _event(self, entry: dict[str, Any], arrays: bool) -> dict[str, Any] | None:
        if self._exclude_units and entry.get("_SYSTEMD_UNIT") in self._exclude_units:
            return None
        names = self._names
        try:
            event = {target: v for k, v in entry.items() if (target := names[k])}
        except KeyError:
            self._learn(entry)
            event = {target: v for k, v in entry.items() if (target := names[k])}
        # A client's X and journald's _X both become X: the trusted one wins.
        for name in entry.keys() & self._contested:
            trusted = entry.get("_" + name)
            if trusted is not None:
                event[name] = trusted
        message = event.get("message")
        if type(message) is not str:
            event["message"] = "" if message is None else self._text(message, joined=True)
        stamp = entry.get("__REALTIME_TIMESTAMP")
        if stamp is not None:
            event[self._time_field] = self._iso(int(stamp))
        level = event.get("level")
        if level is not None:
            event["level"] = _LEVEL_OF.get(level, level) if type(level) is str else level
        if self._fields:
            for name, value in self._fields.items():
                event.setdefault(name, value)
        if arrays:
            for name, value in event.items():
                if type(value) is list:
                    event[name] = self._text(value, joined=False)
        return event

    def _learn(self, entry: dict[str, Any]) -> None:
        """Add the event key (or "" for dropped) of every field name not seen yet."""
        names = self._names
        if len(names) > MAX_FIELD_NAMES:  # client-chosen names: keep the map bounded
            names.clear()
        include, exclude = self._include, self._exclude
        for name in entry:
            if name in names:
                continue
            dropped = include is not None and name not in include
            if dropped or name.startswith("__") or name in exclude:
                target = ""
            elif name == "MESSAGE":
                target = "message"
            elif name == "PRIORITY":
                target = "level"
            elif name.startswith("_"):
                target = name[1:]
                self._contested.add(target)
            else:
                target = name
            names[name] = target

    def _text(self, value: Any, *, joined: bool) -> Any:
        """A value journalctl printed as a list: bytes (a list of numbers) or several
        values (a list of strings and byte lists)."""
        if value and all(type(item) is int for item in value):
            return self._decode(bytes(value))
        parts = [item if type(item) is str else self._decode(bytes(item)) for item in value]
        return "\n".join(parts) if joined else parts

    def _decode(self, raw: bytes) -> str:
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            self._counts.invalid_utf8 += 1
            return raw.decode("utf-8", "replace")

    def _iso(self, micros: int) -> str:
        second, rest = divmod(micros, 1_000_000)
        if second != self._second:
            self._second = second
            self._prefix = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")
        return f"{self._prefix}.{rest // 1000:03d}Z"
