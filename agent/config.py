"""The agent's configuration: TOML in, one validated, typed value out.

Every problem is collected and reported at once with its key path (``sources[0].format``),
because an operator fixing a config one error per restart is an operator lost. Unknown keys
are errors: a silently ignored typo is a setting that never took effect.

Hostile or careless input (issue 12) is refused, never crashed on: a file that is not UTF-8,
too large or nested too deep; a URL that would carry credentials, send the key in clear to
another host, or move the POST to another path; intervals that would spin the CPU; a key
HTTP Basic auth cannot carry. What works but is risky is returned by :func:`config_warnings`
and said by both ``check`` and ``run``. No message ever holds the API key.
"""

from __future__ import annotations

import glob
import ipaddress
import math
import os
import re
import ssl
import stat
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import SplitResult, unquote, urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
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
_PATH_SEGMENT = re.compile(r"^[A-Za-z0-9._-]{1,128}$")
_SECRET_NAME = re.compile(r"(?i)pass|secret|token|api[_-]?key|auth|credential|private")
_VALIDATOR_STEP = re.compile(r"^[a-z][a-z_-]*\[")
"""pydantic's own steps in an error's location (``function-after[...]``), not config keys."""
_ISO_PERIOD = re.compile(r"^P(?!$)(\d+Y)?(\d+M)?(\d+W)?(\d+D)?(T(?=\d)(\d+H)?(\d+M)?(\d+S)?)?$")


MAX_CONFIG_BYTES = 1 << 20
"""A config file larger than 1 MiB is refused unread (``check -c /dev/zero`` must end)."""
MAX_NESTING = 16
"""Tables and arrays nested deeper than this are refused; the deepest real key has depth 4."""
MIN_INTERVAL = 0.01
"""10 ms: the shortest checkpoint, scan or retry interval; 0 would spin a core and flood logs."""
MIN_REQUEST_TIMEOUT = 0.1
"""100 ms: a shorter request timeout fails every request."""
MAX_DURATION = 100 * 365 * 86400.0
"""100 years: longer durations are typos, and overflow timer APIs."""
MAX_SIZE = 2**50
"""1 PiB: any size above this is a typo (and would not fit a 64-bit JSON integer later)."""
MIN_LINE_BYTES = 16
"""``max_line_bytes`` below 16 bytes is refused: at 0 every line is dropped."""
SHORT_LINE_BYTES = 1024
"""``max_line_bytes`` below 1 KiB is accepted with a warning: most lines will not fit."""
MAX_PROBLEMS_SHOWN = 100
"""A ConfigError prints at most this many problems, then how many more there were."""
REDACTED = "**********"
_INT64 = 2**63


def parse_duration(value: object) -> float:
    """Seconds from ``"500ms"``, ``"30s"``, ``"1m30s"`` or a bare number of seconds."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as '500ms' or '30s'")
    if isinstance(value, int | float):
        if not 0 <= value < float("inf"):  # TOML allows inf and nan; neither is a timeout
            raise ValueError("a duration must be a finite number of seconds, not negative")
        if value > MAX_DURATION:  # before float(): a 400-digit integer overflows it
            raise ValueError("a duration must be at most 100 years")
        return float(value)
    if not isinstance(value, str):
        raise ValueError("expected a duration such as '500ms' or '30s'")
    text = value.strip()
    parts = _DURATION_PART.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"invalid duration {value!r}; use e.g. '500ms', '30s', '5m', '1h'")
    return _bounded_duration(sum(float(n) * _DURATION_UNITS[unit] for n, unit in parts))


def _bounded_duration(seconds: float) -> float:
    if not seconds <= MAX_DURATION:  # also catches inf from a 400-digit number
        raise ValueError("a duration must be at most 100 years")
    return seconds


def parse_size(value: object) -> int:
    """Bytes from ``"1GiB"``, ``"512KiB"``, ``"1MB"`` or a bare integer."""
    if isinstance(value, bool):
        raise ValueError("expected a size such as '64MiB' or 1000000")
    if isinstance(value, int):
        if value < 0:
            raise ValueError("a size cannot be negative")
        return _bounded_size(value)
    if not isinstance(value, str):
        raise ValueError("expected a size such as '64MiB' or 1000000")
    match = _SIZE.match(value)
    if match is None:
        raise ValueError(f"invalid size {value!r}; use e.g. '512KiB', '64MiB', '1GiB'")
    number, unit = match.groups()
    size = float(number) * _SIZE_UNITS[(unit or "B").lower()]
    return _bounded_size(int(size) if size <= MAX_SIZE else MAX_SIZE + 1)  # inf: no int()


def _bounded_size(size: int) -> int:
    if size > MAX_SIZE:
        raise ValueError("a size must be at most 1PiB")
    return size


def _interval(seconds: float) -> float:
    """A loop's period: below MIN_INTERVAL the loop spins a core (and logs each turn)."""
    if seconds < MIN_INTERVAL:
        raise ValueError(f"must be at least {MIN_INTERVAL * 1000:.0f}ms")
    return seconds


