"""The event's own time lands in Polaris by default (issue 14): lines whose time is under
``@timestamp``, ``ts`` (epoch millis), ``time`` (epoch seconds) or ``event_time`` — and none
called ``timestamp`` — are stored with that time as ``__time`` by a job mapping
``TIME_PARSE("timestamp")``, with no ``time_field`` set; only a line with no time at all gets
the read time."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from agent.devserver import DevServer
from tests.pipeline.test_routing import job
from tests.support.config import CONNECTION
from tests.support.inprocess import InProcessAgent


async def test_own_times_under_common_names_become_time(
    dev_server: DevServer, inprocess_agent: Callable[..., InProcessAgent], log_dir: Path
) -> None:
    dev_server.create_job(job("app_logs", CONNECTION))
    hour_ago = int(time.time()) - 3600
    iso = datetime.fromtimestamp(hour_ago, UTC).isoformat().replace("+00:00", "Z")
    (log_dir / "app.log").write_bytes(
        b'{"@timestamp":"%s","msg":"at"}\n' % iso.encode()
        + b'{"ts":%d123,"msg":"millis"}\n' % hour_ago
        + b'{"time":%d.5,"msg":"seconds"}\n' % hour_ago
        + b'{"event_time":"%s","msg":"event_time"}\n' % iso.encode()
        + b'{"msg":"none"}\n'
    )
    before = time.time()

    assert await inprocess_agent().run_once() == 0

    result = await dev_server.query("SELECT msg, __time FROM app_logs")
    stored = {row[0]: row[1] for row in result.rows}
    seconds = {msg: _epoch(value) for msg, value in stored.items()}
    assert seconds["at"] == hour_ago
    assert seconds["millis"] == hour_ago + 0.123
    assert seconds["seconds"] == hour_ago + 0.5
    assert seconds["event_time"] == hour_ago
    assert seconds["none"] >= before - 1  # the read time, the last resort


def _epoch(value: object) -> float:
    if isinstance(value, int | float):
        return value / 1000
    return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
