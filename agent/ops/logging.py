"""structlog, configured once: JSON lines on stderr, readable console output on a terminal.

Under systemd, when stderr is the journal's stream (`JOURNAL_STREAM` names its device and
inode, as systemd.exec(5) says to check), every line starts with its syslog priority
(`<3>` error, `<4>` warning, `<6>` info, `<7>` debug): journald takes it as the entry's
priority and strips it, so `journalctl -p err` finds `auth_failed`. `INVOCATION_ID` alone is
not enough: a unit whose stderr goes to a file has it too, and the prefix would stay in the
file."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Mapping
from typing import Any

import orjson
import structlog

from agent.config import LogConfig


def _serialize(event: Any, **_: Any) -> str:
    return orjson.dumps(event, default=str).decode()


PRIORITIES: dict[str, int] = {
    "critical": 2,
    "exception": 3,
    "error": 3,
    "warning": 4,
    "warn": 4,
    "info": 6,
    "debug": 7,
}
"""structlog's method names -> syslog priorities (sd-daemon(3))."""


def stderr_is_journal(environ: Mapping[str, str] | None = None) -> bool:
    """True when stderr is connected to the journal (`JOURNAL_STREAM=<dev>:<inode>` matches)."""
    value = (os.environ if environ is None else environ).get("JOURNAL_STREAM", "")
    device, _, inode = value.partition(":")
    try:
        stat = os.fstat(sys.stderr.fileno())
        return (stat.st_dev, stat.st_ino) == (int(device), int(inode))
    except (ValueError, OSError):
        return False


def with_priority(renderer: Callable[..., Any]) -> Callable[..., str]:
    """`renderer`, its line prefixed with the syslog priority of the log method."""

    def render(logger: Any, method: str, event: Any) -> str:
        return f"<{PRIORITIES.get(method, 6)}>{renderer(logger, method, event)}"

    return render


def configure_logging(config: LogConfig) -> None:
    console = config.format == "console" or (config.format == "auto" and sys.stderr.isatty())
    renderer: Any = (
        structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
        if console
        else structlog.processors.JSONRenderer(serializer=_serialize)
    )
    if stderr_is_journal():
        renderer = with_priority(renderer)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[config.level.upper()]
        ),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
