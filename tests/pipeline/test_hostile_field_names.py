"""Field names msgspec cannot rename (a quote, a backslash, a control character) as the time
field or a static field: `check` accepted them, and the fast encoder's block decoder raised
``ValueError`` while it was built, outside any guard, so `run` died with a traceback at every
start. JSON allows any key; such a source now goes line by line and ships like any other."""

from __future__ import annotations

import time
from pathlib import Path

import orjson
import pytest

from agent.devserver import DevServer
from tests.support.config import CONNECTION


@pytest.mark.parametrize(
    "source",
    [
        {"fields": {'a"b': 1, "c\\d": "e", "f\x01": True}},
        {"time_field": 'a"b'},
        {"time_field": "t\\x", "fields": {"g\x1f": 2}, "event_id": True},
    ],
    ids=["static-fields", "time-field", "time-field-and-ids"],
)
async def test_a_source_with_unrenamable_names_ships_every_line(
    dev_server: DevServer, make_agent, log_dir: Path, source: dict[str, object]
) -> None:
    time_field = str(source.get("time_field", "timestamp"))
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    lines = [orjson.dumps({time_field: stamp, "n": n}) for n in range(50)]
    (log_dir / "app.log").write_bytes(b"\n".join(lines) + b"\n")
    agent = make_agent(source=source)

    assert await agent.run_once() == 0
    assert not [e for e in agent.events() if e.get("event") == "non_json_output"], "a traceback"

    received = [orjson.loads(line) for line in dev_server.received_lines(CONNECTION)]
    assert [e["n"] for e in received] == list(range(50))
    assert all(e[time_field] == stamp for e in received)
    for name, value in dict(source.get("fields", {})).items():  # type: ignore[call-overload]
        assert all(e[name] == value for e in received)
