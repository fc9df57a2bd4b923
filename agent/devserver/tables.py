"""The embedded database: one SQLite table per Polaris table, plus each job's progress.

A job's rows and its new stream position are written in one transaction, so after a restart
(with a data directory) a job resumes exactly where its last batch ended. Access is serialised
by a lock because ingestion runs in worker threads while queries arrive on the event loop.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_STATE_TABLE = "_dev_job_state"
_READ_ACTIONS = frozenset(
    {sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_FUNCTION, sqlite3.SQLITE_RECURSIVE}
)


def quote(identifier: str) -> str:
    """An SQL identifier in double quotes, so names like `user` or `my-table` work."""
    return '"' + identifier.replace('"', '""') + '"'


@dataclass(frozen=True, slots=True)
class JobProgress:
    """Where a job is in its stream and what it did with the events so far."""

    position: int
    ingested: int = 0
    filtered: int = 0
    unparseable: int = 0

    def stats(self) -> dict[str, int]:
        return {
            "ingested": self.ingested,
            "filtered": self.filtered,
            "unparseable": self.unparseable,
        }


@dataclass(frozen=True, slots=True)
class QueryResult:
    columns: list[str]
    rows: list[list[Any]]


class QueryError(Exception):
    """SQL that SQLite refused, or that tried to write; the message is SQLite's."""


class Database:
    """One SQLite connection, in `path` or in memory."""

    def __init__(self, path: Path | None) -> None:
        self._path = path
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(
            ":memory:" if path is None else str(path),
            check_same_thread=False,
            isolation_level=None,
        )
        if path is not None:
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute(
            f"CREATE TABLE IF NOT EXISTS {_STATE_TABLE} (job_id TEXT PRIMARY KEY, "
            "position INTEGER, ingested INTEGER, filtered INTEGER, unparseable INTEGER)"
        )

    def __repr__(self) -> str:
        return f"<Database {self._path or ':memory:'}>"

    def table_exists(self, name: str) -> bool:
        with self._lock:
            row = self._conn.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)
            ).fetchone()
        return row is not None

    def ensure_table(self, name: str, columns: Sequence[tuple[str, str]]) -> None:
        """Create the table, or add the columns an existing one lacks (schemas only grow)."""
        with self._lock:
            existing = {row[1] for row in self._conn.execute(f"PRAGMA table_info({quote(name)})")}
            if not existing:
                spec = ", ".join(f"{quote(col)} {sql_type}".rstrip() for col, sql_type in columns)
                self._conn.execute(f"CREATE TABLE {quote(name)} ({spec})")
                self._conn.execute(
                    f"CREATE INDEX IF NOT EXISTS {quote(name + '__time_idx')} "
                    f"ON {quote(name)} (__time)"
                )
                return
            for col, sql_type in columns:
                if col not in existing:
                    self._conn.execute(
                        f"ALTER TABLE {quote(name)} ADD COLUMN {quote(col)} {sql_type}".rstrip()
                    )

    def progress(self, job_id: str) -> JobProgress | None:
        with self._lock:
            row = self._conn.execute(
                f"SELECT position, ingested, filtered, unparseable FROM {_STATE_TABLE} "
                "WHERE job_id = ?",
                (job_id,),
            ).fetchone()
        return None if row is None else JobProgress(*row)

    def write_batch(
        self,
        table: str,
        columns: Sequence[str],
        rows: Sequence[Sequence[Any]],
        job_id: str,
        progress: JobProgress,
    ) -> None:
        """Insert rows and record the job's new progress atomically."""
        names = ", ".join(quote(c) for c in columns)
        marks = ", ".join("?" for _ in columns)
        with self._lock:
            self._conn.execute("BEGIN")
            try:
                if rows:
                    self._conn.executemany(
                        f"INSERT INTO {quote(table)} ({names}) VALUES ({marks})", rows
                    )
                self._conn.execute(
                    f"INSERT OR REPLACE INTO {_STATE_TABLE} VALUES (?, ?, ?, ?, ?)",
                    (
                        job_id,
                        progress.position,
                        progress.ingested,
                        progress.filtered,
                        progress.unparseable,
                    ),
                )
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def query(self, sql: str) -> QueryResult:
        """Run one read-only statement; anything that would write is refused by SQLite."""
        with self._lock:
            self._conn.set_authorizer(_read_only)
            try:
                cursor = self._conn.execute(sql)
                rows = [list(row) for row in cursor.fetchall()]
                columns = [d[0] for d in cursor.description or ()]
            except (sqlite3.Error, sqlite3.Warning) as exc:
                raise QueryError(str(exc)) from None
            finally:
                self._conn.set_authorizer(None)
        return QueryResult(columns, rows)

    def close(self) -> None:
        with self._lock:
            self._conn.close()


def _read_only(
    action: int, _arg1: str | None, _arg2: str | None, _db: str | None, _source: str | None
) -> int:
    return sqlite3.SQLITE_OK if action in _READ_ACTIONS else sqlite3.SQLITE_DENY
