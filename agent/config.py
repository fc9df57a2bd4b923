"""The agent's configuration: TOML in, one validated, typed value out.

Every problem is collected and reported at once with its key path (``sources[0].format``),
because an operator fixing a config one error per restart is an operator lost. Unknown keys
are errors: a silently ignored typo is a setting that never took effect.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

POLARIS_MAX_PAYLOAD = 1_000_000
"""Polaris' per-request limit ("must not exceed 1 MB"), read as 10**6 decompressed bytes."""

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]i?B|B)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "tb": 10**12,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
}
_INTERPOLATION = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_CONNECTION_NAME = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_ISO_PERIOD = re.compile(r"^P(?!$)(\d+Y)?(\d+M)?(\d+W)?(\d+D)?(T(?=\d)(\d+H)?(\d+M)?(\d+S)?)?$")


def parse_duration(value: object) -> float:
    """Seconds from ``"500ms"``, ``"30s"``, ``"1m30s"`` or a bare number of seconds."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as '500ms' or '30s'")
    if isinstance(value, int | float):
        if not 0 <= value < float("inf"):  # TOML allows inf and nan; neither is a timeout
            raise ValueError("a duration must be a finite number of seconds, not negative")
        return float(value)
    if not isinstance(value, str):
        raise ValueError("expected a duration such as '500ms' or '30s'")
    text = value.strip()
    parts = _DURATION_PART.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"invalid duration {value!r}; use e.g. '500ms', '30s', '5m', '1h'")
    return sum(float(number) * _DURATION_UNITS[unit] for number, unit in parts)


def parse_size(value: object) -> int:
    """Bytes from ``"1GiB"``, ``"512KiB"``, ``"1MB"`` or a bare integer."""
    if isinstance(value, bool):
        raise ValueError("expected a size such as '64MiB' or 1000000")
    if isinstance(value, int):
        if value < 0:
            raise ValueError("a size cannot be negative")
        return value
    if not isinstance(value, str):
        raise ValueError("expected a size such as '64MiB' or 1000000")
    match = _SIZE.match(value)
    if match is None:
        raise ValueError(f"invalid size {value!r}; use e.g. '512KiB', '64MiB', '1GiB'")
    number, unit = match.groups()
    return int(float(number) * _SIZE_UNITS[(unit or "B").lower()])


Duration = Annotated[float, BeforeValidator(parse_duration)]
Size = Annotated[int, BeforeValidator(parse_size)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PolarisConfig(_Section):
    """Where events go and how to authenticate (SPEC: "The Polaris facts")."""

    url: str
    project_id: str
    connection: str
    api_key: SecretStr
    tls_ca_file: Path | None = None
    tls_verify: bool = True
    request_timeout: Duration = 30.0

    @field_validator("url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        if not re.match(r"^https?://[^/\s]+", url):
            raise ValueError("must be an http:// or https:// URL")
        return url.rstrip("/")

    @field_validator("connection")
    @classmethod
    def _connection_name(cls, name: str) -> str:
        if not _CONNECTION_NAME.match(name):
            raise ValueError("letters, digits, '.', '_' and '-' only, at most 64 characters")
        return name

    @field_validator("project_id")
    @classmethod
    def _non_empty(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        return value

    def events_url(self, connection: str | None = None) -> str:
        return f"{self.url}/v1/projects/{self.project_id}/events/{connection or self.connection}"


# Here, not at the top: agent.parse.settings builds on _Section, Duration and Size above.
from agent.parse.settings import SourceParsing  # noqa: E402


class SourceConfig(SourceParsing):
    """One family of log files and how their lines become events.

    The parsing options (parser, time, windows, kubernetes, multiline, charset, event_id) come
    from `SourceParsing`, validated at their own keys; a source that sets none of them keeps
    the per-line fast path (see `agent.parse.settings.needs_parsing`).
    """

    name: str
    include: list[str] = Field(min_length=1)
    exclude: list[str] = []
    format: Literal["json", "text"] = "json"
    start_at: Literal["beginning", "end"] = "beginning"
    fields: dict[str, str | int | float | bool] = {}
    time_field: str = "timestamp"
    connection: str | None = None  # its own Polaris connection (routing); None: polaris's
    max_line_bytes: Size = 256 * 1024
    scan_interval: Duration = 1.0
    max_open_files: int = Field(default=512, ge=1)  # descriptors this source holds at most
    close_inactive: Duration = 300.0  # a file read to its end and idle this long is closed

    @field_validator("include")
    @classmethod
    def _absolute(cls, patterns: list[str]) -> list[str]:
        for pattern in patterns:
            if not os.path.isabs(pattern):
                raise ValueError(f"{pattern!r} must be an absolute path or glob")
        return patterns

    @field_validator("connection")
    @classmethod
    def _connection_name(cls, name: str | None) -> str | None:
        if name is not None and not _CONNECTION_NAME.match(name):
            raise ValueError("letters, digits, '.', '_' and '-' only, at most 64 characters")
        return name


class BatchConfig(_Section):
    max_bytes: Size = POLARIS_MAX_PAYLOAD
    max_wait: Duration = 0.5

    @field_validator("max_bytes")
    @classmethod
    def _within_polaris_limit(cls, size: int) -> int:
        if not 1024 <= size <= POLARIS_MAX_PAYLOAD:
            raise ValueError(f"must be between 1024 and {POLARIS_MAX_PAYLOAD} bytes")
        return size


class QueueConfig(_Section):
    max_bytes: Size = 2**20


class SenderConfig(_Section):
    workers: int = Field(default=4, ge=1, le=64)
    compression: Literal["gzip", "none"] = "gzip"
    compression_level: int = Field(default=1, ge=0, le=9)
    retry_initial: Duration = 0.2
    retry_max: Duration = 30.0


class SpoolConfig(_Section):
    """Where batches wait on disk while Polaris cannot take them (see agent/ship/spool.py)."""

    enabled: bool = True
    after: Duration = 30.0  # a batch still failing this long after its first try is spooled
    max_size: Size = 2**30
    when_full: Literal["block", "drop_oldest"] = "block"


class ApiConfig(_Section):
    """The admin HTTP server (/metrics, /healthz, /readyz); off unless `listen` is set."""

    listen: str = ""

    @field_validator("listen")
    @classmethod
    def _host_port(cls, value: str) -> str:
        if value:
            from agent.ops.admin import ListenAddress  # the one place the address rules live

            ListenAddress.parse(value)
        return value


class LogConfig(_Section):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["auto", "json", "console"] = "auto"


class InputField(_Section):
    name: str
    data_type: Literal["string", "long", "double", "float", "json"] = "string"


class Mapping_(_Section):
    column: str
    expression: str


class JobConfig(_Section):
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


class Config(_Section):
    data_dir: Path = Path("/var/lib/polaris-agent")
    shutdown_timeout: Duration = 10.0
    checkpoint_interval: Duration = 0.25
    polaris: PolarisConfig
    sources: list[SourceConfig] = Field(min_length=1)
    batch: BatchConfig = BatchConfig()
    queue: QueueConfig = QueueConfig()
    sender: SenderConfig = SenderConfig()
    spool: SpoolConfig = SpoolConfig()
    api: ApiConfig = ApiConfig()
    log: LogConfig = LogConfig()
    job: JobConfig | None = None

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
                    f"sources[{index}].max_line_bytes must be below batch.max_bytes: "
                    "a line has to fit in one request"
                )
        return self


@dataclass(frozen=True, slots=True)
class Problem:
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class ConfigError(Exception):
    """Everything wrong with a config file, each problem with its key path."""

    def __init__(self, source: str, problems: list[Problem]) -> None:
        self.source = source
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"invalid config {source}:\n{lines}")


def load_config(path: Path, environ: Mapping[str, str] | None = None) -> Config:
    """Read, interpolate and validate ``path``; raise :class:`ConfigError` listing every problem."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(str(path), [Problem("", f"cannot read: {exc.strerror}")]) from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(path), [Problem("", f"not valid TOML: {exc}")]) from exc
    return parse_config(raw, str(path), os.environ if environ is None else environ)


