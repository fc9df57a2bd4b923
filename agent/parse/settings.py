"""What a source may say about turning its lines into events (issue 6), validated up front.

These are pydantic models in the style of `agent.config` and built on the same
`agent.schema`: frozen, unknown keys are errors, and every bad value fails validation *at its
own key* (``sources[0].parser.pattern``), because a regex that does not compile or a zone
that does not exist must stop `check`, not the tailer at three in the morning.
`SourceParsing` holds all of them so that ``SourceConfig`` can simply inherit it (or the lead
can build one from a source's fields).
"""

from __future__ import annotations

import codecs
import re
from typing import Annotated, Any, Final, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BeforeValidator, Field, ValidationInfo, field_validator

from agent.parse.timestamps import NAMED_FORMATS, check_strptime
from agent.parse.userregex import UnsupportedPattern, compile_user
from agent.schema import Duration, Section, Size

DAY = 86_400.0
DEFAULT_LATE_WINDOW = 30 * DAY
"""Polaris' default ``lateMessageRejectionPeriod`` (P30D)."""
DEFAULT_EARLY_WINDOW = 2000 * DAY
"""Polaris' default ``earlyMessageRejectionPeriod`` (P2000D)."""

ParserType = Literal["nginx", "apache", "syslog", "logfmt", "json", "regex"]
WIDE_CHARSETS = frozenset({"utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-le", "utf-32-be"})
"""Charsets whose newline is more than the byte 0x0A: the assembler re-frames their lines."""


class ParserOptions(Section):
    """``parser = "nginx"`` or ``parser = {type = "regex", pattern = '^(?P<level>\\w+) ...'}``."""

    type: ParserType
    pattern: str | None = Field(default=None, validate_default=True)

    @field_validator("pattern")
    @classmethod
    def _pattern_fits_type(cls, pattern: str | None, info: ValidationInfo) -> str | None:
        kind = info.data.get("type")
        if kind != "regex":
            if pattern is not None:
                raise ValueError(f"only a regex parser takes a pattern, not {kind!r}")
            return None
        if pattern is None:
            raise ValueError("a regex parser needs a pattern with named groups, (?P<name>...)")
        compiled = _compile(pattern)
        if not compiled.groupindex:
            raise ValueError("the pattern has no named groups, (?P<name>...): nothing to extract")
        return pattern


class TimeOptions(Section):
    """Where an event's time is and how it is written.

    `field`: the parsed field holding the time; by default the built-in parser's own time, a
    regex's ``time`` group, or else the source's ``time_field``. `format`: ``auto`` (numbers by
    magnitude, ISO 8601, and the built-in parsers' formats), ``iso8601``, ``epoch_seconds``,
    ``epoch_millis``, ``apache``, ``syslog``, ``ctime``, ``nginx``, or a strptime pattern.
    `timezone`: an IANA zone for times written without an offset.
    """

    field: str | None = None
    format: str = "auto"
    timezone: str = "UTC"

    @field_validator("format")
    @classmethod
    def _known_format(cls, value: str) -> str:
        if value not in NAMED_FORMATS:
            check_strptime(value)
        return value

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {value!r}; use an IANA name such as 'Europe/Berlin'"
            ) from None
        return value

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)  # ZoneInfo caches instances per key


class KubernetesOptions(Section):
    """Container log formats and pod metadata.

    `format`: ``cri`` (containerd/CRI-O: ``<time> <stream> <P|F> <message>``) or ``docker``
    (json-file: ``{"log": ..., "stream": ..., "time": ...}``); partial lines are joined per
    stream until the final fragment, for at most `partial_max_bytes`, or released after
    `partial_flush_timeout`. `metadata_from_path` adds namespace, pod, container from
    ``/var/log/pods/...`` or ``/var/log/containers/...``; `sidecar_env` adds them from the
    downward-API variables POD_NAME, POD_NAMESPACE, POD_UID, NODE_NAME, CONTAINER_NAME.
    `metadata_from_api` adds the pod's labels, its namespace's labels and the annotations
    ``[kubernetes] annotations`` names, from a watch of the API server (`agent.kube`).
    """

    format: Literal["cri", "docker"] | None = None
    metadata_from_path: bool = True
    sidecar_env: bool = False
    metadata_from_api: bool = False
    partial_flush_timeout: Duration = 5.0
    partial_max_bytes: Size = 256 * 1024


