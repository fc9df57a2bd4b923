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

``include_fields``/``exclude_fields`` name journal fields (``_COMM``, ``CODE_LINE``); the
core ones (message, time, level, unit, identifier, pid, hostname, boot id) are always kept.
A field journalctl prints as an array of numbers holds bytes that are not printable text: it
is decoded like MESSAGE. The static ``fields`` of the source are added where the entry has
no key of that name.

The per-entry work is one ``orjson.loads`` (a whole block at once), one dict comprehension
and one ``orjson.dumps``; the time is formatted once per second of journal time.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import orjson

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

    def __repr__(self) -> str:
        return f"<JournalPiece events={self.events} bytes={len(self.data)}>"


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
    ) -> None:
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

    def __repr__(self) -> str:
        return f"<EntryEncoder time_field={self._time_field} piece_bytes={self._piece_bytes}>"

    def encode(self, lines: list[bytes]) -> EncodedEntries:
        """`lines`: whole JSON lines without their newlines, in journal order. Every entry's
        cursor ends up in a piece: an entry dropped by exclude_units moves the cursor of the
        next piece, or of an empty one at the end (safe as soon as the ones before it)."""
        self._counts = counts = _Counts()
        try:
            entries: list[Any] = orjson.loads(b"[" + b",".join(lines) + b"]")
        except orjson.JSONDecodeError:
            entries = [self._load_one(line) for line in lines]
        pieces: list[JournalPiece] = []
        events: list[bytes] = []
        size = 0
        cursor = last = ""
        dumps = orjson.dumps
        for entry in entries:
            if type(entry) is not dict or type(entry.get("__CURSOR")) is not str:
                counts.unreadable += 1
                continue
            event = self._event(entry)
            if event is None:
                counts.skipped += 1
                cursor = entry["__CURSOR"]
                continue
            data = dumps(event)
            if events and size + len(data) + 1 > self._piece_bytes:
                pieces.append(JournalPiece(b"\n".join(events) + b"\n", len(events), last))
                events, size = [], 0
            events.append(data)
            size += len(data) + 1
            cursor = last = entry["__CURSOR"]
        if events:
            pieces.append(JournalPiece(b"\n".join(events) + b"\n", len(events), cursor))
        elif cursor:
            pieces.append(JournalPiece(b"", 0, cursor))
        return EncodedEntries(pieces, counts.skipped, counts.invalid_utf8, counts.unreadable)

    def _load_one(self, line: bytes) -> Any:
        try:
            return orjson.loads(line)
        except orjson.JSONDecodeError:
            return None

    def _event(self, entry: dict[str, Any]) -> dict[str, Any] | None:
        unit = entry.get("_SYSTEMD_UNIT")
        if unit is not None and unit in self._exclude_units:
            return None
        include, exclude = self._include, self._exclude
        # Client fields first, trusted ones after: a trusted field wins a name clash.
        event: dict[str, Any] = {
            name: value
            for name, value in entry.items()
            if name[0] != "_" and (include is None or name in include) and name not in exclude
        }
        event.update(
            (name[1:], value)
            for name, value in entry.items()
            if name[0] == "_"
            and name[1] != "_"
            and (include is None or name in include)
            and name not in exclude
        )
        message = event.pop("MESSAGE", None)
        if type(message) is not str and message is not None:
            message = self._text(message, joined=True)
        event["message"] = message if message is not None else ""
        stamp = entry.get("__REALTIME_TIMESTAMP")
        if stamp is not None:
            event[self._time_field] = self._iso(int(stamp))
        level = event.pop("PRIORITY", None)
        if level is not None:
            event["level"] = _LEVEL_OF.get(level, level) if type(level) is str else level
        if self._fields:
            for name, value in self._fields.items():
                event.setdefault(name, value)
        for name, value in event.items():
            if type(value) is list:
                event[name] = self._text(value, joined=False)
        return event

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
