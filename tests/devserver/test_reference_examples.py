"""The curl examples of the Polaris push-streaming page, against the dev-server: same JSON
bodies, only the host changed and the event times moved to within the last 30 days."""

from __future__ import annotations

import gzip
from datetime import UTC, datetime, timedelta

from .devkit import Api

CONNECTION_SPEC = {"type": "push_streaming", "name": "demo_connection"}

JOB_SPEC = {
    "type": "streaming",
    "target": {"type": "table", "tableName": "demo_table"},
    "createTableIfNotExists": True,
    "source": {
        "type": "connection",
        "connectionName": "demo_connection",
        "inputSchema": [
            {"name": "event_time", "dataType": "string"},
            {"name": "user", "dataType": "string"},
            {"name": "added", "dataType": "float"},
        ],
        "formatSettings": {"format": "nd-json"},
    },
    "mappings": [
        {"columnName": "__time", "expression": 'TIME_PARSE("event_time")'},
        {"columnName": "user", "expression": '"user"'},
        {"columnName": "added", "expression": '"added"'},
    ],
}


def recent(days_ago: int, clock: str) -> str:
    """A time of day `days_ago` days back, in the examples' `...T00:46:58.771Z` shape."""
    day = (datetime.now(UTC) - timedelta(days=days_ago)).date().isoformat()
    return f"{day}T{clock}Z"


async def create_connection_and_job(api: Api) -> None:
    status, body, _ = await api.post("/connections", CONNECTION_SPEC)
    assert status == 201, body
    assert body["type"] == "push_streaming"
    assert body["name"] == "demo_connection"
    assert body["endpointUrl"] == api.url("/events/demo_connection")
    status, job, _ = await api.post("/jobs", JOB_SPEC)
    assert status == 201, job
    for key in ("type", "target", "createTableIfNotExists", "source", "mappings"):
        assert job[key] == JOB_SPEC[key]
    assert job["desiredExecutionStatus"] == "running"
    assert job["executionStatus"] == "pending"  # the page's sample response
    assert job["health"] == {"status": "ok"}
    assert set(job["createdBy"]) == {"username", "userId"}
    assert job["createdTimestamp"].endswith("Z")
    assert len(job["id"]) == 36


async def test_reference_walkthrough_plain_then_gzip(api_plain: Api) -> None:
    api = api_plain
    await create_connection_and_job(api)
    first, second = recent(2, "00:46:58.771"), recent(1, "04:07:28.781")
    plain = (
        f'{{"event_time":"{first}","user":"GELongstreet","added":36}}\n'
        f'{{"event_time":"{second}","user":"Kolega2357","added":13}}'
    ).encode()
    status, body, _ = await api.events("demo_connection", plain)
    assert (status, body) == (200, "OK")

    third, fourth = recent(4, "00:46:58.771"), recent(3, "04:07:28.781")
    data_json_gz = gzip.compress(
        (
            f'{{"event_time":"{third}","user":"GELongstreet","added":36}}\n'
            f'{{"event_time":"{fourth}","user":"Kolega2357","added":13}}\n'
        ).encode()
    )
    status, _, _ = await api.events("demo_connection", data_json_gz, gzip=True)
    assert status == 200

    assert await api.sql("SELECT COUNT(*) FROM demo_table") == [[4]]
    rows = await api.sql('SELECT __time, "user", added FROM demo_table ORDER BY __time')
    assert rows == [
        [third, "GELongstreet", 36.0],
        [fourth, "Kolega2357", 13.0],
        [first, "GELongstreet", 36.0],
        [second, "Kolega2357", 13.0],
    ]


async def test_query_api_example_answers_objects(api_plain: Api) -> None:
    """The Query API page's body `{"query": "SELECT COUNT(*) FROM ..."}`, no resultFormat:
    a JSON array of JSON objects (`object`, the default)."""
    await create_connection_and_job(api_plain)
    await api_plain.events(
        "demo_connection", f'{{"event_time":"{recent(1, "00:00:00.000")}"}}'.encode()
    )
    status, body, response = await api_plain.post(
        "/query/sql", {"query": "SELECT COUNT(*) AS n FROM demo_table"}
    )
    assert (status, body) == (200, [{"n": 1}])
    assert response.content_type == "application/json"