def _no_nul(text: str) -> str:
    if "\0" in text:
        raise ValueError("must not contain a NUL character")
    return text


Duration = Annotated[float, BeforeValidator(parse_duration)]
Interval = Annotated[float, BeforeValidator(parse_duration), AfterValidator(_interval)]
"""A duration that paces a loop: at least MIN_INTERVAL."""
Size = Annotated[int, BeforeValidator(parse_size)]
Count = Annotated[int, Field(ge=1, le=1_000_000)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PolarisConfig(_Section):
    """Where events go and how to authenticate (SPEC: "The Polaris facts")."""

    # First, so that the url's validator sees it: http:// to a host other than loopback sends
    # the key in clear, and is refused unless this says it is meant.
    allow_insecure_http: bool = False
    url: str
    project_id: str
    connection: str
    api_key: SecretStr
    tls_ca_file: Path | None = None
    tls_verify: bool = True
    request_timeout: Duration = 30.0

    @field_validator("url")
    @classmethod
    def _http_url(cls, url: str, info: ValidationInfo) -> str:
        # No message here quotes the URL: it may hold credentials.
        if not re.match(r"^https?://[^/\s]+", url):
            raise ValueError("must be an http:// or https:// URL")
        parts = _split_url(url)
        if parts.username is not None or parts.password is not None or "@" in parts.netloc:
            raise ValueError(
                "must not hold credentials (user:password@host): the key belongs in"
                " polaris.api_key, and the URL is printed in logs"
            )
        if "?" in url or "#" in url:
            raise ValueError("must not have a ?query or #fragment: the events path is appended")
        if any(segment in (".", "..") for segment in unquote(parts.path).split("/")):
            raise ValueError("must not have '.' or '..' path segments")
        host = parts.hostname or ""
        insecure_ok = info.data.get("allow_insecure_http") is True
        if parts.scheme == "http" and not insecure_ok and not _loopback(host):
            raise ValueError(
                f"http:// to {host} would send the API key and the events unencrypted;"
                " use https://, or set polaris.allow_insecure_http = true"
            )
        return url.rstrip("/")

    @field_validator("api_key")
    @classmethod
    def _usable_key(cls, key: SecretStr) -> SecretStr:
        # HTTP Basic auth sends "key:" (RFC 7617): a ':' would split it, and a stray newline
        # or non-ASCII character fails at the first request. Never quote the key.
        value = key.get_secret_value()
        if not value:
            raise ValueError("must not be empty")
        if ":" in value:
            raise ValueError("must not contain ':' (HTTP Basic authentication cannot carry it)")
        if not all("!" <= c <= "~" for c in value):
            raise ValueError(
                "must be printable ASCII without spaces or control characters"
                " (a trailing newline from the secret's file?)"
            )
        return key

    @field_validator("connection")
    @classmethod
    def _connection_name(cls, name: str) -> str:
        return _valid_connection(name)

    @field_validator("project_id")
    @classmethod
    def _project_segment(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        if not _PATH_SEGMENT.match(value) or not value.strip("."):
            raise ValueError(
                "letters, digits, '.', '_' and '-' only, at most 128, not '.' or '..'"
                " (it is a segment of the events URL's path)"
            )
        return value

    @field_validator("tls_ca_file")
    @classmethod
    def _ca_path(cls, path: Path | None) -> Path | None:
        if path is not None:
            _no_nul(str(path))
        return path

    @field_validator("request_timeout")
    @classmethod
    def _usable_timeout(cls, seconds: float) -> float:
        if seconds < MIN_REQUEST_TIMEOUT:
            raise ValueError(f"must be at least {MIN_REQUEST_TIMEOUT * 1000:.0f}ms")
        return seconds

    @property
    def host(self) -> str:
        return _split_url(self.url).hostname or ""

    def events_url(self, connection: str | None = None) -> str:
        return f"{self.url}/v1/projects/{self.project_id}/events/{connection or self.connection}"


def _split_url(url: str) -> SplitResult:
    """`urlsplit`, with a bad port or bracket turned into a message that does not quote it."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise ValueError("has an invalid host or port") from None
    if not parts.hostname or port == 0 or any(c in url for c in "\\ \t\r\n"):
        raise ValueError("has an invalid host or port")
    return parts


def _loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 or ``localhost``: traffic that never leaves the machine. Names are not
    resolved: that would make validation depend on DNS."""
    if host.lower().rstrip(".") == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _valid_connection(name: str) -> str:
    if not _CONNECTION_NAME.match(name) or not name.strip("."):
        raise ValueError(
            "letters, digits, '.', '_' and '-' only, at most 64 characters, not '.' or '..'"
        )
    return name


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

    @field_validator("connection")
    @classmethod
    def _connection_name(cls, name: str | None) -> str | None:
        return None if name is None else _valid_connection(name)

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
            if isinstance(value, str) and not _utf8(value):
                raise ValueError(at((name, "is not valid UTF-8 text")))
        return fields


_AT = "@"


def at(*problems: tuple[str, str]) -> str:
    """A validator's message naming keys below its own (``("include[0]", "why")``): pydantic
    points only at the field or model validated; `_problem` moves each sub-path into place."""
    return "\n".join(f"{_AT}{path}\t{message}" for path, message in problems)


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


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


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
    retry_initial: Interval = 0.2
    retry_max: Interval = 30.0

    @model_validator(mode="after")
    def _ordered(self) -> SenderConfig:
        if self.retry_max < self.retry_initial:
            raise ValueError(at(("retry_max", "must not be below sender.retry_initial")))
        return self


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
    checkpoint_interval: Interval = 0.25
    polaris: PolarisConfig
    sources: list[SourceConfig] = Field(min_length=1)
    batch: BatchConfig = BatchConfig()
    queue: QueueConfig = QueueConfig()
    sender: SenderConfig = SenderConfig()
    spool: SpoolConfig = SpoolConfig()
    api: ApiConfig = ApiConfig()
    log: LogConfig = LogConfig()
    job: JobConfig | None = None

    @field_validator("data_dir")
    @classmethod
    def _absolute_dir(cls, path: Path) -> Path:
        _no_nul(str(path))
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


@dataclass(frozen=True, slots=True)
class Problem:
    path: str
    message: str

    def __str__(self) -> str:
        text = f"{self.path}: {self.message}" if self.path else self.message
        return printable(text)


@dataclass(frozen=True, slots=True)
class ConfigWarning:
    """A setting that works but is risky or likely a mistake; said by ``check`` and ``run``."""

    key: str
    message: str

    def __str__(self) -> str:
        return printable(f"{self.key}: {self.message}" if self.key else self.message)


class ConfigError(Exception):
    """Everything wrong with a config file, each problem with its key path."""

    def __init__(self, source: str, problems: list[Problem]) -> None:
        self.source = source
        self.problems = problems
        shown = [f"  - {p}" for p in problems[:MAX_PROBLEMS_SHOWN]]
        if len(problems) > MAX_PROBLEMS_SHOWN:
            shown.append(f"  ... and {len(problems) - MAX_PROBLEMS_SHOWN} more")
        super().__init__(f"invalid config {printable(source)}:\n" + "\n".join(shown))


def printable(text: str) -> str:
    """``text`` with control characters (a key named ``"\\x1b[31m"``, a NUL) escaped, so that
    a config cannot write to the operator's terminal; other Unicode is kept."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in text)


def load_config(path: Path, environ: Mapping[str, str] | None = None) -> Config:
    """Read, interpolate and validate ``path``; raise :class:`ConfigError` listing every problem."""
    raw = read_raw(path)
    config = parse_config(raw, str(path), os.environ if environ is None else environ)
    problems = host_problems(config)
    if problems:
        raise ConfigError(str(path), problems)
    return config


def read_raw(path: Path) -> dict[str, Any]:
    """The TOML table in ``path``, or ConfigError: unreadable, larger than MAX_CONFIG_BYTES,
    not UTF-8, not TOML, or nested deeper than MAX_NESTING."""
    source = str(path)
    try:
        with path.open("rb") as file:
            data = file.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise ConfigError(source, [Problem("", f"cannot read: {exc.strerror}")]) from None
    except ValueError:  # a NUL in the path
        raise ConfigError(source, [Problem("", "cannot read: invalid file name")]) from None
    if len(data) > MAX_CONFIG_BYTES:
        problem = f"larger than {MAX_CONFIG_BYTES} bytes: not a config file"
        raise ConfigError(source, [Problem("", problem)])
    try:
        text = data.decode("utf-8").removeprefix("\ufeff")  # an editor's byte-order mark
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        problem = f"not UTF-8 text: invalid byte at line {line}"
        raise ConfigError(source, [Problem("", problem)]) from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(source, [Problem("", f"not valid TOML: {exc}")]) from None
    except RecursionError:  # tomllib recurses per nested array or inline table
        raise ConfigError(source, [Problem("", _TOO_DEEP)]) from None
    too_deep = _deeper_than(raw, MAX_NESTING)
    if too_deep is not None:
        raise ConfigError(source, [Problem(too_deep, _TOO_DEEP)])
    return raw


_TOO_DEEP = f"nested too deeply (tables and arrays at most {MAX_NESTING} levels)"


def _deeper_than(raw: dict[str, Any], limit: int) -> str | None:
    """The path of the first value nested deeper than ``limit``; iterative, so that the check
    itself cannot exhaust the stack (dotted keys nest without tomllib recursing)."""
    stack: list[tuple[Any, tuple[str | int, ...]]] = [(raw, ())]
    while stack:
        value, path = stack.pop()
        if len(path) > limit:
            return key_path(path[:limit])
        if isinstance(value, dict):
            stack.extend((v, (*path, k)) for k, v in value.items())
        elif isinstance(value, list):
            stack.extend((v, (*path, i)) for i, v in enumerate(value))
    return None


def parse_config(raw: dict[str, Any], source: str, environ: Mapping[str, str]) -> Config:
    problems: list[Problem] = []
    resolved = _interpolate(raw, (), environ, problems)
    secrets = _secrets(resolved)
    try:
        config = Config.model_validate(resolved)
    except ValidationError as exc:
        # A key whose ${VAR} is unset is reported once, for the variable, not again for the
        # empty string that stood in for it.
        unresolved = {p.path for p in problems}
        validation = (p for error in exc.errors() for p in _problems(error))
        problems.extend(p for p in validation if p.path not in unresolved)
        raise ConfigError(source, _scrubbed(problems, secrets)) from None
    if problems:
        raise ConfigError(source, _scrubbed(problems, secrets))
    return config


def _secrets(resolved: Any) -> list[str]:
    """The resolved API key, wherever it ended up, must not be quoted by any message."""
    polaris = resolved.get("polaris") if isinstance(resolved, dict) else None
    key = polaris.get("api_key") if isinstance(polaris, dict) else None
    return [key] if isinstance(key, str) and len(key) >= 4 else []


def _scrubbed(problems: list[Problem], secrets: list[str]) -> list[Problem]:
    def scrub(text: str) -> str:
        for secret in secrets:
            text = text.replace(secret, REDACTED)
        return text

    return [Problem(scrub(p.path), scrub(p.message)) for p in problems]


def host_problems(config: Config) -> list[Problem]:
    """What this machine says against a valid config: a data_dir that cannot be a directory,
    a CA file that cannot be loaded. Kept out of the models so that tests and tools can build
    a Config for another machine."""
    problems = []
    data_dir = _not_a_directory(config.data_dir)
    if data_dir is not None:
        problems.append(Problem("data_dir", data_dir))
    if config.polaris.tls_ca_file is not None:
        ca = _ca_problem(config.polaris.tls_ca_file)
        if ca is not None:
            problems.append(Problem("polaris.tls_ca_file", ca))
    return problems


def _not_a_directory(path: Path) -> str | None:
    """Why ``path`` cannot be (made) a directory: it, or its nearest existing ancestor, is
    something else."""
    for candidate in (path, *path.parents):
        try:
            mode = candidate.stat().st_mode
        except (FileNotFoundError, NotADirectoryError):  # the ancestor that is not says so
            continue
        except OSError as exc:
            return f"cannot use {candidate}: {exc.strerror}"
        if stat.S_ISDIR(mode):
            return None
        return f"{candidate} exists and is not a directory"
    return None


def _ca_problem(path: Path) -> str | None:
    try:
        ssl.create_default_context(cafile=str(path))
    except ssl.SSLError as exc:  # before OSError: it is one
        return f"{path} holds no usable PEM certificate ({exc.reason or 'unreadable'})"
    except OSError as exc:
        return f"cannot read {path}: {exc.strerror}"
    return None


def config_warnings(config: Config) -> list[ConfigWarning]:
    """Settings that work but are risky, or globs that match nothing (yet)."""
    warnings: list[ConfigWarning] = []
    polaris = config.polaris
    if not polaris.tls_verify:
        warnings.append(
            ConfigWarning("polaris.tls_verify", "false: TLS certificates will NOT be verified")
        )
    if polaris.url.startswith("http://") and not _loopback(polaris.host):
        warnings.append(
            ConfigWarning(
                "polaris.allow_insecure_http",
                f"true: the API key and the events go to {polaris.host} unencrypted",
            )
        )
    if config.api.listen:
        warnings.extend(_listen_warnings(config.api.listen))
    for index, source in enumerate(config.sources):
        warnings.extend(_source_warnings(f"sources[{index}]", source))
    return warnings


def _listen_warnings(listen: str) -> Iterator[ConfigWarning]:
    from agent.ops.admin import ListenAddress

    host = ListenAddress.parse(listen).host
    if not _loopback(host):
        yield ConfigWarning(
            "api.listen",
            f"{listen} is reachable from other machines, and /metrics and /status have no"
            " authentication; bind 127.0.0.1 unless a Kubernetes probe needs otherwise",
        )


def _source_warnings(key: str, source: SourceConfig) -> Iterator[ConfigWarning]:
    for index, pattern in enumerate(source.include):
        if next(glob.iglob(pattern, recursive=True), None) is None:
            yield ConfigWarning(
                f"{key}.include[{index}]",
                f"{pattern} matches no file this user can see (yet): nothing to ship",
            )
    if source.max_line_bytes < SHORT_LINE_BYTES:
        yield ConfigWarning(
            f"{key}.max_line_bytes",
            f"{source.max_line_bytes} bytes: longer lines are dead-lettered, not shipped",
        )


def file_warnings(path: Path) -> list[ConfigWarning]:
    """Warnings about the file itself: a literal API key that other users can read."""
    try:
        mode = path.stat().st_mode
        raw = read_raw(path)
    except (OSError, ValueError, ConfigError):
        return []  # load_config reports why the file cannot be used
    polaris = raw.get("polaris")
    api_key = polaris.get("api_key") if isinstance(polaris, dict) else None
    if not isinstance(api_key, str) or not holds_literal_secret(api_key):
        return []
    if not mode & (stat.S_IRGRP | stat.S_IROTH):
        return []
    return [
        ConfigWarning(
            "polaris.api_key",
            f"{path} holds a literal key and is readable by group/others"
            f" (mode {stat.S_IMODE(mode):04o}): run `chmod 600 {path}`, or better,"
            ' set api_key = "${POLARIS_API_KEY}" and keep the key in the environment',
        )
    ]


def startup_warnings(path: Path, config: Config) -> list[ConfigWarning]:
    """Everything ``check`` warns about, for ``run`` to log at start."""
    return [*file_warnings(path), *config_warnings(config)]


_REFERENCE = re.compile(r"\$\{[A-Za-z_][A-Za-z0-9_]*(?::-)?\}")
"""``${VAR}`` without a default: the value comes from the environment, not the file."""


def holds_literal_secret(value: str) -> bool:
    """True unless the value is made only of ``${VAR}`` references (no literal text, no
    ``${VAR:-default}`` whose default would itself be a key written in the file)."""
    return bool(_REFERENCE.sub("", value).strip())


def redact(value: Any, secrets: frozenset[str]) -> Any:
    """``value`` (a dumped config) with secret-looking strings replaced by REDACTED: under a
    key named like a password or token, or a URL with credentials; the API key is replaced
    wherever it occurs."""
    if isinstance(value, dict):
        return {
            k: REDACTED if isinstance(v, str) and _SECRET_NAME.search(k) else redact(v, secrets)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [redact(v, secrets) for v in value]
    if isinstance(value, str):
        if re.search(r"://[^/@\s]*@", value):
            return REDACTED
        for secret in secrets:
            value = value.replace(secret, REDACTED) if secret else value
    return value


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
            if not _utf8(environ[name]):
                problems.append(
                    Problem(key_path(path), f"environment variable {name} is not UTF-8 text")
                )
                return ""
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


def _problems(error: Any) -> list[Problem]:
    loc = tuple(p for p in error["loc"] if not (isinstance(p, str) and _VALIDATOR_STEP.match(p)))
    kind = error["type"]
    if kind == "extra_forbidden":
        return [Problem(key_path(loc), "unknown key")]
    if kind == "missing":
        return [Problem(key_path(loc), "required key is missing")]
    message = str(error["msg"]).removeprefix("Value error, ")
    if not message.startswith(_AT):
        return [Problem(key_path(loc), message)]
    base = key_path(loc)
    problems = []
    for line in message.split("\n"):
        sub, _, why = line.removeprefix(_AT).partition("\t")
        problems.append(Problem(f"{base}.{sub}" if base else sub, why))
    return problems
