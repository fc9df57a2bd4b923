"""The journald options: what they accept, and errors that name the key."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from agent.journal import JournalSettings


def problems(**options: object) -> dict[str, str]:
    with pytest.raises(ValidationError) as caught:
        JournalSettings.model_validate(options)
    return {".".join(map(str, e["loc"])) or "(model)": e["msg"] for e in caught.value.errors()}


def test_defaults_follow_the_system_journal_from_now() -> None:
    settings = JournalSettings()
    assert settings.directory is None and settings.since == "now" and settings.priority is None


def test_priority_as_name_or_number() -> None:
    assert JournalSettings(priority="warning").priority == 4  # type: ignore[arg-type]
    assert JournalSettings(priority="err").priority == 3  # type: ignore[arg-type]
    assert JournalSettings(priority="6").priority == 6  # type: ignore[arg-type]
    assert JournalSettings(priority=0).priority == 0
    assert "priority" in problems(priority="loud")
    assert "priority" in problems(priority=9)


def test_since_takes_now_beginning_or_an_aware_time() -> None:
    when = JournalSettings(since="2026-01-02T03:04:05Z")  # type: ignore[arg-type]
    assert when.since == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert when.since_epoch() == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC).timestamp()
    assert "offset" in problems(since="2026-01-02T03:04:05")["since"]
    assert "since" in problems(since="yesterday")


def test_every_problem_names_its_key() -> None:
    found = problems(
        units=["ok.service", ""],
        matches=["_TRANSPORT=kernel", "lowercase=x"],
        directory="relative/dir",
        include_fields=["_COMM", "bad name"],
        colour="blue",
    )
    assert set(found) == {"units", "matches", "directory", "include_fields", "colour"}
    assert "[1]" in found["units"] and "'lowercase=x'" in found["matches"]


def test_match_syntax_allows_or_groups() -> None:
    settings = JournalSettings(matches=["_TRANSPORT=kernel", "+", "_SYSTEMD_UNIT=a.service"])
    assert settings.matches[1] == "+"
    assert "matches" in problems(matches=["+", "_PID=1"])


def test_include_and_exclude_fields_are_exclusive() -> None:
    assert "not both" in problems(include_fields=["_COMM"], exclude_fields=["_UID"])["(model)"]
