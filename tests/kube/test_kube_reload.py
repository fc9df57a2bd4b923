"""A changed ``[kubernetes]`` section waits for a restart (the watch is built once)."""

from __future__ import annotations

from typing import Any

from agent.config import Config
from agent.reload import plan_reload


def test_a_changed_kubernetes_section_waits_for_a_restart() -> None:
    doc: dict[str, Any] = {
        "polaris": {
            "url": "https://acme.us-east-1.aws.api.imply.io",
            "project_id": "p",
            "connection": "c",
            "api_key": "key-0123456789",
        },
        "sources": [{"name": "app", "include": ["/var/log/*.log"]}],
    }
    old = Config.model_validate(doc)
    new = Config.model_validate({**doc, "kubernetes": {"annotations": ["team.example.com/owner"]}})
    plan = plan_reload(old, new)
    assert plan.later == ("kubernetes",) and plan.live == ()
