"""`DevServer`: the local Polaris endpoint's state and lifecycle, and the Python API tests use.

The HTTP surface lives in `app.py`; this module owns what it acts on (catalog, streams,
database, job runners, faults, request records) and starts/stops the aiohttp site.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Collection, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from agent.devserver.auth import DEFAULT_TOKEN_LIFETIME, Authenticator
from agent.devserver.catalog import Catalog, Connection
from agent.devserver.errors import BadRequest, Conflict, NotFound
from agent.devserver.faults import Faults
from agent.devserver.ingest import JobRunner
from agent.devserver.jobs import Job, JobSpec, now_timestamp, parse_job_spec
from agent.devserver.names import check_name
from agent.devserver.streams import StreamStore
from agent.devserver.tables import Database, JobProgress, QueryResult

# Bodies up to this size are read so that oversized payloads get a proper 413 with headers.
READ_LIMIT_BYTES = 256 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """One Events API request as the server saw it.

    `status` is 0 for a request whose connection was reset by a fault. `body_bytes` is the
    decompressed size (the raw size when it could not be decompressed); `line_count` counts
    the non-blank lines of the body whether or not they were kept.
    """

    status: int
    connection: str
    content_encoding: str | None
    auth_user: str | None = field(repr=False)  # an API key: kept out of reprs and logs
    body_bytes: int
    line_count: int
    at: float


class DevServer:
    """A faithful local stand-in for the Polaris Events, Connections, Jobs and Query APIs."""

    def __init__(
        self,
        *,
        api_keys: Collection[str] = ("dev-key",),
        data_dir: Path | None = None,
        rate_limit_per_minute: int = 6000,
        max_payload_bytes: int = 1_000_000,
        auto_create_connections: Collection[str] = (),
        oauth_clients: Mapping[str, str] | None = None,
        token_lifetime: float = DEFAULT_TOKEN_LIFETIME,
        clock: Callable[[], float] = time.monotonic,
        in_place_job_updates: bool = True,
    ) -> None:
        self.api_keys = frozenset(api_keys)
        # API keys (Basic, in any of Imply's forms) and OAuth clients (tokens age on `clock`)
        self.auth = Authenticator(
            self.api_keys, oauth_clients, token_lifetime=token_lifetime, clock=clock
        )
        # False: `PUT /jobs/{id}` with a changed spec answers 400, for a client's fallback
        # (cancel and recreate) to be tested; Polaris' docs do not promise in-place updates.
        self.in_place_job_updates = in_place_job_updates
        self.data_dir = data_dir
        if data_dir is not None:
            data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.faults = Faults(  # tests pass a clock to end a fault window when they choose
            rate_limit_per_minute=rate_limit_per_minute,
            max_payload_bytes=max_payload_bytes,
            clock=clock,
        )
        self.requests: list[RequestRecord] = []
        self.status_counts: Counter[int] = Counter()
        self.catalog = Catalog(None if data_dir is None else data_dir / "catalog.json")
        self.streams = StreamStore(None if data_dir is None else data_dir / "streams")
        self.database = Database(None if data_dir is None else data_dir / "tables.sqlite")
        self.runners: dict[str, JobRunner] = {}
        self._readers: dict[str, list[JobRunner]] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._runner: web.AppRunner | None = None
        self._url: str | None = None
        for name in auto_create_connections:
            if name not in self.catalog.connections:
                self.create_connection(name)

    def __repr__(self) -> str:
        return (
            f"<DevServer {self._url or 'stopped'} connections={len(self.catalog.connections)} "
            f"jobs={len(self.catalog.jobs)} requests={len(self.requests)}>"
        )

    # ------------------------------------------------------------------ lifecycle

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        """Listen on host:port (0 picks a free port; see `url`) and start the job runners."""
        from agent.devserver.app import build_app

        for name in self.catalog.connections:
            self.streams.get(name)
        for job in self.catalog.jobs.values():
            if job.running:
                self._start_runner(job)
        runner = web.AppRunner(
            build_app(self), access_log=None, auto_decompress=False, handle_signals=False
        )
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        await site.start()
        self._runner = runner
        bound = runner.addresses[0]
        self._url = f"http://{_host_for_url(host)}:{bound[1]}"

    async def stop(self) -> None:
        """Stop listening, stop the job runners (a batch in flight finishes), close storage."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.gather(*(runner.settled() for runner in self.runners.values()))
        self._tasks.clear()
        self.streams.close()
        self.database.close()
        self._url = None

    @property
    def url(self) -> str:
        """`http://127.0.0.1:PORT` once started."""
        if self._url is None:
            raise RuntimeError("the dev-server is not running; call start() first")
        return self._url

    # ------------------------------------------------------------------ Python API for tests

    def received_lines(self, connection: str | None = None) -> list[bytes]:
        """Every accepted event line of `connection`, in arrival order, without the newline.

        With no connection: the lines of all connections, one connection after another.
        """
        if connection is None:
            return [line for name in self.streams.known() for line in self.received_lines(name)]
        if connection not in self.streams.known():
            return []
        return self.streams.get(connection).all_lines()

    def create_connection(self, name: str) -> None:
        """Create a push_streaming connection (like `POST /connections`)."""
        self.catalog.add_connection(Connection(check_name("connection", name), now_timestamp()))
        self.streams.get(name)

    def fail_next(
        self,
        status: int,
        count: int = 1,
        *,
        retry_after: float | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Shortcut for `faults.fail_next`."""
        self.faults.fail_next(status, count, retry_after=retry_after, headers=headers)

    def fail_for(self, status: int, seconds: float, *, retry_after: float | None = None) -> None:
        """Shortcut for `faults.fail_for`."""
        self.faults.fail_for(status, seconds, retry_after=retry_after)

    def delay(self, seconds: float, count: int | None = None) -> None:
        """Shortcut for `faults.delay`."""
        self.faults.delay(seconds, count)

    def reset_next(self, count: int = 1) -> None:
        """Shortcut for `faults.reset_next`."""
        self.faults.reset_next(count)

    async def wait_for_ingestion(self, max_wait: float = 10.0) -> None:
        """Return once every job has ingested everything its connection holds."""
        deadline = time.monotonic() + max_wait
        while not all(runner.caught_up for runner in self.runners.values()):
            if time.monotonic() > deadline:
                raise TimeoutError(f"jobs still ingesting after {max_wait} s: {self.runners}")
            await asyncio.sleep(0.005)

    async def query(self, sql: str) -> QueryResult:
        """Run read-only SQL once ingestion caught up, or after 10 s regardless
        (raises tables.QueryError). Waiting makes "push, then query" scripts deterministic."""
        with contextlib.suppress(TimeoutError):
            await self.wait_for_ingestion()
        return await asyncio.to_thread(self.database.query, sql)

    def job_stats(self, job_id: str) -> dict[str, int]:
        """Counters of a job: ingested, filtered (outside the time window), unparseable."""
        if job_id in self.runners:
            return self.runners[job_id].progress.stats()
        saved = self.database.progress(job_id)
        return (saved or JobProgress(0)).stats()

    def job_json(self, job: Job) -> dict[str, Any]:
        """A job as the Jobs API shows it, with its counters and health."""
        runner = self.runners.get(job.id)
        if runner is None:
            return job.to_json(self.job_stats(job.id))
        return job.to_json(self.job_stats(job.id), runner.failure, started=runner.started)

    def stats(self) -> dict[str, Any]:
        """What `GET /_dev/stats` answers."""
        return {
            "requests": {
                "total": len(self.requests),
                "byStatus": {str(k): v for k, v in sorted(self.status_counts.items())},
            },
            "lines": {name: self.streams.get(name).line_count for name in self.streams.known()},
            "connections": sorted(self.catalog.connections),
            "jobs": {
                job_id: {"tableName": runner.job.spec.table_name, **runner.progress.stats()}
                for job_id, runner in self.runners.items()
            },
        }

    # ------------------------------------------------------------------ used by app.py

    def record(self, record: RequestRecord) -> None:
        self.requests.append(record)
        self.status_counts[record.status] += 1

    def accept_events(self, connection: str, lines: list[bytes]) -> None:
        """Append accepted lines; wake only the jobs that read this connection."""
        self.streams.get(connection).append(lines)
        for runner in self._readers.get(connection, ()):
            runner.wake()

    def delete_connection(self, name: str) -> None:
        self.catalog.remove_connection(name)
        self.streams.drop(name)

    def create_job(self, body: Any) -> Job:
        """Validate and start a streaming job; raises InvalidSpec/Conflict/BadRequest."""
        spec = parse_job_spec(body)
        if spec.connection_name not in self.catalog.connections:
            raise BadRequest(f"source.connectionName {spec.connection_name!r}: no such connection")
        for other in self.catalog.jobs.values():
            if other.running and other.spec.table_name == spec.table_name:
                raise Conflict(
                    f"table {spec.table_name!r} already has a streaming job ({other.id})"
                )
        if not spec.create_table_if_not_exists and not self.database.table_exists(spec.table_name):
            raise BadRequest(
                f"table {spec.table_name!r} does not exist; set createTableIfNotExists to true"
            )
        self.database.ensure_table(spec.table_name, [(c.name, c.sql_type) for c in spec.columns()])
        job = Job.create(spec, body, self._start_position(spec))
        self.catalog.add_job(job)
        self._start_runner(job)
        return job

    def _start_position(self, spec: JobSpec) -> int:
        """Where a new job starts reading: the table's kept position when the table's last
        job read the same connection, else its readFromPoint.

        Polaris docs (Configure streaming ingestion, "Reset streaming job offset"): for a
        given table and stream Polaris preserves the reading checkpoint, "even if you use a
        new connection or ingestion job"; it resets only when the table's new job reads a
        different stream. Here a push_streaming connection is its stream.
        """
        previous = [
            job for job in self.catalog.jobs.values() if job.spec.table_name == spec.table_name
        ]
        if previous and previous[-1].spec.connection_name == spec.connection_name:
            last = previous[-1]
            saved = self.database.progress(last.id)
            return saved.position if saved is not None else last.start_position
        stream = self.streams.get(spec.connection_name)
        return 0 if spec.read_from_point == "earliest" else stream.end()

    def jobs(self, types: Collection[str] = (), health_statuses: Collection[str] = ()) -> list[Job]:
        """Jobs in creation order, filtered as `GET /jobs?type=...&healthStatus=...` does:
        several values of one parameter match any of them; different parameters all apply."""
        out = []
        for job in self.catalog.jobs.values():
            if types and "streaming" not in types:  # the dev-server runs streaming jobs only
                continue
            if health_statuses and self.job_health(job)["status"] not in health_statuses:
                continue
            out.append(job)
        return out

    def job_health(self, job: Job) -> dict[str, Any]:
        runner = self.runners.get(job.id)
        return job.health(runner.failure if runner else None)

    def job_status(self, job: Job) -> dict[str, Any]:
        """What `GET /jobs/{id}/status` answers: the job's state without its spec."""
        document = self.job_json(job)
        keys = ("executionStatus", "desiredExecutionStatus", "health", "lastUpdatedTimestamp")
        return {key: document[key] for key in keys}

    def job(self, job_id: str) -> Job:
        found = self.catalog.jobs.get(job_id)
        if found is None:
            raise NotFound(f"job {job_id!r} does not exist")
        return found

    async def cancel_job(self, job_id: str) -> Job:
        """Stop the job's runner (a batch in flight completes) and free its table."""
        job = self.job(job_id)
        if not job.running:
            return job
        await self._stop_runner(job)
        canceled = job.canceled()
        self.catalog.replace_job(canceled)
        return canceled

    async def update_job(self, job_id: str, body: Any) -> Job:
        """Replace a running job's spec in place: its runner restarts with the new mappings
        at the position it had reached, so nothing is read twice or skipped."""
        job = self.job(job_id)
        spec = parse_job_spec(body)
        if not self.in_place_job_updates:
            raise BadRequest(
                f"job {job.id} cannot be updated in place here (the dev-server runs with"
                " in-place job updates off); cancel it and create a new job"
            )
        for what, before, after in (
            ("target.tableName", job.spec.table_name, spec.table_name),
            ("source.connectionName", job.spec.connection_name, spec.connection_name),
        ):
            if before != after:
                raise BadRequest(
                    f"{what} cannot change on an existing job ({before!r} -> {after!r});"
                    " cancel the job and create a new one"
                )
        self.database.ensure_table(spec.table_name, [(c.name, c.sql_type) for c in spec.columns()])
        await self._stop_runner(job)
        updated = job.updated(spec, body)
        self.catalog.replace_job(updated)
        self._start_runner(updated)
        return updated

    async def _stop_runner(self, job: Job) -> None:
        task = self._tasks.pop(job.id, None)
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        runner = self.runners.pop(job.id, None)
        if runner is not None:
            await runner.settled()
            self._readers[job.spec.connection_name].remove(runner)

    def _start_runner(self, job: Job) -> None:
        runner = JobRunner(job, self.streams.get(job.spec.connection_name), self.database)
        self.runners[job.id] = runner
        self._readers.setdefault(job.spec.connection_name, []).append(runner)
        # start()/stop() are separate calls, so no single TaskGroup can span them: the tasks
        # are kept here and cancelled and awaited in stop().
        task = asyncio.get_running_loop().create_task(runner.run(), name=f"job-{job.id}")
        self._tasks[job.id] = task


def _host_for_url(host: str) -> str:
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host


@asynccontextmanager
async def running_dev_server(**kwargs: Any) -> AsyncIterator[DevServer]:
    """A DevServer listening on 127.0.0.1 and a free port for the duration of the block."""
    server = DevServer(**kwargs)
    await server.start("127.0.0.1", 0)
    try:
        yield server
    finally:
        await server.stop()
