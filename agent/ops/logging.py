"""structlog, configured once: JSON lines on stderr, readable console output on a terminal."""

from __future__ import annotations

import logging
import sys
from typing import Any

import orjson
import structlog

from agent.config import LogConfig


def _serialize(event: Any, **_: Any) -> str:
    return orjson.dumps(event, default=str).decode()


def configure_logging(config: LogConfig) -> None:
    console = config.format == "console" or (config.format == "auto" and sys.stderr.isatty())
    renderer: Any = (
        structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
        if console
        else structlog.processors.JSONRenderer(serializer=_serialize)
    )
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
