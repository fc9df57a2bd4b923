"""Streaming ingestion job specs: validated the way Polaris does, so a spec the dev-server
accepts is one Polaris would accept too (for the subset we support), and echoed back in the
reference page's response shape."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from agent.devserver.errors import ExpressionError, InvalidSpec
from agent.devserver.expressions import (
    Compiled,
    ValueType,
    compile_expression,
    to_double,
    to_long,
    to_string,
)
from agent.devserver.names import check_table_name

INPUT_TYPES = ("string", "long", "double", "float", "json")
READ_FROM_POINTS = ("earliest", "latest")
DEFAULT_LATE_PERIOD = "P30D"
DEFAULT_EARLY_PERIOD = "P2000D"
DEV_USER = {"username": "dev-server", "userId": "00000000-0000-4000-8000-00000000d5e7"}

_PERIOD = re.compile(
    r"P(?:(\d+)Y)?(?:(\d+)M)?(?:(\d+)W)?(?:(\d+)D)?"
    r"(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?"
)
_PERIOD_UNITS = (365 * 86400, 30 * 86400, 7 * 86400, 86400, 3600, 60, 1)

_SQL_TYPES = {
    ValueType.STRING: "TEXT",
    ValueType.LONG: "INTEGER",
    ValueType.DOUBLE: "REAL",
    ValueType.TIMESTAMP: "TEXT",
    ValueType.JSON: "TEXT",
    ValueType.UNKNOWN: "",
}
_INPUT_SQL_TYPES = {"string": "TEXT", "long": "INTEGER", "double": "REAL", "float": "REAL"}
_INPUT_CONVERTERS: dict[str, Callable[[Any], Any]] = {
    "string": to_string,
    "long": to_long,
    "double": to_double,
    "float": to_double,
    "json": lambda value: value,
}


def period_seconds(text: object, key: str) -> float:
    """Seconds in an ISO 8601 period (`P30D`, `PT12H`); months are 30 days, years 365."""
    match = _PERIOD.fullmatch(text) if isinstance(text, str) else None
    if match is None or text in ("P", "PT"):
        raise InvalidSpec(f"{key} must be an ISO 8601 period such as P30D, got {text!r}")
    return sum(
        float(part or 0) * unit for part, unit in zip(match.groups(), _PERIOD_UNITS, strict=True)
    )


def now_timestamp() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True, slots=True)
class InputField:
    name: str
    data_type: str


@dataclass(frozen=True, slots=True)
class ColumnMapping:
    column_name: str
    expression: str


@dataclass(frozen=True, slots=True)
class Column:
    """A compiled mapping: the table column and how to compute it from a row."""

    name: str
    compiled: Compiled
    sql_type: str


@dataclass(frozen=True, slots=True)
class JobSpec:
    """The parts of a streaming job spec the dev-server acts on, plus the spec as sent."""

    table_name: str
    connection_name: str
    input_schema: tuple[InputField, ...]
    mappings: tuple[ColumnMapping, ...]
    create_table_if_not_exists: bool
    read_from_point: str
    late_message_rejection_period: str
    early_message_rejection_period: str
    source: dict[str, Any]
    target: dict[str, Any]

    @property
    def late_seconds(self) -> float:
        return period_seconds(self.late_message_rejection_period, "lateMessageRejectionPeriod")

    @property
    def early_seconds(self) -> float:
        return period_seconds(self.early_message_rejection_period, "earlyMessageRejectionPeriod")

    def columns(self) -> list[Column]:
        """Compile every mapping (the spec was validated, so this does not fail)."""
        types = {f.name: f.data_type for f in self.input_schema}
        return [_column(m, types) for m in self.mappings]

    def input_converter(self) -> Callable[[dict[str, Any]], dict[str, Any]]:
        """Build the function that applies inputSchema types to a decoded event."""
        fields = [(f.name, _INPUT_CONVERTERS[f.data_type]) for f in self.input_schema]

        def convert(event: dict[str, Any]) -> dict[str, Any]:
            return {name: convert(event.get(name)) for name, convert in fields}

        return convert


def _column(mapping: ColumnMapping, input_types: dict[str, str]) -> Column:
    compiled = compile_expression(mapping.expression)
    sql_type = _SQL_TYPES[compiled.type]
    if compiled.type == ValueType.UNKNOWN and len(compiled.fields) == 1:
        (name,) = compiled.fields
        if mapping.expression.strip() in (name, f'"{name}"'):
            sql_type = _INPUT_SQL_TYPES.get(input_types.get(name, ""), "TEXT")
    return Column(mapping.column_name, compiled, sql_type)


def _require(obj: Any, key: str, where: str) -> Any:
    if not isinstance(obj, dict) or key not in obj:
        raise InvalidSpec(f"{where}{key} is required")
    return obj[key]


def _require_str(obj: Any, key: str, where: str) -> str:
    value = _require(obj, key, where)
    if not isinstance(value, str) or not value:
        raise InvalidSpec(f"{where}{key} must be a non-empty string")
    return value


def parse_job_spec(body: Any) -> JobSpec:
    """Validate a `POST /jobs` body; raises InvalidSpec naming the offending field."""
    if not isinstance(body, dict):
        raise InvalidSpec("job spec must be a JSON object")
    job_type = _require_str(body, "type", "")
    if job_type != "streaming":
        raise InvalidSpec(f"type {job_type!r} is not supported by the dev-server; use 'streaming'")
    target = _require(body, "target", "")
    if _require_str(target, "type", "target.") != "table":
        raise InvalidSpec("target.type must be 'table'")
    table_name = check_table_name(_require_str(target, "tableName", "target."))
    source = _require(body, "source", "")
    if _require_str(source, "type", "source.") != "connection":
        raise InvalidSpec("source.type must be 'connection' for a streaming job")
    connection_name = _require_str(source, "connectionName", "source.")
    input_schema = _input_schema(_require(source, "inputSchema", "source."))
    format_settings = _require(source, "formatSettings", "source.")
    if _require_str(format_settings, "format", "source.formatSettings.") != "nd-json":
        raise InvalidSpec("source.formatSettings.format must be 'nd-json' (the Events API format)")
    mappings = _mappings(_require(body, "mappings", ""), input_schema)
    create = body.get("createTableIfNotExists", False)
    if not isinstance(create, bool):
        raise InvalidSpec("createTableIfNotExists must be true or false")
    read_from_point = body.get("readFromPoint", "latest")
    if read_from_point not in READ_FROM_POINTS:
        raise InvalidSpec(f"readFromPoint must be 'earliest' or 'latest', got {read_from_point!r}")
    late = body.get("lateMessageRejectionPeriod", DEFAULT_LATE_PERIOD)
    early = body.get("earlyMessageRejectionPeriod", DEFAULT_EARLY_PERIOD)
    period_seconds(late, "lateMessageRejectionPeriod")
    period_seconds(early, "earlyMessageRejectionPeriod")
    return JobSpec(
        table_name=table_name,
        connection_name=connection_name,
        input_schema=input_schema,
        mappings=mappings,
        create_table_if_not_exists=create,
        read_from_point=read_from_point,
        late_message_rejection_period=late,
        early_message_rejection_period=early,
        source=source,
        target=target,
    )


def _input_schema(value: Any) -> tuple[InputField, ...]:
    if not isinstance(value, list) or not value:
        raise InvalidSpec("source.inputSchema must be a non-empty list of {name, dataType}")
    fields: list[InputField] = []
    for i, item in enumerate(value):
        where = f"source.inputSchema[{i}]."
        name = _require_str(item, "name", where)
        data_type = _require_str(item, "dataType", where)
        if data_type not in INPUT_TYPES:
            raise InvalidSpec(
                f"{where}dataType {data_type!r} is not one of {', '.join(INPUT_TYPES)}"
            )
        if any(f.name == name for f in fields):
            raise InvalidSpec(f"source.inputSchema names {name!r} twice")
        fields.append(InputField(name, data_type))
    return tuple(fields)


def _mappings(value: Any, input_schema: tuple[InputField, ...]) -> tuple[ColumnMapping, ...]:
    if not isinstance(value, list) or not value:
        raise InvalidSpec("mappings must be a non-empty list of {columnName, expression}")
    known = {f.name for f in input_schema}
    types = {f.name: f.data_type for f in input_schema}
    mappings: list[ColumnMapping] = []
    for i, item in enumerate(value):
        where = f"mappings[{i}]."
        column = _require_str(item, "columnName", where)
        expression = _require_str(item, "expression", where)
        if any(m.column_name == column for m in mappings):
            raise InvalidSpec(f"mappings define column {column!r} twice")
        mapping = ColumnMapping(column, expression)
        try:
            compiled = _column(mapping, types).compiled
        except ExpressionError as exc:
            raise InvalidSpec(f"{where}expression for column {column!r}: {exc}") from None
        unknown = sorted(compiled.fields - known)
        if unknown:
            raise InvalidSpec(
                f"{where}expression for column {column!r} reads {', '.join(unknown)}, "
                "which source.inputSchema does not declare"
            )
        if column == "__time" and compiled.type in (ValueType.STRING, ValueType.DOUBLE):
            raise InvalidSpec(
                f"{where}__time must be a timestamp; wrap the field in TIME_PARSE(...) "
                "or MILLIS_TO_TIMESTAMP(...)"
            )
        mappings.append(mapping)
    if not any(m.column_name == "__time" for m in mappings):
        raise InvalidSpec('mappings must map the __time column, e.g. TIME_PARSE("event_time")')
    return tuple(mappings)


@dataclass(frozen=True, slots=True)
class Job:
    """A created job: its spec, identity and where in the stream it started reading."""

    id: str
    spec: JobSpec
    created_timestamp: str
    start_position: int
    raw: dict[str, Any]
    desired_status: str = "running"
    last_updated_timestamp: str = ""

    @classmethod
    def create(cls, spec: JobSpec, raw: dict[str, Any], start_position: int) -> Job:
        return cls(str(uuid.uuid4()), spec, now_timestamp(), start_position, raw)

    @property
    def running(self) -> bool:
        return self.desired_status == "running"

    def updated(self, spec: JobSpec, raw: dict[str, Any]) -> Job:
        """This job with a new spec; its id, creation and stream position stay."""
        return replace(self, spec=spec, raw=raw, last_updated_timestamp=now_timestamp())

    def canceled(self) -> Job:
        """This job, canceled: it stops reading and its table can take a new job."""
        return replace(self, desired_status="canceled", last_updated_timestamp=now_timestamp())

    def execution_status(self, *, started: bool, failure: str | None) -> str:
        """`pending` until its runner first runs (the reference page's creation answer shows
        `pending`), then `running`; `failed` once ingestion stopped; `canceled` when asked."""
        if not self.running:
            return self.desired_status
        if failure is not None:
            return "failed"
        return "running" if started else "pending"

    def health(self, failure: str | None) -> dict[str, Any]:
        """`{"status": "ok"}`, or `error` with the reason (`GET /jobs?healthStatus=error`)."""
        if failure is None:
            return {"status": "ok"}
        return {"status": "error", "issues": [failure]}

    def to_json(
        self,
        stats: dict[str, int] | None = None,
        failure: str | None = None,
        *,
        started: bool = True,
    ) -> dict[str, Any]:
        """The reference page's job response shape, plus our `ingestionStats` extension.

        `failure` is why the job's runner stopped, if it did; the job is then failed.
        """
        spec = self.spec
        document: dict[str, Any] = {
            "type": "streaming",
            "id": self.id,
            "target": spec.target,
            "createTableIfNotExists": spec.create_table_if_not_exists,
            "desiredExecutionStatus": self.desired_status,
            "createdBy": DEV_USER,
            "lastModifiedBy": DEV_USER,
            "executionStatus": self.execution_status(started=started, failure=failure),
            "health": self.health(failure),
            "createdTimestamp": self.created_timestamp,
            "lastUpdatedTimestamp": self.last_updated_timestamp or self.created_timestamp,
            "source": spec.source,
            "mappings": [
                {"columnName": m.column_name, "expression": m.expression} for m in spec.mappings
            ],
            "readFromPoint": spec.read_from_point,
            "lateMessageRejectionPeriod": spec.late_message_rejection_period,
            "earlyMessageRejectionPeriod": spec.early_message_rejection_period,
        }
        if stats is not None:
            document["ingestionStats"] = stats
        return document

    def to_record(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "createdTimestamp": self.created_timestamp,
            "startPosition": self.start_position,
            "desiredExecutionStatus": self.desired_status,
            "lastUpdatedTimestamp": self.last_updated_timestamp,
            "spec": self.raw,
        }

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Job:
        raw = record["spec"]
        spec = parse_job_spec(raw)
        return cls(
            record["id"],
            spec,
            record["createdTimestamp"],
            record["startPosition"],
            raw,
            record.get("desiredExecutionStatus", "running"),
            record.get("lastUpdatedTimestamp", ""),
        )
