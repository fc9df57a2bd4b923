"""promtool for the exposition tests (tests/support/promtool.py fetches it)."""

from __future__ import annotations

from tests.support.promtool import promtool

__all__ = ["promtool"]
