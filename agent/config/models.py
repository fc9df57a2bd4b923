"""The config's sections: sources, batching, sending, spooling, the admin endpoint, the job."""

from __future__ import annotations

import math
import os
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    Field,
    field_validator,
    model_validator,
)

from agent.config.journald import JOURNALD_KEYS, JournalSettings
from agent.config.kubernetes import KubernetesApiConfig
from agent.config.listen import ListenAddress
from agent.config.polaris import PolarisConfig, valid_connection
from agent.config.problems import at
from agent.parse.settings import SourceParsing, needs_parsing
from agent.schema import Count, Duration, Interval, Section, Size, is_utf8, no_nul

POLARIS_MAX_PAYLOAD = 1_000_000
"""Polaris' per-request limit ("must not exceed 1 MB"), read as 10**6 decompressed bytes."""
_ISO_PERIOD = re.compile(r"^P(?!$)(\d+Y)?(\d+M)?(\d+W)?(\d+D)?(T(?=\d)(\d+H)?(\d+M)?(\d+S)?)?$")
MIN_LINE_BYTES = 16
"""``max_line_bytes`` below 16 bytes is refused: at 0 every line is dropped."""
_INT64 = 2**63


FILE_ONLY_KEYS = frozenset(
    {"include", "exclude", "format", "start_at", "max_line_bytes", "scan_interval"}
    | {"max_open_files", "close_inactive", "parser", "time", "kubernetes", "multiline", "charset"}
)
"""Keys a ``type = "journald"`` source refuses (the journald ones: `JOURNALD_KEYS`)."""


class SourceConfig(SourceParsing, JournalSettings):
    """One family of log files, or one journal (``type = "journald"``), and how its records
    become events.

    The parsing options (parser, time, windows, kubernetes, multiline, charset, event_id) come
    from `SourceParsing`, validated at their own keys; a source that sets none of them keeps
    the per-line fast path (see `agent.parse.settings.needs_parsing`). The journald keys come
    from `JournalSettings`; each type refuses the other's keys.
    """

    name: str
    type: Literal["file", "journald"] = "file"
    include: list[str] = []
    exclude: list[str] = []
    format: Literal["json", "text"] = "json"
    start_at: Literal["beginning", "end"] = "beginning"
    fields: dict[str, str | int | float | bool] = {}
    time_field: str = "timestamp"
    connection: str | None = None  # its own Polaris connection (routing); None: polaris's
    max_line_bytes: Size = 256 * 1024
    scan_interval: Interval = 1.0
    max_open_files: Count = 512  # descriptors this source holds at most
    close_inactive: Duration = 300.0  # a file read to its end and idle this long is closed

    @field_validator("include")
    @classmethod
    def _absolute(cls, patterns: list[str]) -> list[str]:
        for pattern in patterns:
            if not os.path.isabs(pattern):
                raise ValueError(f"{pattern!r} must be an absolute path or glob")
        return patterns

    @model_validator(mode="after")
    def _keys_of_its_type(self) -> SourceConfig:
        journald = self.type == "journald"
        other = FILE_ONLY_KEYS if journald else JOURNALD_KEYS
        wrong = sorted(other & self.model_fields_set)
        kind = "a journald source" if journald else 'a file source (type = "journald" for those)'
        problems = [(key, f"not a key of {kind}") for key in wrong]
        if not journald and not self.include:
            problems.append(("include", "a file source needs at least one absolute path or glob"))
        if problems:
            raise ValueError(at(*problems))
        return self

    @model_validator(mode="after")
    def _globs(self) -> SourceConfig:
        problems = [
            (f"{key}[{index}]", problem)
            for key, patterns in (("include", self.include), ("exclude", self.exclude))
            for index, pattern in enumerate(patterns)
            if (problem := glob_problem(pattern))
        ]
        if problems:
            raise ValueError(at(*problems))
        return self

    @model_validator(mode="after")
    def _names_apart(self) -> SourceConfig:
        """The names the agent writes into each event must not be a static field's too: a
        key twice in one event (Polaris keeps one of them) or, for the time, an event whose
        time is a constant; refused here, naming the key, never found by the encoder."""
        problems: list[tuple[str, str]] = []
        if self.time_field in self.fields:
            problems.append(
                (f"fields.{self.time_field}", "is the time field (`time_field`): the time comes "
                 "from each line, or the read time, never from a static field")
            )  # fmt: skip
        if self.event_id is not None and self.event_id == self.time_field:
            problems.append(("event_id", f"names the time field ({self.time_field!r})"))
        if self.event_id is not None and self.event_id in self.fields:
            problems.append(
                (f"fields.{self.event_id}", "is the `event_id` field: each event's id goes there")
            )
        text_lines = self.type == "file" and self.format == "text" and not needs_parsing(self)
        if text_lines and "message" in self.fields:
            problems.append(("fields.message", "holds each line of a text source"))
        if problems:
            raise ValueError(at(*problems))
        return self

    @field_validator("connection")
    @classmethod
    def _connection_name(cls, name: str | None) -> str | None:
        return None if name is None else valid_connection(name)

    @field_validator("max_line_bytes")
    @classmethod
    def _fits_something(cls, size: int) -> int:
        if size < MIN_LINE_BYTES:
            raise ValueError(f"must be at least {MIN_LINE_BYTES} bytes (at 0 every line is lost)")
        return size

    @field_validator("fields")
    @classmethod
    def _json_values(cls, fields: dict[str, str | int | float | bool]) -> dict[str, Any]:
        for name, value in fields.items():
            if isinstance(value, float) and not math.isfinite(value):
                raise ValueError(at((name, "must be a finite number (JSON has no nan/inf)")))
            if isinstance(value, int) and not -_INT64 <= value < _INT64:
                raise ValueError(at((name, "must fit a 64-bit integer")))
            if isinstance(value, str) and not is_utf8(value):
                raise ValueError(at((name, "is not valid UTF-8 text")))
        return fields


