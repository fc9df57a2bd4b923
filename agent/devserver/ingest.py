"""Ingestion: a job reads its connection's stream from its position and writes rows.

Each job has one runner task that wakes when its connection receives events and drains the
stream in batches; the mapping work and the SQLite insert run in a worker thread, so the
Events API stays fast whatever the jobs cost. Connections with no job cost nothing here.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import structlog

from agent.devserver.expressions import Timestamp
from agent.devserver.jobs import Column, Job
from agent.devserver.streams import Stream
from agent.devserver.tables import Database, JobProgress

BATCH_LINES = 5000


@dataclass(frozen=True, slots=True)
class Transformed:
    """What a run of lines became. When `failed_at` is set, line `failed_at` had a null or
    unparseable `__time`: `rows` hold only the lines before it and `failure` says why."""

    rows: list[list[Any]]
    filtered: int
    unparseable: int
    failed_at: int | None = None
    failure: str | None = None


class JobFailed(Exception):
    """Ingestion stopped for good on an event, as Polaris fails a job (the message says why)."""


_NATIVE = frozenset({type(None), str, int, float})


def storable(value: Any) -> Any:
    """A Python value as SQLite stores it: timestamps as ISO text, JSON as text."""
    if type(value) in _NATIVE:
        return value
    if isinstance(value, Timestamp):
        return value.iso()
    return orjson.dumps(value).decode()


class Mapper:
    """Applies a job's inputSchema and mappings to event lines, with Polaris' time window."""

    def __init__(self, job: Job, clock: Callable[[], float] = time.time) -> None:
        self._columns: list[Column] = job.spec.columns()
        self._convert = job.spec.input_converter()
        self._late_ms = job.spec.late_seconds * 1000
        self._early_ms = job.spec.early_seconds * 1000
        self._clock = clock
        self.column_names = [c.name for c in self._columns]
        self._time_index = self.column_names.index("__time")
        self._time_expression = next(
            m.expression for m in job.spec.mappings if m.column_name == "__time"
        )

    def transform(self, lines: Sequence[bytes]) -> Transformed:
        """Rows for the lines that map to a valid, in-window `__time`; the rest are counted.

        A null or unparseable `__time` stops the run there: "If the source data has null or
        unparseable timestamps, Polaris fails the ingestion job" (Polaris docs, Timestamp
        expressions). A line that is not JSON, or breaks another mapping, is unparseable.
        """
        now_ms = self._clock() * 1000
        oldest, newest = now_ms - self._late_ms, now_ms + self._early_ms
        evaluators = [c.compiled.evaluate for c in self._columns]
        rows: list[list[Any]] = []
        filtered = unparseable = 0
        for index, line in enumerate(lines):
            try:
                row = self._convert(orjson.loads(line))
                values = [evaluate(row) for evaluate in evaluators]
            except Exception:
                # A row that breaks a mapping is unparseable, as in Polaris; never a crash.
                unparseable += 1
                continue
            event_time = values[self._time_index]
            if isinstance(event_time, int | float) and not isinstance(event_time, bool):
                event_time = Timestamp(int(event_time))
            if not isinstance(event_time, Timestamp) or not (
                -62135596800000 <= event_time.millis <= 253402300799999
            ):
                what = "null" if event_time is None else f"unparseable ({event_time!r})"
                failure = (
                    f"__time is {what} for the event {_excerpt(line)}: Polaris fails the job on"
                    f" a null or unparseable timestamp (mapping: {self._time_expression})"
                )
                return Transformed(rows, filtered, unparseable, index, failure)
            if not oldest <= event_time.millis <= newest:
                filtered += 1
                continue
            values[self._time_index] = event_time
            rows.append([storable(v) for v in values])
        return Transformed(rows, filtered, unparseable)


def _excerpt(line: bytes, limit: int = 120) -> str:
    text = line.decode("utf-8", "replace")
    return text if len(text) <= limit else text[: limit - 3] + "..."


class JobRunner:
    """Drains one job's stream into its table; `wake()` after the stream grows.

    `start_position` is where a job with no saved progress begins: its readFromPoint, or the
    table's kept position when an earlier job of the table read the same connection.
    """

    def __init__(self, job: Job, stream: Stream, database: Database) -> None:
        self.job = job
        self._stream = stream
        self._database = database
        self._mapper = Mapper(job)
        saved = database.progress(job.id)
        self.progress = saved if saved is not None else JobProgress(job.start_position)
        self._wake = asyncio.Event()
        self._wake.set()
        self._busy = False
        self._inflight: asyncio.Future[None] | None = None
        self.started = False
        self.failure: str | None = None

    def __repr__(self) -> str:
        return f"<JobRunner {self.job.id} table={self.job.spec.table_name} {self.progress}>"

    def wake(self) -> None:
        self._wake.set()

    @property
    def caught_up(self) -> bool:
        """Nothing left to do: everything read, or stopped for good by a failure."""
        if self.failure is not None:
            return True
        return (
            not self._busy
            and not self._wake.is_set()
            and self.progress.position >= self._stream.end()
        )

    async def run(self) -> None:
        """Runs until cancelled (server stop, job canceled) or until ingestion fails: an event
        with a null or unparseable `__time`, or a batch that cannot be written; the job then
        reports itself failed, with the reason, rather than dying unseen."""
        self.started = True
        while True:
            await self._wake.wait()
            self._busy = True
            self._wake.clear()
            try:
                await self._drain()
            except JobFailed as exc:
                self._fail(str(exc))
                return
            except Exception as exc:  # any failure becomes the job's health, and a log line
                self._fail(f"ingestion stopped: {exc}")
                return
            finally:
                self._busy = False

    async def settled(self) -> None:
        """Wait for a batch a cancelled run left in its worker thread, so the saved position
        is final before another job of the table starts from it."""
        if self._inflight is not None:
            await asyncio.gather(self._inflight, return_exceptions=True)

    def _fail(self, reason: str) -> None:
        self.failure = reason
        structlog.get_logger("agent.devserver").error(
            "devserver.job_failed", job_id=self.job.id, error=reason
        )

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        while (before := self.progress.position) < (end := self._stream.end()):
            self._inflight = loop.run_in_executor(None, self._ingest_batch, end)
            await asyncio.shield(self._inflight)  # a cancel leaves the batch to finish whole
            self._inflight = None
            if self.progress.position == before:  # a partial line: never the case, but no spin
                return

    def _ingest_batch(self, end: int) -> None:
        """Worker thread: read, map, write rows and the new position in one transaction.

        On an event that fails the job, the rows before it are written and the position
        stops at it: a job created later on the same table and connection starts there.
        """
        start = self.progress.position
        lines, position = self._stream.read(start, end, BATCH_LINES)
        result = self._mapper.transform(lines)
        if result.failed_at is not None:
            _, position = self._stream.read(start, end, result.failed_at)
        progress = JobProgress(
            position=position,
            ingested=self.progress.ingested + len(result.rows),
            filtered=self.progress.filtered + result.filtered,
            unparseable=self.progress.unparseable + result.unparseable,
        )
        self._database.write_batch(
            self.job.spec.table_name, self._mapper.column_names, result.rows, self.job.id, progress
        )
        self.progress = progress
        if result.failure is not None:
            raise JobFailed(result.failure)
