"""One rate-limit budget per organization: Polaris counts `RateLimit-*` for the whole
organization, so sources routed to different connections share one pacer."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path

import orjson

from agent.devserver import DevServer
from tests.support.config import CONNECTION
from tests.support.inprocess import InProcessAgent

LIMIT = 12  # requests per window, for the whole organization
WINDOW = 1.0  # seconds: the dev-server's window, shortened from Polaris' minute


def write(path: Path, tag: str, count: int) -> None:
    with path.open("ab") as out:
        for n in range(count):
            out.write(orjson.dumps({"msg": f"{tag}-{n}", "pad": "x" * 80}) + b"\n")


async def test_two_sources_on_two_connections_stay_within_one_org_budget(
    dev_server: DevServer,
    inprocess_agent: Callable[..., InProcessAgent],
    log_dir: Path,
    tmp_path: Path,
) -> None:
    audit_dir = tmp_path / "audit"
    audit_dir.mkdir()
    dev_server.create_connection("audit")
    dev_server.faults.rate_limiter.set_limit(LIMIT)
    dev_server.faults.rate_limiter.window_seconds = WINDOW
    write(log_dir / "app.log", "app", 250)  # ~110 bytes a line, 1 KiB batches: ~25 requests
    write(audit_dir / "audit.log", "audit", 250)
    agent = inprocess_agent(
        extra_sources=[{"name": "audit", "include": [f"{audit_dir}/*.log"], "connection": "audit"}],
        batch={"max_bytes": 1024, "max_wait": "20ms"},
        sender={"workers": 4, "compression": "none"},
    )

    assert await agent.run_once() == 0

    statuses = Counter(r.status for r in dev_server.requests)
    assert statuses[429] == 0, f"the org budget was overspent: {statuses}"
    assert {r.connection for r in dev_server.requests} == {CONNECTION, "audit"}
    assert len(dev_server.received_lines(CONNECTION)) == 250
    assert len(dev_server.received_lines("audit")) == 250
