"""The dev-server fails and answers where Polaris does (issue 14), each from Imply's docs:
a null or unparseable __time fails the job (Timestamp expressions); a new job on a table
and stream keeps the table's reading position (Configure streaming ingestion); the job
status endpoint and the type/healthStatus filters (View and manage jobs by API); the
Query API's resultFormat and header options (Query API); table names (Introduction to
tables)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from agent.devserver import DevServer

from .devkit import Api, basic
from .test_catalog_api import job_spec
from .test_ingestion import event, users


async def put(api: Api, path: str, body: Any) -> tuple[int, Any]:
    async with api.session.put(api.url(path), json=body, headers=basic()) as response:
        return response.status, await response.json()


async def cancel(api: Api, job_id: str) -> None:
    status, body = await put(api, f"/jobs/{job_id}", {"desiredExecutionStatus": "canceled"})
    assert status == 200, body


# --------------------------------------------------------------------------- __time


@pytest.mark.parametrize(
    ("line", "says"),
    [
        (b'{"event_time": null, "user": "nobody"}', "__time is null"),
        (b'{"user": "no-time-field"}', "__time is null"),
        (b'{"event_time": "yesterday-ish", "user": "bad"}', "__time is null"),
    ],
)
async def test_a_null_or_unparseable_time_fails_the_job_with_the_reason(
    api: Api, dev_server: DevServer, line: bytes, says: str
) -> None:
    status, job, _ = await api.post("/jobs", job_spec())
    assert status == 201
    body = b"\n".join([event(2, "before"), line, event(1, "after")])
    assert (await api.events("demo_connection", body))[0] == 200

    assert await users(api) == ["before"]  # what came before the bad event is kept
    _, failed = await api.get(f"/jobs/{job['id']}")
    assert failed["executionStatus"] == "failed"
    assert failed["health"]["status"] == "error"
    [reason] = failed["health"]["issues"]
    assert says in reason
    assert 'TIME_PARSE("event_time")' in reason
    assert line.decode() in reason
    _, listing = await api.get("/jobs?healthStatus=error")
    assert [j["id"] for j in listing["values"]] == [job["id"]]


async def test_a_failed_job_fixed_in_place_resumes_at_the_bad_event(api: Api) -> None:
    _, job, _ = await api.post("/jobs", job_spec())
    body = b"\n".join([event(3, "before"), b'{"user": "timeless"}', event(1, "after")])
    await api.events("demo_connection", body)
    assert await users(api) == ["before"]
    fixed = job_spec()
    fixed["mappings"][0]["expression"] = (
        'COALESCE(TIME_PARSE("event_time"), TIME_PARSE(\'' + _iso_days_ago(2) + "'))"
    )

    status, updated = await put(api, f"/jobs/{job['id']}", fixed)

    assert status == 200, updated
    assert await users(api) == ["before", "timeless", "after"]
    _, again = await api.get(f"/jobs/{job['id']}/status")
    assert again["executionStatus"] == "running"


def _iso_days_ago(days: int) -> str:
    return orjson.loads(event(days, "x"))["event_time"]


# --------------------------------------------------------------------------- kept position


async def test_a_new_job_on_the_same_table_and_connection_keeps_the_tables_position(
    api: Api,
) -> None:
    _, first, _ = await api.post("/jobs", job_spec(readFromPoint="earliest"))
    await api.events("demo_connection", event(3, "one"))
    assert await users(api) == ["one"]
    await cancel(api, first["id"])
    await api.events("demo_connection", event(2, "while-no-job"))

    status, second, _ = await api.post("/jobs", job_spec(readFromPoint="earliest"))
    await api.events("demo_connection", event(1, "after"))

    assert status == 201, second
    assert await users(api) == ["one", "while-no-job", "after"]  # none again, none skipped
    _, stats = await api.get(f"/jobs/{second['id']}")
    assert stats["ingestionStats"]["ingested"] == 2


async def test_latest_on_a_recreated_job_does_not_skip_what_the_table_had_not_read(
    api: Api,
) -> None:
    _, first, _ = await api.post("/jobs", job_spec(readFromPoint="latest"))
    await cancel(api, first["id"])
    await api.events("demo_connection", event(2, "while-no-job"))

    await api.post("/jobs", job_spec(readFromPoint="latest"))

    assert await users(api) == ["while-no-job"]


async def test_a_job_reading_another_connection_starts_from_its_read_from_point(
    api: Api,
) -> None:
    await api.post("/connections", {"type": "push_streaming", "name": "other"})
    _, first, _ = await api.post("/jobs", job_spec(readFromPoint="earliest"))
    await api.events("demo_connection", event(3, "on-demo"))
    assert await users(api) == ["on-demo"]
    await cancel(api, first["id"])
    await api.events("other", event(2, "old-on-other"))
    moved = job_spec(readFromPoint="latest")
    moved["source"]["connectionName"] = "other"

    assert (await api.post("/jobs", moved))[0] == 201
    await api.events("other", event(1, "new-on-other"))

    assert await users(api) == ["on-demo", "new-on-other"]


# --------------------------------------------------------------------------- jobs API


async def test_job_status_endpoint_and_list_filters(api: Api) -> None:
    status, job, _ = await api.post("/jobs", job_spec())
    assert (status, job["executionStatus"]) == (201, "pending")
    await api.server.wait_for_ingestion()

    status, job_status = await api.get(f"/jobs/{job['id']}/status")

    assert status == 200
    assert job_status["executionStatus"] == "running"
    assert job_status["health"] == {"status": "ok"}
    assert job_status["desiredExecutionStatus"] == "running"
    assert (await api.get("/jobs/00000000-0000-0000-0000-000000000000/status"))[0] == 404
    for query, expected in [
        ("?type=streaming", [job["id"]]),
        ("?type=batch", []),
        ("?type=batch&type=streaming", [job["id"]]),
        ("?healthStatus=ok", [job["id"]]),
        ("?healthStatus=error", []),
        ("?healthStatus=ok&type=batch", []),
        ("?healthStatus=ok&healthStatus=error&type=streaming", [job["id"]]),
    ]:
        _, listing = await api.get(f"/jobs{query}")
        assert [j["id"] for j in listing["values"]] == expected, query


# --------------------------------------------------------------------------- query formats


async def query(api: Api, **body: Any) -> tuple[int, bytes, str]:
    async with api.session.post(api.url("/query/sql"), json=body, headers=basic()) as response:
        return response.status, await response.read(), response.headers["Content-Type"]


async def two_rows(api: Api) -> str:
    await api.post("/jobs", job_spec())
    await api.events("demo_connection", b"\n".join([event(2, "ann", 1.5), event(1, "bob", 2)]))
    return 'SELECT "user", added FROM demo_table ORDER BY __time'


async def test_query_answers_objects_by_default(api: Api) -> None:
    status, body, content_type = await query(api, query=await two_rows(api))
    assert (status, content_type) == (200, "application/json")
    assert orjson.loads(body) == [{"user": "ann", "added": 1.5}, {"user": "bob", "added": 2.0}]


@pytest.mark.parametrize(
    ("options", "content_type", "expected"),
    [
        ({"resultFormat": "object"}, "application/json", b'[{"user":"ann","added":1.5},'),
        ({"resultFormat": "array"}, "application/json", b'[["ann",1.5],["bob",2.0]]'),
        (
            {"resultFormat": "array", "header": True},
            "application/json",
            b'[["user","added"],["ann",1.5],["bob",2.0]]',
        ),
        (
            {"resultFormat": "objectLines"},
            "text/plain",
            b'{"user":"ann","added":1.5}\n{"user":"bob","added":2.0}\n\n',
        ),
        ({"resultFormat": "arrayLines"}, "text/plain", b'["ann",1.5]\n["bob",2.0]\n\n'),
        ({"resultFormat": "csv"}, "text/csv", b"ann,1.5\nbob,2.0\n\n"),
        ({"resultFormat": "csv", "header": True}, "text/csv", b"user,added\nann,1.5\nbob,2.0\n\n"),
        (
            {"resultFormat": "object", "header": True},
            "application/json",
            b'[{"user":null,"added":null},{"user":"ann"',
        ),
        (
            {"resultFormat": "object", "header": True, "typesHeader": True},
            "application/json",
            b'[{"user":{"type":"STRING"},"added":{"type":"DOUBLE"}},',
        ),
        (
            {"resultFormat": "array", "header": True, "typesHeader": True, "sqlTypesHeader": True},
            "application/json",
            b'[["user","added"],["STRING","DOUBLE"],["VARCHAR","DOUBLE"],["ann",1.5]',
        ),
    ],
)
async def test_query_result_formats(
    api: Api, options: dict[str, Any], content_type: str, expected: bytes
) -> None:
    status, body, answered_type = await query(api, query=await two_rows(api), **options)
    assert (status, answered_type) == (200, content_type)
    assert body.startswith(expected), body


@pytest.mark.parametrize(
    ("options", "says"),
    [
        ({"resultFormat": "xml"}, "resultFormat"),
        ({"typesHeader": True}, "require header"),
        ({"header": "yes"}, "header"),
    ],
)
async def test_query_options_polaris_would_refuse(
    api: Api, options: dict[str, Any], says: str
) -> None:
    status, body, _ = await api.post("/query/sql", {"query": "SELECT 1", **options})
    assert status == 400
    assert says in body["message"]


# --------------------------------------------------------------------------- table names


async def test_a_table_name_with_spaces_as_in_the_docs(api: Api) -> None:
    status, job, _ = await api.post(
        "/jobs", job_spec(target={"type": "table", "tableName": "Koalas Subset"})
    )
    assert status == 201, job
    await api.events("demo_connection", event(1, "koala"))
    assert await api.sql('SELECT "user" FROM "Koalas Subset"') == [["koala"]]


@pytest.mark.parametrize(
    "name", ["", " leading", "trailing ", ".dot", "a/b", "tab\there", "x" * 256, "nul\x00"]
)
async def test_table_names_polaris_refuses(api: Api, name: str) -> None:
    status, body, _ = await api.post("/jobs", job_spec(target={"type": "table", "tableName": name}))
    assert status == 400
    assert "table" in body["message"]
