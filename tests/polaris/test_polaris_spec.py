"""The config's [job] section becomes the reference page's job spec, and differences read well."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from agent.config import JobConfig
from agent.polaris.api import polaris_message
from agent.polaris.provision import Difference, diff_job, job_spec


def _job(**overrides: Any) -> JobConfig:
    fields: dict[str, Any] = {
        "table": "demo_table",
        "create_table_if_not_exists": True,
        "read_from_point": "earliest",
        "input_schema": [
            {"name": "event_time", "data_type": "string"},
            {"name": "user", "data_type": "string"},
            {"name": "added", "data_type": "float"},
        ],
        "mappings": [
            {"column": "__time", "expression": 'TIME_PARSE("event_time")'},
            {"column": "user", "expression": '"user"'},
            {"column": "added", "expression": '"added"'},
        ],
    }
    fields.update(overrides)
    return JobConfig.model_validate(fields)


def test_snake_case_config_becomes_the_reference_pages_camel_case_spec() -> None:
    # The complete example of the reference page, plus readFromPoint.
    assert job_spec(_job(), "demo_connection") == {
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
        "readFromPoint": "earliest",
    }


def test_rejection_periods_are_sent_only_when_configured() -> None:
    spec = job_spec(_job(late_message_rejection_period="P90D"), "c")
    assert spec["lateMessageRejectionPeriod"] == "P90D"
    assert "earlyMessageRejectionPeriod" not in spec


def _polaris_answer(spec: dict[str, Any]) -> dict[str, Any]:
    """What Polaris answers for a created job: the spec plus its own bookkeeping fields."""
    answer = copy.deepcopy(spec)
    answer.update(
        id="0b5c1d3e-0000-4000-8000-000000000000",
        desiredExecutionStatus="running",
        executionStatus="pending",
        health={"status": "ok"},
        createdTimestamp="2022-08-01T21:19:48.783889685Z",
    )
    answer["source"]["inputSchema"] = [
        {"dataType": f["dataType"], "name": f["name"]} for f in spec["source"]["inputSchema"]
    ]
    return answer


def test_a_job_polaris_echoes_back_matches_its_config() -> None:
    spec = job_spec(_job(), "demo_connection")
    assert diff_job(spec, _polaris_answer(spec)) == []


def test_order_of_input_fields_and_mappings_does_not_matter() -> None:
    spec = job_spec(_job(), "demo_connection")
    answer = _polaris_answer(spec)
    answer["mappings"].reverse()
    answer["source"]["inputSchema"].reverse()
    assert diff_job(spec, answer) == []


def test_polaris_defaults_in_format_settings_and_a_missing_read_point_are_no_difference() -> None:
    spec = job_spec(_job(), "demo_connection")
    answer = _polaris_answer(spec)
    answer["source"]["formatSettings"]["flattenSpec"] = {}
    del answer["readFromPoint"]
    assert diff_job(spec, answer) == []


def test_a_changed_expression_is_named_by_its_config_index() -> None:
    existing = _polaris_answer(job_spec(_job(), "demo_connection"))
    wanted = job_spec(
        _job(
            mappings=[
                {"column": "__time", "expression": 'TIME_PARSE("event_time")'},
                {"column": "user", "expression": 'LOWER("user")'},
                {"column": "added", "expression": '"added"'},
            ]
        ),
        "demo_connection",
    )
    differences = diff_job(wanted, existing)
    assert [str(d) for d in differences] == [
        "mappings[1].expression: '\"user\"' -> 'LOWER(\"user\")'"
    ]


def test_added_removed_and_retyped_fields_are_all_reported() -> None:
    existing = _polaris_answer(job_spec(_job(), "demo_connection"))
    wanted = job_spec(
        _job(
            create_table_if_not_exists=False,
            input_schema=[
                {"name": "event_time", "data_type": "string"},
                {"name": "user", "data_type": "string"},
                {"name": "added", "data_type": "long"},
                {"name": "page", "data_type": "string"},
            ],
            mappings=[
                {"column": "__time", "expression": 'TIME_PARSE("event_time")'},
                {"column": "user", "expression": '"user"'},
            ],
        ),
        "other_connection",
    )
    assert [str(d) for d in diff_job(wanted, existing)] == [
        "source.connectionName: 'demo_connection' -> 'other_connection'",
        "source.inputSchema[2].dataType: 'float' -> 'long'",
        'source.inputSchema[3]: (absent) -> {"name":"page","dataType":"string"}',
        'mappings[columnName=\'added\']: {"columnName":"added","expression":"\\"added\\""}'
        " -> (absent)",
        "createTableIfNotExists: true -> false",
    ]


def test_a_batch_job_for_the_table_differs_in_type() -> None:
    spec = job_spec(_job(), "c")
    answer = _polaris_answer(spec)
    answer["type"] = "batch"
    assert diff_job(spec, answer) == [Difference("type", "batch", "streaming")]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            '{"error": {"code": "InvalidArgument", "message": "Invalid job spec",'
            ' "details": [{"code": "x", "message": "unknown column  type"}]}}',
            "Invalid job spec unknown column type",
        ),
        ('{"message": "table name too long"}', "table name too long"),
        ('{"error": "bad\\nthing"}', "bad thing"),
        ("plain text\nbody", "plain text body"),
    ],
)
def test_polaris_error_bodies_become_one_line(body: str, message: str) -> None:
    assert polaris_message(body) == message
