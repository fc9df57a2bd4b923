"""Each connection's stream: the accepted event lines, in arrival order, kept whether or not a
job reads them (Polaris keeps them so a job with `readFromPoint: earliest` can catch up).

A position in a stream is an opaque int (a line index in memory, a byte offset on disk): jobs
keep one as their cursor and read forward from it.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from pathlib import Path


class Stream(ABC):
    """Append-only sequence of event lines (each without its trailing newline)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.line_count = 0

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} lines={self.line_count} end={self.end()}>"

    @abstractmethod
    def append(self, lines: list[bytes]) -> None:
        """Add lines at the end; called on the event loop only."""

    @abstractmethod
    def end(self) -> int:
        """The position after the last line: where a `latest` job starts."""

    @abstractmethod
    def read(self, start: int, end: int, max_lines: int) -> tuple[list[bytes], int]:
        """Up to `max_lines` lines from `start` (never past `end`), and the next position.

        Safe to call from a worker thread while the loop appends, as long as `end` was taken
        from `end()` beforehand.
        """

    def all_lines(self) -> list[bytes]:
        lines, _ = self.read(0, self.end(), max_lines=self.line_count)
        return lines

    def close(self) -> None:  # noqa: B027 - optional hook, a no-op for memory streams
        """Release resources (file handles)."""


class MemoryStream(Stream):
    """A list of bytes: the cheapest store for the million-line tests."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self._lines: list[bytes] = []

    def append(self, lines: list[bytes]) -> None:
        self._lines.extend(lines)
        self.line_count += len(lines)

    def end(self) -> int:
        return len(self._lines)

    def read(self, start: int, end: int, max_lines: int) -> tuple[list[bytes], int]:
        stop = min(end, start + max_lines)
        return self._lines[start:stop], max(start, stop)


class FileStream(Stream):
    """An NDJSON file per connection, appended once per accepted request."""

    _CHUNK = 1 << 20

    def __init__(self, name: str, path: Path) -> None:
        super().__init__(name)
        self._path = path
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        self._file = os.fdopen(fd, "ab")
        self._size = self._file.tell()
        if self._size:
            with path.open("rb") as existing:
                self.line_count = sum(
                    chunk.count(b"\n") for chunk in iter(lambda: existing.read(self._CHUNK), b"")
                )

    def append(self, lines: list[bytes]) -> None:
        if not lines:
            return
        data = b"\n".join(lines) + b"\n"
        self._file.write(data)
        self._file.flush()
        self._size += len(data)
        self.line_count += len(lines)

    def end(self) -> int:
        return self._size

    def read(self, start: int, end: int, max_lines: int) -> tuple[list[bytes], int]:
        if start >= end or max_lines <= 0:
            return [], start
        out: list[bytes] = []
        position = start
        with self._path.open("rb") as f:
            f.seek(start)
            while position < end and len(out) < max_lines:
                data = f.read(min(self._CHUNK, end - position))
                if not data:
                    break
                cut = data.rfind(b"\n")
                if cut < 0:
                    break
                pieces = data[:cut].split(b"\n")
                room = max_lines - len(out)
                if len(pieces) > room:
                    pieces = pieces[:room]
                    cut = sum(len(p) + 1 for p in pieces) - 1
                out.extend(pieces)
                position += cut + 1
                f.seek(position)
        return out, position

    def close(self) -> None:
        self._file.close()


class StreamStore:
    """The streams of all connections, in memory or as files under `directory`."""

    def __init__(self, directory: Path | None) -> None:
        self._directory = directory
        self._streams: dict[str, Stream] = {}

    def __repr__(self) -> str:
        where = self._directory or "memory"
        return f"<StreamStore {where} streams={len(self._streams)}>"

    def get(self, name: str) -> Stream:
        """The stream of `name`, created empty on first use (or reopened from disk)."""
        stream = self._streams.get(name)
        if stream is None:
            if self._directory is None:
                stream = MemoryStream(name)
            else:
                stream = FileStream(name, self._directory / f"{name}.ndjson")
            self._streams[name] = stream
        return stream

    def known(self) -> list[str]:
        return list(self._streams)

    def drop(self, name: str) -> None:
        """Forget a deleted connection's stream (its file too)."""
        stream = self._streams.pop(name, None)
        if stream is not None:
            stream.close()
            if isinstance(stream, FileStream):
                (self._directory or Path()).joinpath(f"{name}.ndjson").unlink(missing_ok=True)

    def close(self) -> None:
        for stream in self._streams.values():
            stream.close()