def glob_problem(pattern: str) -> str | None:
    """Why ``pattern`` cannot be a glob, or None. An unclosed ``[`` is matched literally by
    fnmatch, so ``/var/log/[.log`` would silently match nothing."""
    if "\0" in pattern:
        return "must not contain a NUL character"
    index = 0
    while index < len(pattern):
        if pattern[index] == "[":
            end = index + 1
            if end < len(pattern) and pattern[end] == "!":
                end += 1
            if end < len(pattern) and pattern[end] == "]":
                end += 1
            while end < len(pattern) and pattern[end] != "]":
                end += 1
            if end >= len(pattern):
                return "has an unclosed '[' (write '[[]' to match a literal '[')"
            index = end
        index += 1
    return None


class BatchConfig(Section):
    max_bytes: Size = POLARIS_MAX_PAYLOAD
    max_wait: Duration = 0.5

    @field_validator("max_bytes")
    @classmethod
    def _within_polaris_limit(cls, size: int) -> int:
        if not 1024 <= size <= POLARIS_MAX_PAYLOAD:
            raise ValueError(f"must be between 1024 and {POLARIS_MAX_PAYLOAD} bytes")
        return size


class QueueConfig(Section):
    max_bytes: Size = 2**20


class SenderConfig(Section):
    workers: int = Field(default=4, ge=1, le=64)
    compression: Literal["gzip", "none"] = "gzip"
    compression_level: int = Field(default=1, ge=0, le=9)
    retry_initial: Interval = 0.2
    retry_max: Interval = 30.0

    @model_validator(mode="after")
    def _ordered(self) -> SenderConfig:
        if self.retry_max < self.retry_initial:
            raise ValueError(at(("retry_max", "must not be below sender.retry_initial")))
        return self


class SpoolConfig(Section):
    """Where batches wait on disk while Polaris cannot take them (see agent/ship/spool.py)."""

    enabled: bool = True
    after: Duration = 30.0  # a batch still failing this long after its first try is spooled
    max_size: Size = 2**30
    when_full: Literal["block", "drop_oldest"] = "block"


class DeadLetterConfig(Section):
    """`data_dir/dead-letter`: lines and events that cannot be delivered, kept within bounds
    (oldest files deleted first, counted and logged; see agent/state/deadletter.py)."""

    max_size: Size = 256 * 2**20  # 0: no bound
    max_age: Duration = 30 * 86400.0  # 0: kept until deleted by hand
    log_interval: Interval = 60.0  # after the first per reason, one summary line per interval


class ApiConfig(Section):
    """The admin HTTP server (/metrics, /healthz, /readyz); off unless `listen` is set."""

    listen: str = ""

    @field_validator("listen")
    @classmethod
    def _host_port(cls, value: str) -> str:
        if value:
            ListenAddress.parse(value)
        return value


class LogConfig(Section):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["auto", "json", "console"] = "auto"


class InputField(Section):
    name: str
    data_type: Literal["string", "long", "double", "float", "json"] = "string"


class Mapping_(Section):
    column: str
    expression: str


