"""What is wrong with a config, as values: every problem with its key path, warnings apart."""

from __future__ import annotations

from dataclasses import dataclass

REDACTED = "**********"
"""What stands in for a secret in every message and in `check`'s output."""
MAX_PROBLEMS_SHOWN = 100
"""A ConfigError prints at most this many problems, then how many more there were."""


@dataclass(frozen=True, slots=True)
class Problem:
    path: str
    message: str

    def __str__(self) -> str:
        text = f"{self.path}: {self.message}" if self.path else self.message
        return printable(text)


@dataclass(frozen=True, slots=True)
class ConfigWarning:
    """A setting that works but is risky or likely a mistake; said by ``check`` and ``run``."""

    key: str
    message: str

    def __str__(self) -> str:
        return printable(f"{self.key}: {self.message}" if self.key else self.message)


class ConfigError(Exception):
    """Everything wrong with a config file, each problem with its key path."""

    def __init__(self, source: str, problems: list[Problem]) -> None:
        self.source = source
        self.problems = problems
        shown = [f"  - {p}" for p in problems[:MAX_PROBLEMS_SHOWN]]
        if len(problems) > MAX_PROBLEMS_SHOWN:
            shown.append(f"  ... and {len(problems) - MAX_PROBLEMS_SHOWN} more")
        super().__init__(f"invalid config {printable(source)}:\n" + "\n".join(shown))


def printable(text: str) -> str:
    """``text`` with control characters (a key named ``"\\x1b[31m"``, a NUL) escaped, so that
    a config cannot write to the operator's terminal; other Unicode is kept."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in text)


_AT = "@"


def at(*problems: tuple[str, str]) -> str:
    """A validator's message naming keys below its own (``("include[0]", "why")``): pydantic
    points only at the field or model validated; `_problem` moves each sub-path into place."""
    return "\n".join(f"{_AT}{path}\t{message}" for path, message in problems)


def key_path(loc: tuple[str | int, ...]) -> str:
    """``("sources", 0, "format")`` -> ``sources[0].format``."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text
