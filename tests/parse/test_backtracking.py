"""A pattern the operator writes can hang the agent on a line an attacker writes: Python's
`re` has no time limit, and ``(a+)+$`` against 30 ``a`` and a ``!`` takes minutes. `check`
and `run` warn about such patterns (nested or adjacent unbounded repeats that can match the
same text), naming the key; they do not refuse them (the check cannot be exact)."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.config import load_config
from agent.config.checks import config_warnings
from agent.parse.backtracking import may_backtrack_badly
from tests.support.config import agent_config, merged, render_toml

BAD = [
    r"(a+)+$",
    r"^(\w+\s?)*$",
    r"(?P<x>(?:a|aa)+)+b",
    r"^(?P<msg>(.*)*)$",
    r"(?P<a>\d+)*x",
    r"^(?P<k>(?:[a-z]+,?)+)$",
]
FINE = [
    r"^(?P<time>\S+) (?P<message>seq=\d+ (?P<level>[A-Z]+) (?P<service>\S+) .*)$",
    r"^(?P<level>\w+): (?P<message>.*)$",
    r"(?P<a>[^,]*),(?P<b>.*)",
    r"^(?P<ip>\d{1,3}(?:\.\d{1,3}){3}) (?P<rest>.*)$",
    r"(?P<word>(?:ab)+)",
    r"^\d{4}-",
]


@pytest.mark.parametrize("pattern", BAD)
def test_nested_unbounded_repeats_are_flagged(pattern: str) -> None:
    assert may_backtrack_badly(pattern)


@pytest.mark.parametrize("pattern", FINE)
def test_ordinary_patterns_are_not(pattern: str) -> None:
    assert not may_backtrack_badly(pattern)


def test_check_warns_naming_the_key(tmp_path: Path) -> None:
    config = tmp_path / "agent.toml"
    doc = merged(
        agent_config(tmp_path / "data", "http://127.0.0.1:9/v1/events", tmp_path),
        {
            "source": {
                "format": "text",
                "parser": {"type": "regex", "pattern": r"^(?P<message>(\w+\s?)*)$"},
                "multiline": {"start_pattern": r"^(\d+)+-"},
            }
        },
    )
    config.write_text(render_toml(doc))

    warnings = [str(w) for w in config_warnings(load_config(config, {"TEST_POLARIS_KEY": "k"}))]

    assert any(w.startswith("sources[0].parser.pattern: ") for w in warnings), warnings
    assert any(w.startswith("sources[0].multiline.start_pattern: ") for w in warnings), warnings


def test_a_possessive_fix_is_not_warned_about() -> None:
    assert not may_backtrack_badly(r"^(?P<message>(\w++\s?)*)$")
    assert not may_backtrack_badly(r"^(?P<message>(?>\w+\s?)*)$")
