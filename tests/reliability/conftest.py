"""Fixtures of the reliability scenarios; the helpers live in reliability_kit.py (a unique
module name: every test folder has a `conftest`, so importing from one is ambiguous)."""

from reliability_kit import dev_server, file_agent, ledger, log_dir

__all__ = ["dev_server", "file_agent", "ledger", "log_dir"]
