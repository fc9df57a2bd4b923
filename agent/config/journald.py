"""The journald-only keys of a ``type = "journald"`` source (issue 17).

`SourceConfig` inherits them, so a journald source is written flat (``units = [...]`` beside
``name``) and every problem is reported at its own key (``sources[1].units``); the journald
package reads them through the same names (`agent.journal.settings` re-exports this class).
Unknown keys are errors, and every error names its key.
"""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime
from typing import Final, Literal

from pydantic import field_validator, model_validator

from agent.schema import Section

LEVELS: Final = ("emerg", "alert", "crit", "err", "warning", "notice", "info", "debug")
"""syslog(3) priorities 0..7, as journalctl --priority names them."""

JOURNALD_KEYS: Final = frozenset(
    {
        "units",
        "exclude_units",
        "matches",
        "priority",
        "directory",
        "since",
        "include_fields",
        "exclude_fields",
    }
)
"""The keys only a journald source takes."""

_ALIASES: Final = {"emergency": 0, "panic": 0, "critical": 2, "error": 3, "warn": 4}
_FIELD: Final = re.compile(r"_{0,2}[A-Z][A-Z0-9_]*")
"""A journal field name: upper-case letters, digits and underscores, not starting with a
digit; trusted fields start with one underscore, address fields (``__CURSOR``) with two."""


class JournalSettings(Section):
    """What to read from which journal, and which fields an event keeps."""

    units: list[str] = []  # journalctl --unit, OR-ed; "" is refused
    exclude_units: list[str] = []  # dropped by _SYSTEMD_UNIT, after reading
    matches: list[str] = []  # journalctl match syntax: FIELD=value, "+" between OR-groups
    priority: int | None = None  # max level (0 emerg .. 7 debug), given as name or number
    directory: str | None = None  # None: the system journal
    since: Literal["now", "beginning"] | datetime = "now"  # the first start only
    include_fields: list[str] = []  # only these beside the core ones; [] = all
    exclude_fields: list[str] = []

    @field_validator("units", "exclude_units")
    @classmethod
    def _unit_names(cls, units: list[str]) -> list[str]:
        for index, unit in enumerate(units):
            if not unit.strip() or any(ch.isspace() for ch in unit):
                raise ValueError(f"[{index}] {unit!r} is not a unit name")
        return units

    @field_validator("matches")
    @classmethod
    def _match_syntax(cls, matches: list[str]) -> list[str]:
        for index, match in enumerate(matches):
            if match == "+":
                continue
            name, equals, _ = match.partition("=")
            if not equals or not _FIELD.fullmatch(name):
                raise ValueError(f"[{index}] {match!r} is not FIELD=value (or '+')")
        if matches and (matches[0] == "+" or matches[-1] == "+"):
            raise ValueError("'+' must stand between two matches")
        return matches

    @field_validator("priority", mode="before")
    @classmethod
    def _level(cls, value: object) -> object:
        if isinstance(value, str):
            name = value.strip().lower()
            if name.isdigit():
                value = int(name)
            elif name in LEVELS:
                return LEVELS.index(name)
            elif name in _ALIASES:
                return _ALIASES[name]
            else:
                raise ValueError(f"{value!r}: use 0..7 or one of {', '.join(LEVELS)}")
        if isinstance(value, int) and not isinstance(value, bool) and not 0 <= value <= 7:
            raise ValueError(f"{value}: use 0..7 or one of {', '.join(LEVELS)}")
        return value

    @field_validator("directory")
    @classmethod
    def _absolute_directory(cls, directory: str | None) -> str | None:
        if directory is not None and not os.path.isabs(directory):
            raise ValueError(f"{directory!r} must be an absolute path")
        return directory

    @field_validator("since", mode="before")
    @classmethod
    def _when(cls, value: object) -> object:
        if isinstance(value, str) and value not in ("now", "beginning"):
            try:
                value = datetime.fromisoformat(value)
            except ValueError:
                raise ValueError(
                    f"{value!r}: use now, beginning or an ISO 8601 time with its offset"
                ) from None
        if isinstance(value, datetime) and value.tzinfo is None:
            raise ValueError("an ISO 8601 time needs its offset (Z or +hh:mm)")
        return value

    @field_validator("include_fields", "exclude_fields")
    @classmethod
    def _field_names(cls, names: list[str]) -> list[str]:
        for index, name in enumerate(names):
            if not _FIELD.fullmatch(name):
                raise ValueError(f"[{index}] {name!r} is not a journal field name (e.g. _COMM)")
        return names

    @model_validator(mode="after")
    def _one_field_rule(self) -> JournalSettings:
        if self.include_fields and self.exclude_fields:
            raise ValueError("include_fields and exclude_fields: set one, not both")
        return self

    def since_epoch(self) -> float | None:
        """The configured first-start time as epoch seconds; None for now/beginning."""
        if isinstance(self.since, datetime):
            return self.since.astimezone(UTC).timestamp()
        return None
