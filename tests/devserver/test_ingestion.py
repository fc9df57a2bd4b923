"""Jobs turn stream events into rows: readFromPoint, the time window, input types.

A null or unparseable __time fails the job: test_polaris_fidelity.py."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from agent.devserver import DevServer, running_dev_server

from .devkit import Api
from .test_catalog_api import job_spec


def event(days_ago: float, user: str, added: Any = 1) -> bytes:
    moment = datetime.now(UTC) - timedelta(days=days_ago)
    stamp = moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    return orjson.dumps({"event_time": stamp, "user": user, "added": added})


async def users(api: Api, table: str = "demo_table") -> list[str]:
    rows = await api.sql(f'SELECT "user" FROM {table} ORDER BY __time')
    return [row[0] for row in rows]


async def test_latest_ingests_only_what_comes_after_the_job(api: Api) -> None:
    await api.events("demo_connection", event(1, "before"))
    assert (await api.post("/jobs", job_spec(readFromPoint="latest")))[0] == 201
    await api.events("demo_connection", event(1, "after"))
    assert await users(api) == ["after"]


async def test_earliest_ingests_what_the_connection_already_holds(
    api: Api, dev_server: DevServer
) -> None:
    await api.events("demo_connection", event(2, "before"))
    assert (await api.post("/jobs", job_spec(readFromPoint="earliest")))[0] == 201
    await api.events("demo_connection", event(1, "after"))
    assert await users(api) == ["before", "after"]
    assert len(dev_server.received_lines("demo_connection")) == 2


async def test_late_and_early_events_are_filtered_and_counted(api: Api) -> None:
    status, job, _ = await api.post("/jobs", job_spec())
    assert status == 201
    body = b"\n".join(
        [event(40, "forty-days-old"), event(29, "recent"), event(-3000, "far-future")]
    )
    assert (await api.events("demo_connection", body))[0] == 200
    assert await users(api) == ["recent"]
    _, fetched = await api.get(f"/jobs/{job['id']}")
    assert fetched["ingestionStats"] == {"ingested": 1, "filtered": 2, "unparseable": 0}


async def test_late_window_is_configurable(api: Api) -> None:
    assert (await api.post("/jobs", job_spec(lateMessageRejectionPeriod="P90D")))[0] == 201
    await api.events("demo_connection", event(40, "forty-days-old"))
    assert await users(api) == ["forty-days-old"]


async def test_input_types_and_expressions_shape_the_columns(api: Api) -> None:
    spec = job_spec()
    spec["target"]["tableName"] = "shaped"
    spec["source"]["inputSchema"] = [
        {"name": "ts", "dataType": "long"},
        {"name": "user", "dataType": "string"},
        {"name": "added", "dataType": "long"},
        {"name": "meta", "dataType": "json"},
    ]
    spec["mappings"] = [
        {"columnName": "__time", "expression": 'MILLIS_TO_TIMESTAMP("ts")'},
        {"columnName": "who", "expression": "UPPER(COALESCE(\"user\", 'anon'))"},
        {"columnName": "added", "expression": '"added"'},
        {"columnName": "doubled", "expression": 'CAST("added" AS DOUBLE) * 2'},
        {"columnName": "label", "expression": 'CONCAT("user", \':\', "added")'},
        {"columnName": "meta", "expression": '"meta"'},
    ]
    assert (await api.post("/jobs", spec))[0] == 201, spec
    now_ms = int(datetime.now(UTC).timestamp() * 1000)
    lines = [
        {"ts": now_ms - 2000, "user": "ada", "added": "7", "meta": {"k": [1]}},
        {"ts": now_ms - 1000, "added": 2},
    ]
    data = b"\n".join(orjson.dumps(line) for line in lines)
    assert (await api.events("demo_connection", data))[0] == 200
    rows = await api.sql("SELECT who, added, doubled, label, meta FROM shaped ORDER BY __time")
    assert rows == [["ADA", 7, 14.0, "ada:7", '{"k":[1]}'], ["ANON", 2, 4.0, None, None]]


async def test_connection_without_job_keeps_events_and_no_table(api: Api) -> None:
    await api.events("demo_connection", event(1, "kept"))
    status, body, _ = await api.post("/query/sql", {"query": "SELECT * FROM demo_table"})
    assert status == 400
    assert "no such table" in body["message"]


async def test_query_is_read_only_and_reports_sqlite_errors(api: Api) -> None:
    assert (await api.post("/jobs", job_spec()))[0] == 201
    for sql in ("DELETE FROM demo_table", "DROP TABLE demo_table", "SELEC 1"):
        status, body, _ = await api.post("/query/sql", {"query": sql})
        assert status == 400, sql
        assert body["message"]
    status, body, _ = await api.post("/query/sql", {"query": "SELECT 1 AS one"})
    assert (status, body) == (200, [{"one": 1}])  # resultFormat object, Polaris' default


async def test_state_survives_a_restart_with_a_data_dir(tmp_path: Path) -> None:
    async with aiohttp.ClientSession() as session:
        async with running_dev_server(data_dir=tmp_path) as server:
            api = Api(server, session)
            assert (
                await api.post(
                    "/connections", {"type": "push_streaming", "name": "demo_connection"}
                )
            )[0] == 201
            await api.events("demo_connection", event(3, "early-bird"))
            assert (await api.post("/jobs", job_spec(readFromPoint="earliest")))[0] == 201
            await api.events("demo_connection", event(2, "second"))
            assert await users(api) == ["early-bird", "second"]
        async with running_dev_server(data_dir=tmp_path) as server:
            api = Api(server, session)
            assert len(server.received_lines("demo_connection")) == 2
            await api.events("demo_connection", event(1, "third"))
            assert await users(api) == ["early-bird", "second", "third"]
            assert len(server.received_lines("demo_connection")) == 3
            assert (await api.get("/jobs"))[1]["values"][0]["ingestionStats"]["ingested"] == 3
