"""A source's late/early window follows the job's rejection periods unless it sets its own;
`check` warns when a source's window is wider than the job's."""

from __future__ import annotations

from typing import Any

from agent.config import Config, config_warnings
from agent.parse.settings import needs_parsing

DAY = 86400.0


def config(job: dict[str, Any] | None = None, **source: Any) -> Config:
    doc: dict[str, Any] = {
        "polaris": {
            "organization": "acme",
            "region": "us-east-1",
            "cloud": "aws",
            "project_id": "p",
            "connection": "logs",
            "api_key": "k",
        },
        "sources": [{"name": "app", "include": ["/var/log/app/*.log"], **source}],
    }
    if job is not None:
        doc["job"] = {
            "table": "t",
            "input_schema": [{"name": "timestamp"}],
            "mappings": [{"column": "__time", "expression": 'TIME_PARSE("timestamp")'}],
            **job,
        }
    return Config.model_validate(doc)


def test_windows_default_to_the_job_s_rejection_periods_and_keep_the_fast_path() -> None:
    [source] = config(
        {"late_message_rejection_period": "P90D", "early_message_rejection_period": "PT12H"}
    ).sources
    assert (source.late_window, source.early_window) == (90 * DAY, 12 * 3600.0)
    assert not needs_parsing(source)


def test_without_a_job_period_the_windows_stay_as_they_were() -> None:
    [source] = config({}).sources
    [plain] = config().sources
    assert (source.late_window, source.early_window) == (30 * DAY, 2000 * DAY)
    assert (plain.late_window, plain.early_window) == (30 * DAY, 2000 * DAY)


def test_a_window_set_on_the_source_wins_and_check_warns_when_it_is_wider() -> None:
    loaded = config({"late_message_rejection_period": "P7D"}, late_window="30d")
    assert loaded.sources[0].late_window == 30 * DAY
    keys = [w.key for w in config_warnings(loaded)]
    assert "sources[0].late_window" in keys
    narrower = config({"late_message_rejection_period": "P7D"}, late_window="1d")
    assert "sources[0].late_window" not in [w.key for w in config_warnings(narrower)]