class JobConfig(Section):
    """What ``setup`` provisions: the streaming job reading the connection into a table."""

    table: str
    create_table_if_not_exists: bool = True
    read_from_point: Literal["earliest", "latest"] = "latest"
    input_schema: list[InputField] = Field(min_length=1)
    mappings: list[Mapping_] = Field(min_length=1)
    late_message_rejection_period: str | None = None
    early_message_rejection_period: str | None = None

    @field_validator("late_message_rejection_period", "early_message_rejection_period")
    @classmethod
    def _iso_period(cls, period: str | None) -> str | None:
        # Polaris takes ISO 8601 periods; a typo here would only surface as a 400 at setup.
        if period is not None and not _ISO_PERIOD.match(period):
            raise ValueError(f"invalid ISO 8601 period {period!r}; use e.g. 'P30D' or 'PT12H'")
        return period

    @field_validator("input_schema", "mappings")
    @classmethod
    def _unique_names(cls, items: list[InputField] | list[Mapping_]) -> list[Any]:
        names = [i.name if isinstance(i, InputField) else i.column for i in items]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"names must be unique; repeated: {', '.join(repeated)}")
        return list(items)

    @model_validator(mode="after")
    def _maps_time(self) -> JobConfig:
        if not any(m.column == "__time" for m in self.mappings):
            raise ValueError("mappings must map the __time column")
        return self


def _table() -> Any:
    """The default of a section: a table left out is an empty one, validated as such by
    `Config`. Not an instance made at import, which would build the section's own validator
    (`Section` defers it) for a value `Config` builds anyway."""
    return Field(default={}, validate_default=True)


class Config(Section):
    data_dir: Path = Path("/var/lib/polaris-agent")
    shutdown_timeout: Duration = 10.0
    checkpoint_interval: Interval = 0.25
    polaris: PolarisConfig
    sources: list[SourceConfig] = Field(min_length=1)
    batch: BatchConfig = _table()
    queue: QueueConfig = _table()
    sender: SenderConfig = _table()
    spool: SpoolConfig = _table()
    dead_letter: DeadLetterConfig = _table()
    api: ApiConfig = _table()
    log: LogConfig = _table()
    kubernetes: KubernetesApiConfig = _table()  # pod metadata (agent/kube)
    job: JobConfig | None = None

    @field_validator("data_dir")
    @classmethod
    def _absolute_dir(cls, path: Path) -> Path:
        no_nul(str(path))
        if not path.is_absolute():  # "" is Path("."): the working directory of the moment
            raise ValueError("must be an absolute path")
        return path

    @model_validator(mode="after")
    def _consistent(self) -> Config:
        names = [s.name for s in self.sources]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"source names must be unique; repeated: {', '.join(duplicates)}")
        for index, source in enumerate(self.sources):
            explicit = "max_line_bytes" in source.model_fields_set
            if explicit and source.max_line_bytes >= self.batch.max_bytes:
                raise ValueError(
                    at(
                        (
                            f"sources[{index}].max_line_bytes",
                            "must be below batch.max_bytes: a line has to fit in one request",
                        )
                    )
                )
        return self

    @model_validator(mode="after")
    def _windows_from_job(self) -> Config:
        """A source's `late_window`/`early_window` not set default to the job's
        `late_message_rejection_period`/`early_message_rejection_period` when `[job]` sets
        them: what Polaris would reject anyway is dead-lettered here, what it takes is sent.
        The source keeps its fast path: a default is not a key the user set."""
        defaults = job_windows(self.job)
        if defaults:
            sources = [_with_window_defaults(source, defaults) for source in self.sources]
            object.__setattr__(self, "sources", sources)  # frozen: completed while validating
        return self


def period_seconds(period: str) -> float:
    """An ISO 8601 period as `JobConfig` accepts it, in seconds (a year 365 days, a month
    30: Polaris' own reading is not documented finer)."""
    match = _ISO_PERIOD.match(period)
    if match is None:
        raise ValueError(f"invalid ISO 8601 period {period!r}")
    units = {1: 365 * 86400, 2: 30 * 86400, 3: 7 * 86400, 4: 86400, 6: 3600, 7: 60, 8: 1}
    return float(sum(int(match.group(g)[:-1]) * n for g, n in units.items() if match.group(g)))


def job_windows(job: JobConfig | None) -> dict[str, float]:
    """The source windows the job's rejection periods stand for (none when it sets neither)."""
    if job is None:
        return {}
    periods = {
        "late_window": job.late_message_rejection_period,
        "early_window": job.early_message_rejection_period,
    }
    windows = {key: period_seconds(p) for key, p in periods.items() if p is not None}
    return {key: seconds for key, seconds in windows.items() if seconds > 0}


def _with_window_defaults(source: SourceConfig, defaults: dict[str, float]) -> SourceConfig:
    update = {k: v for k, v in defaults.items() if k not in source.model_fields_set}
    if not update:
        return source
    copy = source.model_copy(update=update)
    object.__setattr__(copy, "__pydantic_fields_set__", set(source.model_fields_set))
    return copy
