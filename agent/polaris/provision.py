"""`polaris-agent setup`: make Polaris hold the connection and streaming job the config asks for.

It plans fully before it changes anything: it reads the connection and the table's streaming
job (``GET /jobs?type=streaming``), compares the job with the config and prints the plan.
Only then does it act, and only on a plan that can be carried out whole: a job that cannot
change as asked leaves everything as it was, the connection included.

Idempotent: what exists and matches is left alone. What is missing is created. A job that
differs is changed only with ``--apply``: in place (``PUT /jobs/{id}``) when Polaris accepts
that, otherwise by canceling it and creating it again with the config's spec. Recreating
loses nothing: "For a given table and either a topic or stream, Polaris preserves the reading
checkpoint of the topic or stream. This behavior applies even if you use a new connection or
ingestion job" (docs.imply.io/polaris/streaming-ingestion, "Reset streaming job offset"), so
the new job on the same table and connection reads on from where the old one stopped, and
events sent meanwhile wait in the connection. It is also why ``readFromPoint`` is not
compared on an existing job: it only decides where a table's first job on a stream starts.
What it cannot do is move a job to another connection: that is another stream, where the
table's position does not carry over; ``setup`` says so and changes nothing.

``--dry-run`` prints the plan and changes nothing. Exit codes: 0 nothing to do, or the plan
was carried out; 3 the plan has changes that were not made (without ``--apply``, with
``--dry-run``, or blocked); 78 the config is invalid; 1 Polaris failed or refused.
"""

from __future__ import annotations

import asyncio
import sys
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Final

import orjson

from agent.config import Config, JobConfig
from agent.polaris import errors
from agent.polaris.api import Connection, Job, JsonObject, PolarisApi

EXIT_OK: Final = 0
EXIT_FAILED: Final = 1
EXIT_CONFIG: Final = 78  # EX_CONFIG, as the CLI
EXIT_DIFFERS: Final = 3

CONNECTION_TYPE: Final = "push_streaming"
# What identifies a job rather than describes it: a job cannot move to another stream.
FIXED_FIELDS: Final = frozenset({"type", "source.type", "source.connectionName"})
FORMAT_SETTINGS: Final = {"format": "nd-json"}
# What Polaris adds to a job it reports; everything else in its answer is the job's spec.
_JOB_METADATA: Final = frozenset(
    {
        "id",
        "desiredExecutionStatus",
        "executionStatus",
        "health",
        "createdBy",
        "lastModifiedBy",
        "createdTimestamp",
        "lastUpdatedTimestamp",
        "ingestionStats",
        "spec",
    }
)


class _Absent:
    """Marks a side of a difference where the field or item does not exist."""

    def __repr__(self) -> str:
        return "(absent)"


ABSENT: Final = _Absent()


@dataclass(frozen=True, slots=True)
class Difference:
    """One field where Polaris' job (``existing``) differs from the config (``wanted``)."""

    path: str
    existing: Any
    wanted: Any

    def __str__(self) -> str:
        return f"{self.path}: {_show(self.existing)} -> {_show(self.wanted)}"


class JobStep(Enum):
    """What the plan does to the table's streaming job."""

    CREATE = "create"
    KEEP = "keep"
    CHANGE = "change"  # update in place, else cancel and recreate
    BLOCKED = "blocked"  # differs where no change can go


@dataclass(frozen=True, slots=True)
class Plan:
    """Everything `setup` would do, decided before anything is done."""

    connection: str
    create_connection: bool
    table: str
    job_step: JobStep
    wanted: JsonObject = field(repr=False)
    existing: Job | None = None
    differences: tuple[Difference, ...] = ()

    @property
    def changes(self) -> bool:
        return self.create_connection or self.job_step is not JobStep.KEEP

    def lines(self) -> list[str]:
        """The plan as an operator reads it, one step a line (and a line per difference)."""
        out = [
            f"connection {self.connection}: "
            + ("missing, will be created" if self.create_connection else "exists")
        ]
        job = self.existing
        head = f"job for table {self.table}"
        if self.job_step is JobStep.CREATE:
            out.append(
                f"{head}: missing, will be created reading {self.connection}"
                f" from readFromPoint {self.wanted.get('readFromPoint', 'latest')!r},"
                " or from the table's kept position if it read this connection before"
            )
            return out
        assert job is not None
        if self.job_step is JobStep.KEEP:
            out.append(f"{head}: exists, matches")
            return out
        out.append(f"{head}: exists, differs from the config (job {job.id}):")
        out.extend(f"  {difference}" for difference in self.differences)
        if self.job_step is JobStep.CHANGE:
            out.append(
                f"  plan: update job {job.id} in place; if Polaris refuses, cancel it and"
                f" create it again: the table keeps its reading position on {self.connection},"
                " so no event is read twice or skipped"
            )
        return out

    def blocked_reason(self) -> str:
        fixed = ", ".join(d.path for d in self.differences if d.path in FIXED_FIELDS)
        job_id = self.existing.id if self.existing else "?"
        return (
            f"nothing changed: {fixed} cannot change on an existing job (another connection"
            " is another stream, where the table's reading position does not carry over);"
            f" cancel job {job_id} in Polaris, then run setup again"
        )


