"""What a SIGHUP applies at once and what waits for a restart, decided without an agent."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agent.config import Config
from agent.reload import plan_reload


def config(**changes: Any) -> Config:
    doc: dict[str, Any] = {
        "data_dir": "/var/lib/polaris-agent",
        "polaris": {
            "url": "https://example.api.imply.io",
            "project_id": "p",
            "connection": "c",
            "api_key": "pok_key",
        },
        "sources": [{"name": "app", "include": ["/var/log/app/*.log"]}],
    }
    for key, value in changes.items():
        doc[key] = {**doc.get(key, {}), **value} if isinstance(value, dict) else value
    return Config.model_validate(doc)


def test_nothing_changed_applies_nothing() -> None:
    plan = plan_reload(config(), config())

    assert (plan.live, plan.later) == ((), ())


def test_a_new_endpoint_reaches_the_sender_too() -> None:
    plan = plan_reload(config(), config(polaris={"connection": "other"}))

    assert plan.live == ("polaris", "sender")


def test_spool_policy_applies_at_once_and_reaches_the_sender_deadline() -> None:
    plan = plan_reload(config(), config(spool={"after": "5s", "max_size": "2GiB"}))

    assert plan.live == ("sender", "spool")
    assert plan.later == ()


def test_restart_only_settings_are_named_not_applied() -> None:
    new = config(
        data_dir=str(Path("/srv/agent")),
        queue={"max_bytes": 4096},
        sender={"workers": 2},
        spool={"enabled": False},
    )

    plan = plan_reload(config(), new)

    assert plan.later == ("data_dir", "queue", "sender.workers", "spool.enabled")
    assert plan.live == ("sender", "spool")


def test_dead_letter_bounds_apply_at_once() -> None:
    new = config(dead_letter={"max_size": "1MiB", "max_age": "1d", "log_interval": "5m"})

    plan = plan_reload(config(), new)

    assert plan.live == ("dead_letter",)
    assert plan.later == ()


def test_a_new_data_dir_moves_the_dead_letters_only_at_a_restart() -> None:
    plan = plan_reload(config(), config(data_dir="/srv/agent", dead_letter={"max_size": "1MiB"}))

    assert plan.live == ("dead_letter",)
    assert plan.later == ("data_dir",)