class MultilineOptions(Section):
    """A line matching `start_pattern` (``re.search``; anchor with ``^``) starts an event;
    every other line continues the one before. An event is released by the next start line,
    after `flush_timeout` without a new line, or when adding a line would pass `max_bytes`."""

    start_pattern: str
    flush_timeout: Duration = 1.0
    max_bytes: Size = 256 * 1024

    @field_validator("start_pattern")
    @classmethod
    def _compiles(cls, pattern: str) -> str:
        _compile(pattern)
        return pattern

    @field_validator("max_bytes")
    @classmethod
    def _positive(cls, size: int) -> int:
        if size < 1:
            raise ValueError("must be at least 1 byte")
        return size


def _parser_shorthand(value: Any) -> Any:
    return {"type": value} if isinstance(value, str) else value


def _event_id_shorthand(value: Any) -> Any:
    if value is True:
        return "event_id"
    if value is False:
        return None
    return value


class SourceParsing(Section):
    """A source's parsing options; defaults reproduce today's behaviour (no parsing)."""

    time_field: str = "timestamp"
    """Where the normalized time goes (ISO 8601 UTC, ms, ``Z``): what ``TIME_PARSE`` reads."""
    parser: Annotated[ParserOptions | None, BeforeValidator(_parser_shorthand)] = None
    time: TimeOptions = TimeOptions()
    late_window: Duration = DEFAULT_LATE_WINDOW
    early_window: Duration = DEFAULT_EARLY_WINDOW
    kubernetes: KubernetesOptions | None = None
    multiline: MultilineOptions | None = None
    charset: str = "utf-8"
    event_id: Annotated[str | None, BeforeValidator(_event_id_shorthand)] = None
    """``true`` (field ``event_id``) or a field name: a deterministic id per event."""

    @field_validator("late_window", "early_window")
    @classmethod
    def _positive_window(cls, seconds: float) -> float:
        if seconds <= 0:
            raise ValueError("must be longer than zero")
        return seconds

    @field_validator("charset")
    @classmethod
    def _known_charset(cls, name: str) -> str:
        try:
            info = codecs.lookup(name)
        except LookupError:
            raise ValueError(
                f"unknown charset {name!r}; e.g. 'utf-8', 'utf-16', 'latin-1'"
            ) from None
        if not getattr(info, "_is_text_encoding", True):
            raise ValueError(f"{name!r} is not a text encoding")
        canonical = info.name
        if canonical not in WIDE_CHARSETS and "\n".encode(canonical) != b"\n":
            raise ValueError(f"charset {name!r} is not supported: its newline is not one byte")
        return canonical

    @field_validator("event_id")
    @classmethod
    def _field_name(cls, name: str | None) -> str | None:
        if name is not None and not name.strip():
            raise ValueError("must be true, false or a field name")
        return name


def _compile(pattern: str) -> re.Pattern[str]:
    """`pattern` as `re` reads it (the syntax the config documents, and what the shape checks
    parse), and as the engine that runs it under a time limit reads it
    (`agent.parse.userregex`): one both take, or the key's error."""
    try:
        compiled = re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"invalid regular expression: {exc}") from None
    try:
        compile_user(pattern)
    except UnsupportedPattern as exc:
        raise ValueError(f"regular expression not supported: {exc}") from None
    return compiled


PARSING_KEYS: Final = frozenset(
    {"parser", "time", "late_window", "early_window", "kubernetes", "multiline", "event_id"}
)
"""Setting any of these (or a charset other than UTF-8) moves a source off the fast path."""


def needs_parsing(source: SourceParsing) -> bool:
    """Whether `source` asks for more than `Encoder` does; keys set explicitly count, so that
    ``late_window = "30d"`` written out is applied even though it is the default."""
    return bool(source.model_fields_set & PARSING_KEYS) or source.charset != "utf-8"