def parse_config(raw: dict[str, Any], source: str, environ: Mapping[str, str]) -> Config:
    problems: list[Problem] = []
    resolved = _interpolate(raw, (), environ, problems)
    try:
        config = Config.model_validate(resolved)
    except ValidationError as exc:
        # A key whose ${VAR} is unset is reported once, for the variable, not again for the
        # empty string that stood in for it.
        unresolved = {p.path for p in problems}
        validation = (_problem(error) for error in exc.errors())
        problems.extend(p for p in validation if p.path not in unresolved)
        raise ConfigError(source, problems) from None
    if problems:
        raise ConfigError(source, problems)
    return config


def _interpolate(
    value: Any, path: tuple[str | int, ...], environ: Mapping[str, str], problems: list[Problem]
) -> Any:
    if isinstance(value, dict):
        return {k: _interpolate(v, (*path, k), environ, problems) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v, (*path, i), environ, problems) for i, v in enumerate(value)]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, default = match.group(1), match.group(2)
        if name in environ:
            return environ[name]
        if default is not None:
            return default
        problems.append(Problem(key_path(path), f"environment variable {name} is not set"))
        return ""

    return _INTERPOLATION.sub(substitute, value)


def key_path(loc: tuple[str | int, ...]) -> str:
    """``("sources", 0, "format")`` -> ``sources[0].format``."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


def _problem(error: Any) -> Problem:
    loc = tuple(p for p in error["loc"] if not (isinstance(p, str) and "[" in p))
    kind = error["type"]
    if kind == "extra_forbidden":
        return Problem(key_path(loc), "unknown key")
    if kind == "missing":
        return Problem(key_path(loc), "required key is missing")
    message = str(error["msg"]).removeprefix("Value error, ")
    return Problem(key_path(loc), message)
