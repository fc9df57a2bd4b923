"""One agent, two sources, two connections: each source's events land in its own table."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from agent.devserver import DevServer
from tests.support.config import CONNECTION
from tests.support.inprocess import InProcessAgent


def job(table: str, connection: str) -> dict[str, Any]:
    return {
        "type": "streaming",
        "target": {"type": "table", "tableName": table},
        "createTableIfNotExists": True,
        "readFromPoint": "earliest",
        "source": {
            "type": "connection",
            "connectionName": connection,
            "inputSchema": [
                {"name": "timestamp", "dataType": "string"},
                {"name": "msg", "dataType": "string"},
            ],
            "formatSettings": {"format": "nd-json"},
        },
        "mappings": [
            {"columnName": "__time", "expression": 'TIME_PARSE("timestamp")'},
            {"columnName": "msg", "expression": '"msg"'},
        ],
    }


def write(path: Path, tag: str, count: int) -> None:
    now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    with path.open("ab") as out:
        for n in range(count):
            out.write(orjson.dumps({"timestamp": now, "msg": f"{tag}-{n}"}) + b"\n")


async def test_two_sources_routed_to_two_connections_land_in_two_tables(
    dev_server: DevServer,
    inprocess_agent: Callable[..., InProcessAgent],
    log_dir: Path,
    tmp_path: Path,
) -> None:
    audit_dir = tmp_path / "audit"
    audit_dir.mkdir()
    dev_server.create_connection("audit")
    dev_server.create_job(job("app_logs", CONNECTION))
    dev_server.create_job(job("audit_logs", "audit"))
    write(log_dir / "app.log", "app", 300)
    write(audit_dir / "audit.log", "audit", 200)
    agent = inprocess_agent(
        extra_sources=[{"name": "audit", "include": [f"{audit_dir}/*.log"], "connection": "audit"}]
    )

    assert await agent.run_once() == 0

    app = await dev_server.query("SELECT msg FROM app_logs")
    audit = await dev_server.query("SELECT msg FROM audit_logs")
    assert sorted(row[0] for row in app.rows) == sorted(f"app-{n}" for n in range(300))
    assert sorted(row[0] for row in audit.rows) == sorted(f"audit-{n}" for n in range(200))
    posted_to = {r.connection for r in dev_server.requests if r.status == 200}
    assert posted_to == {CONNECTION, "audit"}
