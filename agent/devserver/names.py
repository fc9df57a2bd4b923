"""Polaris' naming rules: connections (a strict ASCII set) and tables (almost any text).

Connections: "A connection name can only contain ASCII letters, numbers, and the following
characters: ., _, -. The maximum length of a connection name is 64" (Polaris API reference).

Tables (docs.imply.io/polaris/tables, "Introduction to tables"): a table name cannot be
empty, have leading or trailing spaces, contain a whitespace character other than space,
start with `.`, contain `/`, be longer than 255 characters, contain the characters 0-31 or
127-159, emojis (here: U+1F000-U+1FAFF), U+FFF0-U+FFFF, or the UTF-16 surrogates
U+D800-U+DFFF. So "Koalas Subset" is a table name.
"""

from __future__ import annotations

import re

from agent.devserver.errors import InvalidSpec

NAME_PATTERN = re.compile(r"[A-Za-z0-9._-]{1,64}")
TABLE_NAME_MAX = 255
_TABLE_FORBIDDEN = re.compile(
    "[\x00-\x1f\x7f-\x9f/\ufff0-\uffff\ud800-\udfff\U0001f000-\U0001faff]|(?! )\\s",
    flags=re.UNICODE,
)


def check_name(kind: str, name: object) -> str:
    """A connection name: letters, digits, `.`, `_`, `-`; 1 to 64. Raises InvalidSpec (400)."""
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        raise InvalidSpec(
            f"invalid {kind} name {name!r}: use 1 to 64 letters, digits, '.', '_' or '-'"
        )
    return name


def check_table_name(name: object) -> str:
    """A table name by Polaris' rules (see the module docstring). Raises InvalidSpec (400)."""
    problem = _table_name_problem(name)
    if problem is not None:
        raise InvalidSpec(f"invalid table name {name!r}: {problem}")
    assert isinstance(name, str)
    return name


def _table_name_problem(name: object) -> str | None:
    if not isinstance(name, str) or not name:
        return "it must be a non-empty string"
    if len(name) > TABLE_NAME_MAX:
        return f"it is longer than {TABLE_NAME_MAX} characters"
    if name != name.strip(" "):
        return "it has leading or trailing spaces"
    if name.startswith("."):
        return "it starts with '.'"
    if _TABLE_FORBIDDEN.search(name):
        return "it contains '/', a control character, an emoji or whitespace other than a space"
    return None
