"""Polaris' naming rule for connections and tables."""

from __future__ import annotations

import re

from agent.devserver.errors import InvalidSpec

NAME_PATTERN = re.compile(r"[A-Za-z0-9._-]{1,64}")


def check_name(kind: str, name: object) -> str:
    """Letters, digits, `.`, `_`, `-`; 1 to 64 characters. Raises InvalidSpec (400)."""
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        raise InvalidSpec(
            f"invalid {kind} name {name!r}: use 1 to 64 letters, digits, '.', '_' or '-'"
        )
    return name
