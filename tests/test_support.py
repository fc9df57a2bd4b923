"""The shared test support does what its users take for granted: a config built from a dict
reads back as that dict and as the agent's own config; a paused clock ends a window only
when moved; a condition that never holds times out naming itself."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from agent.config import load_config
from tests.support.clock import TestClock
from tests.support.config import agent_config, merged, render_toml
from tests.support.waiting import Condition, settled, wait_until


def test_a_config_dict_renders_as_toml_that_reads_back_as_the_same_dict(tmp_path: Path) -> None:
    doc = merged(
        agent_config(tmp_path / "data", "http://127.0.0.1:1", tmp_path / "logs"),
        {
            "spool": {"after": "300ms", "enabled": True},
            "source": {
                "format": "text",
                "multiline": {"start_pattern": r"^\d{4}-\d{2} \[x\] \"q\"", "flush_timeout": "1s"},
                "fields": {"service": "checkout", "tier": 2, "ratio": 0.5, "ü-key": "naïve"},
            },
            "extra_sources": [
                {"name": "audit", "include": ["/var/log/a.log"], "connection": "audit"}
            ],
            "job": {"input_schema": [{"name": "event_time"}, {"name": "message"}]},
        },
    )

    assert tomllib.loads(render_toml(doc)) == doc


def test_merged_lays_changes_over_the_base_without_touching_it(tmp_path: Path) -> None:
    base = agent_config(tmp_path / "data", "http://127.0.0.1:1", tmp_path / "logs")
    changed = merged(base, {"batch": {"max_bytes": 5000}, "source": {"include": ["/x/*.log"]}})

    assert changed["batch"] == {"max_wait": "100ms", "max_bytes": 5000}
    assert changed["sources"][0]["include"] == ["/x/*.log"]
    assert changed["sources"][0]["name"] == "app"
    assert base["batch"] == {"max_wait": "100ms"}
    assert base["sources"][0]["include"] == [f"{tmp_path / 'logs'}/*.log"]


def test_the_base_config_is_one_the_agent_accepts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_POLARIS_KEY", "k")
    path = tmp_path / "agent.toml"
    path.write_text(
        render_toml(
            merged(
                agent_config(tmp_path / "data", "http://127.0.0.1:1", tmp_path / "logs"),
                {"spool": {"after": "1s"}, "api": {"listen": "127.0.0.1:0"}},
            )
        )
    )

    config = load_config(path)

    assert config.sources[0].name == "app" and config.spool.after == 1.0


def test_a_paused_clock_moves_only_when_advanced() -> None:
    clock = TestClock()
    clock.pause()
    now = clock()
    assert clock() == now
    clock.advance(1.5)
    assert clock() == now + 1.5
    with pytest.raises(ValueError):
        clock.advance(-1)


async def test_a_condition_that_never_holds_times_out_naming_itself() -> None:
    with pytest.raises(AssertionError, match="the moon turning blue"):
        await wait_until(Condition("the moon turning blue", lambda: False), within=0.2)


async def test_settled_waits_for_a_value_to_stop_changing() -> None:
    values = iter([1, 2, 3, 3, 3, 3, 3, 3])
    await wait_until(settled(lambda: next(values), "the count", polls=5), within=5)
