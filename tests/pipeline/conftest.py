"""Fixtures for the pipeline tests; the agent harness lives in harness.py."""

from harness import dev_server, log_dir, make_agent

__all__ = ["dev_server", "log_dir", "make_agent"]
