"""`polaris-agent setup`: make Polaris hold the connection and streaming job the config asks for.

Idempotent by design: running it twice changes nothing the second time. What exists and
matches is left alone; what exists and differs is shown field by field and left alone too,
unless ``--apply`` asks for it: then the job is updated in place (``PUT /jobs/{id}``), which
keeps its position in the connection's stream. Cancelling and recreating it instead would
re-ingest the stream (``earliest``) or leave a gap (``latest``), so setup never does that.
"""

from __future__ import annotations

import asyncio
import sys
from dataclasses import dataclass
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
# What identifies a job rather than describes it: an update cannot change these.
FIXED_FIELDS: Final = frozenset({"type", "source.type", "source.connectionName"})
FORMAT_SETTINGS: Final = {"format": "nd-json"}


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
    and the rejection periods are compared only when both sides state them: Polaris' job
    answer need not echo a start point that only mattered at creation.
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
    for key in ("readFromPoint", "lateMessageRejectionPeriod", "earlyMessageRejectionPeriod"):
        if key in wanted and key in existing:
            _scalar(key, existing[key], wanted[key], out)
    return out


def setup_main(config: Config, *, replace: bool) -> int:
    """Entry point of ``polaris-agent setup``; returns the exit code."""
    return asyncio.run(provision(config, replace=replace))


async def provision(config: Config, *, replace: bool) -> int:
    """Create what is missing, report what exists; exit 0 ok, 1 failed, 2 config, 3 differs."""
    if config.job is None:
        _err("error: job: required key is missing (setup provisions the [job] section)")
        return EXIT_CONFIG
    if not config.polaris.tls_verify:
        _err("warning: polaris.tls_verify = false: TLS certificates are NOT verified")
    try:
        async with PolarisApi.open(config.polaris) as api:
            await ensure_connection(api, config.polaris.connection)
            return await ensure_job(api, config.job, config.polaris.connection, replace=replace)
    except errors.PolarisApiError as exc:
        _err(f"error: {exc}")
        return EXIT_FAILED


async def ensure_connection(api: PolarisApi, name: str) -> None:
    """Make sure a push_streaming connection called ``name`` exists."""
    existing = await _find_connection(api, name)
    if existing is None:
        try:
            await api.create_connection(name, CONNECTION_TYPE)
        except errors.Conflict:
            _out(f"connection {name}: exists")
            return
        _out(f"connection {name}: created")
        return
    if existing.type and existing.type != CONNECTION_TYPE:
        raise errors.ConnectionTypeMismatch(name, existing.type, CONNECTION_TYPE)
    _out(f"connection {name}: exists")


async def ensure_job(api: PolarisApi, job: JobConfig, connection: str, *, replace: bool) -> int:
    """Create the table's streaming job, or compare the one that exists with the config."""
    wanted = job_spec(job, connection)
    existing = await find_streaming_job(api, job.table)
    if existing is None:
        created = await api.create_job(wanted)
        _out(f"job for table {job.table}: created, id {created.id}")
        return EXIT_OK
    differences = diff_job(wanted, existing.raw)
    if not differences:
        _out(f"job for table {job.table}: exists, matches")
        return EXIT_OK
    _out(f"job for table {job.table}: exists, differs from the config (job {existing.id}):")
    for difference in differences:
        _out(f"  {difference}")
    fixed = [d for d in differences if d.path in FIXED_FIELDS]
    if not replace:
        _err("nothing changed (run setup --apply to update the job in place)")
        return EXIT_DIFFERS
    if fixed:
        _err(
            f"nothing changed: {', '.join(d.path for d in fixed)} cannot change on an existing"
            f" job; cancel job {existing.id} in Polaris, then run setup again"
        )
        return EXIT_DIFFERS
    updated = await api.update_job(existing.id, wanted)
    _out(f"job for table {job.table}: updated in place, id {updated.id}")
    return EXIT_OK


async def find_streaming_job(api: PolarisApi, table: str) -> Job | None:
    """The live streaming job writing to ``table`` (Polaris allows one), with its full spec."""
    for job in await api.list_jobs():
        if job.type == "streaming" and job.table == table and job.desired_status != "canceled":
            if "mappings" in job.raw and "source" in job.raw:
                return job
            return await api.get_job(job.id)
    return None


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