def job_spec(job: JobConfig, connection: str) -> JsonObject:
    """The Polaris streaming job spec (camelCase, as on the reference page) for ``job``."""
    spec: JsonObject = {
        "type": "streaming",
        "target": {"type": "table", "tableName": job.table},
        "createTableIfNotExists": job.create_table_if_not_exists,
        "source": {
            "type": "connection",
            "connectionName": connection,
            "inputSchema": [{"name": f.name, "dataType": f.data_type} for f in job.input_schema],
            "formatSettings": dict(FORMAT_SETTINGS),
        },
        "mappings": [{"columnName": m.column, "expression": m.expression} for m in job.mappings],
        "readFromPoint": job.read_from_point,
    }
    if job.late_message_rejection_period is not None:
        spec["lateMessageRejectionPeriod"] = job.late_message_rejection_period
    if job.early_message_rejection_period is not None:
        spec["earlyMessageRejectionPeriod"] = job.early_message_rejection_period
    return spec


def diff_job(wanted: JsonObject, existing: JsonObject) -> list[Difference]:
    """How ``existing`` (Polaris' job) differs from ``wanted`` (built by :func:`job_spec`).

    Only what the config decides is compared. ``inputSchema`` and ``mappings`` are matched by
    name and column, so order does not matter; a difference is named by the item's index in
    the config. ``formatSettings`` keys Polaris adds as defaults are ignored. ``readFromPoint``
    is never compared: it only matters when a table's first job on a stream is created. The
    rejection periods are compared only when both sides state them.
    """
    out: list[Difference] = []
    want_source = _object(wanted.get("source"))
    have_source = _object(existing.get("source"))
    _scalar("type", existing.get("type", ABSENT), wanted["type"], out)
    _scalar("source.type", have_source.get("type", ABSENT), want_source["type"], out)
    _scalar(
        "source.connectionName",
        have_source.get("connectionName", ABSENT),
        want_source["connectionName"],
        out,
    )
    _keyed(
        "source.inputSchema",
        "name",
        _list(have_source.get("inputSchema")),
        want_source["inputSchema"],
        out,
    )
    have_format = _object(have_source.get("formatSettings"))
    for key, value in want_source["formatSettings"].items():
        _scalar(f"source.formatSettings.{key}", have_format.get(key, ABSENT), value, out)
    _keyed("mappings", "columnName", _list(existing.get("mappings")), wanted["mappings"], out)
    _scalar(
        "createTableIfNotExists",
        existing.get("createTableIfNotExists", ABSENT),
        wanted["createTableIfNotExists"],
        out,
    )
    for key in ("lateMessageRejectionPeriod", "earlyMessageRejectionPeriod"):
        if key in wanted and key in existing:
            _scalar(key, existing[key], wanted[key], out)
    return out


def setup_main(config: Config, *, replace: bool, dry_run: bool = False) -> int:
    """Entry point of ``polaris-agent setup``; returns the exit code."""
    return asyncio.run(provision(config, replace=replace, dry_run=dry_run))


async def provision(config: Config, *, replace: bool, dry_run: bool = False) -> int:
    """Plan, print the plan, then carry it out when allowed; the exit code (module doc)."""
    if config.job is None:
        _err("error: job: required key is missing (setup provisions the [job] section)")
        return EXIT_CONFIG
    if not config.polaris.tls_verify:
        _err("warning: polaris.tls_verify = false: TLS certificates are NOT verified")
    try:
        async with PolarisApi.open(config.polaris) as api:
            plan = await make_plan(api, config.job, config.polaris.connection)
            for line in plan.lines():
                _out(line)
            _warn_if_failed(plan.existing)
            if not plan.changes:
                return EXIT_OK
            if dry_run:
                _err("dry run: nothing changed")
                return EXIT_DIFFERS
            if plan.job_step is JobStep.BLOCKED:
                _err(plan.blocked_reason())
                return EXIT_DIFFERS
            if plan.job_step is JobStep.CHANGE and not replace:
                _err("nothing changed (run setup --apply to carry out this plan)")
                return EXIT_DIFFERS
            return await carry_out(api, plan)
    except errors.PolarisApiError as exc:
        _err(f"error: {exc}")
        return EXIT_FAILED


async def make_plan(api: PolarisApi, job: JobConfig, connection: str) -> Plan:
    """Read what Polaris holds and decide every step; changes nothing."""
    existing_connection = await _find_connection(api, connection)
    if existing_connection is not None and existing_connection.type not in ("", CONNECTION_TYPE):
        raise errors.ConnectionTypeMismatch(connection, existing_connection.type, CONNECTION_TYPE)
    create_connection = existing_connection is None
    wanted = job_spec(job, connection)
    existing = await find_streaming_job(api, job.table)
    if existing is None:
        step, differences = JobStep.CREATE, []
    else:
        differences = diff_job(wanted, existing.raw)
        if not differences:
            step = JobStep.KEEP
        elif any(d.path in FIXED_FIELDS for d in differences):
            step = JobStep.BLOCKED
        else:
            step = JobStep.CHANGE
    return Plan(
        connection=connection,
        create_connection=create_connection,
        table=job.table,
        job_step=step,
        wanted=wanted,
        existing=existing,
        differences=tuple(differences),
    )


