"""Dead letters: what cannot be delivered is written down with its reason, never dropped."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import IO

import orjson
import structlog

from agent.state.files import open_append, private_dir, sync_dir

log = structlog.get_logger("agent.dead_letter")
MAX_STORED_BYTES = 1_048_576


class DeadLetters:
    """Appends NDJSON records to `data_dir/dead-letter/YYYY-MM-DD.ndjson` (0600).

    The day file is opened without following links (`open_append`): a link planted at its
    name is moved aside, never appended through."""

    def __init__(self, directory: Path) -> None:
        self.directory = private_dir(directory)  # refused now (UnsafeState), not at a 3 a.m. write
        self.count = 0
        self.by_reason: dict[str, int] = {}
        self._day = ""
        self._file: IO[bytes] | None = None

    def __repr__(self) -> str:
        return f"<DeadLetters {self.directory} count={self.count}>"

    def write(self, reason: str, path: str, offset: int, data: bytes, detail: str = "") -> None:
        record = {
            "time": _iso_now(),
            "reason": reason,
            "path": path,
            "offset": offset,
            "bytes": len(data),
            "line": data[:MAX_STORED_BYTES].decode("utf-8", "replace"),
        }
        if detail:
            record["detail"] = detail
        self._open().write(orjson.dumps(record) + b"\n")
        self.count += 1
        self.by_reason[reason] = self.by_reason.get(reason, 0) + 1
        log.warning("dead_lettered", reason=reason, path=path, offset=offset, bytes=len(data))

    def snapshot(self) -> dict[str, int]:
        """Records written since start, by reason."""
        return dict(self.by_reason)

    def sync(self) -> None:
        """Make written records durable: called before a checkpoint moves past them."""
        if self._file is not None:
            self._file.flush()
            os.fsync(self._file.fileno())

    def close(self) -> None:
        if self._file is not None:
            self.sync()
            self._file.close()
            self._file = None

    def today_path(self) -> Path:
        """The file today's records go to (UTC days)."""
        return self.directory / f"{_today()}.ndjson"

    def _open(self) -> IO[bytes]:
        day = _today()
        if self._file is None or day != self._day:
            self.close()
            private_dir(self.directory)
            fd = open_append(self.directory / f"{day}.ndjson")
            self._file = os.fdopen(fd, "ab")
            self._day = day
            sync_dir(self.directory)  # the new file's name survives a crash with its records
        return self._file


def _today() -> str:
    return time.strftime("%Y-%m-%d", time.gmtime())


def _iso_now() -> str:
    """``2026-11-26T01:02:03.456Z`` (UTC, milliseconds): the form events carry their time in."""
    millis = time.time_ns() // 1_000_000
    second = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(millis // 1000))
    return f"{second}.{millis % 1000:03d}Z"
