"""Fixtures of the reliability scenarios, from the shared `tests.support` package."""

from tests.support.endpoint import dev_server, log_dir
from tests.support.lines import ledger
from tests.support.process import file_agent, make_agent

__all__ = ["dev_server", "file_agent", "ledger", "log_dir", "make_agent"]