async def carry_out(api: PolarisApi, plan: Plan) -> int:
    """Do what the plan says (it is not blocked); each step is reported as it is done."""
    if plan.create_connection:
        try:
            await api.create_connection(plan.connection, CONNECTION_TYPE)
            _out(f"connection {plan.connection}: created")
        except errors.Conflict:  # created meanwhile: what the plan wanted
            _out(f"connection {plan.connection}: exists")
    head = f"job for table {plan.table}"
    if plan.job_step is JobStep.CREATE:
        created = await api.create_job(plan.wanted)
        _out(f"{head}: created, id {created.id}")
        return EXIT_OK
    if plan.job_step is not JobStep.CHANGE:
        return EXIT_OK
    existing = plan.existing
    assert existing is not None
    try:
        updated = await api.update_job(existing.id, plan.wanted)
    except errors.NotFound:
        raise  # the job went away meanwhile: plan again rather than guess
    except errors.RequestRejected as exc:
        _out(f"{head}: Polaris refused the update in place ({exc.polaris_message})")
    else:
        _out(f"{head}: updated in place, id {updated.id}")
        return EXIT_OK
    return await recreate(api, plan, existing)


async def recreate(api: PolarisApi, plan: Plan, existing: Job) -> int:
    """Cancel ``existing`` and create the config's job on the same table and connection; it
    reads on from the table's kept position. Should Polaris refuse the new spec, the old one
    is created again (from the same position), so the table is never left without a job."""
    head = f"job for table {plan.table}"
    await api.cancel_job(existing.id)
    _out(f"{head}: canceled job {existing.id}")
    try:
        created = await api.create_job(plan.wanted)
    except errors.RequestRejected as exc:
        restored = await api.create_job(previous_spec(existing))
        _out(f"{head}: restored the previous spec, id {restored.id}")
        _err(f"error: Polaris refused the new job: {exc}; the previous spec runs again")
        return EXIT_FAILED
    _out(
        f"{head}: recreated, id {created.id} (was {existing.id}); it reads {plan.connection}"
        " on from the table's kept position"
    )
    return EXIT_OK


def previous_spec(job: Job) -> JsonObject:
    """The spec a job was created with: its answer without what Polaris adds."""
    return {key: value for key, value in job.raw.items() if key not in _JOB_METADATA}


async def find_streaming_job(api: PolarisApi, table: str) -> Job | None:
    """The live streaming job writing to ``table`` (Polaris allows one), with its full spec."""
    for job in await api.list_jobs(job_type="streaming"):
        if job.type == "streaming" and job.table == table and job.desired_status != "canceled":
            if "mappings" in job.raw and "source" in job.raw:
                return job
            return await api.get_job(job.id)
    return None


def _warn_if_failed(job: Job | None) -> None:
    if job is None or job.raw.get("executionStatus") != "failed":
        return
    health = _object(job.raw.get("health"))
    issues = [str(issue) for issue in _list(health.get("issues"))]
    reason = "; ".join(issues) or "no reason given"
    _err(f"warning: job {job.id} has failed in Polaris: {reason}")


async def _find_connection(api: PolarisApi, name: str) -> Connection | None:
    try:
        return await api.get_connection(name)
    except errors.RequestRejected as exc:
        if exc.status == 405:  # no GET by name here: creating answers 409 when it exists
            return None
        raise


def _scalar(path: str, existing: Any, wanted: Any, out: list[Difference]) -> None:
    if existing != wanted:
        out.append(Difference(path, existing, wanted))


def _keyed(
    path: str, key: str, existing: list[Any], wanted: list[JsonObject], out: list[Difference]
) -> None:
    """Compare lists of objects matched on ``key``; report by the config's index."""
    by_key = {item[key]: item for item in existing if isinstance(item, dict) and key in item}
    for index, want in enumerate(wanted):
        have = by_key.pop(want[key], None)
        if have is None:
            out.append(Difference(f"{path}[{index}]", ABSENT, want))
            continue
        for field_name, value in want.items():
            _scalar(f"{path}[{index}].{field_name}", have.get(field_name, ABSENT), value, out)
    for extra_key, have in by_key.items():
        out.append(Difference(f"{path}[{key}={extra_key!r}]", have, ABSENT))


def _object(value: Any) -> JsonObject:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _show(value: Any) -> str:
    if value is ABSENT or isinstance(value, str):
        return repr(value)
    return orjson.dumps(value).decode()


def _out(line: str) -> None:
    print(line, flush=True)


def _err(line: str) -> None:
    print(line, file=sys.stderr, flush=True)
