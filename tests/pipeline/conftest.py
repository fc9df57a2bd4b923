"""Fixtures for the pipeline tests, from the shared `tests.support` package."""

from tests.support.endpoint import dev_server, log_dir
from tests.support.inprocess import inprocess_agent
from tests.support.process import make_agent

__all__ = ["dev_server", "inprocess_agent", "log_dir", "make_agent"]
