"""Connections and Jobs APIs: shapes, name rules, conflicts, spec validation."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import pytest

from .devkit import Api, basic
from .test_reference_examples import JOB_SPEC


def job_spec(**changes: Any) -> dict[str, Any]:
    spec = copy.deepcopy(JOB_SPEC)
    spec["source"]["connectionName"] = "demo_connection"
    spec.update(changes)
    return spec


async def test_connections_create_list_get_delete(api: Api) -> None:
    status, body, _ = await api.post("/connections", {"type": "push_streaming", "name": "c.1-x_y"})
    assert status == 201
    assert body["endpointUrl"].endswith("/v1/projects/test-project/events/c.1-x_y")
    status, body, _ = await api.post("/connections", {"type": "push_streaming", "name": "c.1-x_y"})
    assert status == 409
    status, listing = await api.get("/connections")
    assert status == 200
    assert sorted(c["name"] for c in listing["values"]) == ["c.1-x_y", "demo_connection"]
    status, one = await api.get("/connections/c.1-x_y")
    assert (status, one["type"]) == (200, "push_streaming")
    assert await api.delete("/connections/c.1-x_y") == 204
    assert (await api.get("/connections/c.1-x_y"))[0] == 404
    assert (await api.events("c.1-x_y", b'{"a":1}'))[0] == 404


@pytest.mark.parametrize("name", ["", "a b", "x" * 65, "slash/name", 7])
async def test_connection_names_follow_polaris_rules(api: Api, name: object) -> None:
    status, body, _ = await api.post("/connections", {"type": "push_streaming", "name": name})
    assert status == 400
    assert "message" in body


async def test_catalog_apis_need_the_key(api: Api) -> None:
    assert (await api.get("/connections", key="wrong"))[0] == 401
    assert (await api.get("/jobs", key="wrong"))[0] == 401
    status, _, _ = await api.post("/query/sql", {"query": "SELECT 1"}, key="wrong")
    assert status == 401


async def test_job_is_listed_and_fetched_with_stats(api: Api) -> None:
    status, job, _ = await api.post("/jobs", job_spec())
    assert status == 201, job
    assert job["readFromPoint"] == "latest"
    assert job["executionStatus"] == "pending"  # as on the reference page; then running
    assert job["ingestionStats"] == {"ingested": 0, "filtered": 0, "unparseable": 0}
    status, listing = await api.get("/jobs")
    assert [j["id"] for j in listing["values"]] == [job["id"]]
    assert listing["values"][0]["executionStatus"] == "running"
    status, fetched = await api.get(f"/jobs/{job['id']}")
    assert fetched["id"] == job["id"]
    assert (await api.get("/jobs/00000000-0000-0000-0000-000000000000"))[0] == 404


async def test_one_streaming_job_per_table(api: Api) -> None:
    assert (await api.post("/jobs", job_spec()))[0] == 201
    status, body, _ = await api.post("/jobs", job_spec())
    assert status == 409
    assert "demo_table" in body["message"]


async def test_canceling_a_job_stops_it_and_frees_its_table(api: Api) -> None:
    status, job, _ = await api.post("/jobs", job_spec())
    assert status == 201
    async with api.session.put(
        api.url(f"/jobs/{job['id']}"),
        json={**job, "desiredExecutionStatus": "canceled"},
        headers=basic(),
    ) as response:
        assert response.status == 200
        canceled = await response.json()
    assert canceled["desiredExecutionStatus"] == "canceled"
    assert canceled["executionStatus"] == "canceled"
    now = datetime.now(UTC).isoformat()
    await api.events("demo_connection", b'{"event_time":"%s","user":"x"}' % now.encode())
    await api.server.wait_for_ingestion()
    assert (await api.get(f"/jobs/{job['id']}"))[1]["ingestionStats"]["ingested"] == 0
    status, replacement, _ = await api.post("/jobs", job_spec())
    assert status == 201
    assert replacement["id"] != job["id"]
    async with api.session.put(
        api.url(f"/jobs/{job['id']}"),
        json={"desiredExecutionStatus": "running"},
        headers=basic(),
    ) as response:
        assert response.status == 400


async def test_a_job_spec_can_change_in_place_but_not_its_table(api: Api) -> None:
    status, job, _ = await api.post("/jobs", job_spec())
    assert status == 201
    other_table = job_spec(target={"type": "table", "tableName": "elsewhere"})
    async with api.session.put(
        api.url(f"/jobs/{job['id']}"), json=other_table, headers=basic()
    ) as response:
        assert response.status == 400
        assert "target.tableName cannot change" in (await response.json())["message"]
    lowered = job_spec()
    lowered["mappings"][-1]["expression"] = 'LOWER("user")'
    async with api.session.put(
        api.url(f"/jobs/{job['id']}"), json=lowered, headers=basic()
    ) as response:
        assert response.status == 200
        updated = await response.json()
    assert updated["id"] == job["id"]
    assert updated["mappings"][-1]["expression"] == 'LOWER("user")'
    assert updated["lastUpdatedTimestamp"] > job["lastUpdatedTimestamp"]


def _without_time(spec: dict[str, Any]) -> None:
    spec["mappings"] = spec["mappings"][1:]


def _bad_expression(spec: dict[str, Any]) -> None:
    spec["mappings"][1]["expression"] = 'LOWER("user"'


def _bad_type(spec: dict[str, Any]) -> None:
    spec["source"]["inputSchema"][2]["dataType"] = "decimal"


def _unknown_connection(spec: dict[str, Any]) -> None:
    spec["source"]["connectionName"] = "nope"


def _undeclared_field(spec: dict[str, Any]) -> None:
    spec["mappings"][1]["expression"] = '"nickname"'


def _bad_period(spec: dict[str, Any]) -> None:
    spec["lateMessageRejectionPeriod"] = "30 days"


def _bad_read_point(spec: dict[str, Any]) -> None:
    spec["readFromPoint"] = "middle"


def _string_time(spec: dict[str, Any]) -> None:
    spec["mappings"][0]["expression"] = 'LOWER("event_time")'


def _batch_job(spec: dict[str, Any]) -> None:
    spec["type"] = "batch"


def _no_table(spec: dict[str, Any]) -> None:
    spec["createTableIfNotExists"] = False


@pytest.mark.parametrize(
    ("breaks", "says"),
    [
        (_without_time, "__time"),
        (_bad_expression, "expected ')'"),
        (_bad_type, "dataType"),
        (_unknown_connection, "nope"),
        (_undeclared_field, "nickname"),
        (_bad_period, "lateMessageRejectionPeriod"),
        (_bad_read_point, "readFromPoint"),
        (_string_time, "__time must be a timestamp"),
        (_batch_job, "streaming"),
        (_no_table, "createTableIfNotExists"),
    ],
)
async def test_invalid_job_specs_are_400_with_a_useful_message(
    api: Api, breaks: Any, says: str
) -> None:
    spec = job_spec()
    breaks(spec)
    status, body, _ = await api.post("/jobs", spec)
    assert status == 400, body
    assert says in body["message"]
