"""Journal export format, written: what `systemd-journal-remote` turns into journal files.

Tests, the benchmark and the boot check build real journal files with it; the agent itself
never writes a journal. Format: https://systemd.io/JOURNAL_EXPORT_FORMATS/ — one
``NAME=value`` line per field, a blank line after each entry; a value holding a newline or
bytes that are not text is written as ``NAME\\n``, its length as 64-bit little endian, the
bytes, ``\\n``.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Mapping

Value = str | bytes | int
Entry = Mapping[str, Value | list[Value]]


def export_entry(fields: Entry) -> bytes:
    """One entry in export format, blank line included."""
    parts: list[bytes] = []
    for name, values in fields.items():
        key = name.encode()
        for value in values if isinstance(values, list) else [values]:  # a list: repeated
            raw = value if isinstance(value, bytes) else str(value).encode()
            if b"\n" in raw or not _printable(raw):
                parts.append(key + b"\n" + struct.pack("<Q", len(raw)) + raw + b"\n")
            else:
                parts.append(key + b"=" + raw + b"\n")
    parts.append(b"\n")
    return b"".join(parts)


def export_stream(entries: Iterable[Entry]) -> bytes:
    return b"".join(export_entry(entry) for entry in entries)


def _printable(raw: bytes) -> bool:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return all(ch >= " " or ch == "\t" for ch in text)
