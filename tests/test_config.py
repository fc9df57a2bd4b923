"""The TOML config: interpolation, durations, sizes, limits, and every problem named by its path."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from agent.config import POLARIS_MAX_PAYLOAD, Config, ConfigError, load_config

MINIMAL = """
[polaris]
url = "https://example.us-east-1.aws.api.imply.io"
project_id = "12375ffx"
connection = "demo_connection"
api_key = "${POLARIS_API_KEY}"

[[sources]]
name = "app"
include = ["/var/log/app/*.log"]
"""

ENV = {"POLARIS_API_KEY": "pok_test_key"}


def _load(tmp_path: Path, toml: str, environ: dict[str, str] | None = None) -> Config:
    path = tmp_path / "agent.toml"
    path.write_text(textwrap.dedent(toml))
    return load_config(path, ENV if environ is None else environ)


def _problems(tmp_path: Path, toml: str, environ: dict[str, str] | None = None) -> dict[str, str]:
    with pytest.raises(ConfigError) as caught:
        _load(tmp_path, toml, environ)
    return {p.path: p.message for p in caught.value.problems}


def test_the_spec_example_config_loads(tmp_path: Path) -> None:
    config = _load(
        tmp_path,
        """
        data_dir = "/var/lib/polaris-agent"
        [polaris]
        url = "https://example.us-east-1.aws.api.imply.io"
        project_id = "p"
        connection = "demo_connection"
        api_key = "${POLARIS_API_KEY}"
        [[sources]]
        name = "app"
        include = ["/var/log/app/*.log"]
        exclude = ["*.gz"]
        format = "json"
        start_at = "beginning"
        fields = { service = "checkout" }
        time_field = "event_time"
        [batch]
        max_bytes = 1000000
        max_wait = "500ms"
        [sender]
        workers = 4
        compression = "gzip"
        [spool]
        max_size = "1GiB"
        [api]
        listen = "127.0.0.1:8686"
        [job]
        table = "app_logs"
        create_table_if_not_exists = true
        read_from_point = "earliest"
        input_schema = [{ name = "event_time", data_type = "string" },
                        { name = "message", data_type = "string" }]
        mappings = [{ column = "__time", expression = 'TIME_PARSE("event_time")' },
                    { column = "message", expression = '"message"' }]
        """,
    )
    assert config.polaris.api_key.get_secret_value() == "pok_test_key"
    assert config.batch.max_wait == 0.5
    assert config.spool.max_size == 2**30
    assert config.job is not None and config.job.mappings[0].column == "__time"


# -- ${VAR} interpolation --------------------------------------------------------------


def test_var_is_replaced_by_the_environment(tmp_path: Path) -> None:
    config = _load(tmp_path, MINIMAL, {"POLARIS_API_KEY": "from-env"})
    assert config.polaris.api_key.get_secret_value() == "from-env"


def test_default_applies_only_when_the_variable_is_unset(tmp_path: Path) -> None:
    toml = MINIMAL + '[batch]\nmax_wait = "${WAIT:-250ms}"\n'
    assert _load(tmp_path, toml).batch.max_wait == 0.25
    assert _load(tmp_path, toml, {**ENV, "WAIT": "2s"}).batch.max_wait == 2.0


def test_interpolation_works_inside_strings_and_lists_and_feeds_typed_keys(tmp_path: Path) -> None:
    toml = MINIMAL.replace('"/var/log/app/*.log"', '"${LOGS}/*.log"') + (
        '[sender]\nworkers = "${WORKERS:-8}"\n'
    )
    config = _load(tmp_path, toml, {**ENV, "LOGS": "/srv/logs"})
    assert config.sources[0].include == ["/srv/logs/*.log"]
    assert config.sender.workers == 8


def test_double_dollar_is_a_literal_dollar(tmp_path: Path) -> None:
    toml = MINIMAL.replace('"${POLARIS_API_KEY}"', '"pa$$word-$${NOT_A_VAR}"')
    assert _load(tmp_path, toml, {}).polaris.api_key.get_secret_value() == "pa$word-${NOT_A_VAR}"


def test_a_missing_variable_without_default_is_named_with_its_key_path(tmp_path: Path) -> None:
    problems = _problems(tmp_path, MINIMAL, environ={})
    assert problems == {"polaris.api_key": "environment variable POLARIS_API_KEY is not set"}


def test_an_unset_variable_is_reported_once_not_again_as_an_empty_value(tmp_path: Path) -> None:
    toml = MINIMAL.replace('"https://example.us-east-1.aws.api.imply.io"', '"${POLARIS_URL}"')
    assert _problems(tmp_path, toml) == {
        "polaris.url": "environment variable POLARIS_URL is not set"
    }


# -- durations -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [('"500ms"', 0.5), ('"30s"', 30.0), ('"1m30s"', 90.0), ('"1h"', 3600.0), ("2", 2.0)],
)
def test_durations(tmp_path: Path, text: str, seconds: float) -> None:
    assert _load(tmp_path, MINIMAL + f"[batch]\nmax_wait = {text}\n").batch.max_wait == seconds


@pytest.mark.parametrize(
    "text", ['"5 s"', '"30"', '"-1s"', '"1x"', '""', '"s"', "-1", "inf", "nan"]
)
def test_bad_durations_are_rejected_with_their_key(tmp_path: Path, text: str) -> None:
    problems = _problems(tmp_path, MINIMAL + f"[batch]\nmax_wait = {text}\n")
    assert list(problems) == ["batch.max_wait"]


# -- sizes -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "size"),
    [('"1GiB"', 2**30), ('"512KiB"', 512 * 1024), ("1000000", 1_000_000), ('"2MB"', 2_000_000)],
)
def test_sizes(tmp_path: Path, text: str, size: int) -> None:
    assert _load(tmp_path, MINIMAL + f"[spool]\nmax_size = {text}\n").spool.max_size == size


@pytest.mark.parametrize("text", ['"lots"', '"1 GiBs"', '"1e3"', "-1", "1.5"])
def test_bad_sizes_are_rejected_with_their_key(tmp_path: Path, text: str) -> None:
    assert list(_problems(tmp_path, MINIMAL + f"[spool]\nmax_size = {text}\n")) == [
        "spool.max_size"
    ]


def test_batch_max_bytes_may_be_exactly_the_polaris_limit(tmp_path: Path) -> None:
    config = _load(tmp_path, MINIMAL + f"[batch]\nmax_bytes = {POLARIS_MAX_PAYLOAD}\n")
    assert config.batch.max_bytes == 1_000_000


@pytest.mark.parametrize("text", ["1000001", '"1MiB"', '"2MB"'])
def test_batch_max_bytes_above_one_million_is_rejected(tmp_path: Path, text: str) -> None:
    problems = _problems(tmp_path, MINIMAL + f"[batch]\nmax_bytes = {text}\n")
    assert "1000000" in problems["batch.max_bytes"]


# -- unknown keys and problems ---------------------------------------------------------


def test_unknown_keys_are_rejected_with_their_paths(tmp_path: Path) -> None:
    toml = (
        MINIMAL.replace("connection =", "tls_verfy = false\nconnection =")
        + 'formt = "json"\n'  # lands in sources[0]: TOML keys after [[sources]] belong to it
        + '[batch]\nmax_wiat = "1s"\n'
        + "[job]\ntable = 't'\ninput_schema = [{ name = 'a', datatype = 'string' }]\n"
        + "mappings = [{ column = '__time', expression = 'TIME_PARSE(\"a\")' }]\n"
    )
    assert _problems(tmp_path, "datadir = '/tmp'\n" + toml) == {
        "datadir": "unknown key",
        "polaris.tls_verfy": "unknown key",
        "sources[0].formt": "unknown key",
        "batch.max_wiat": "unknown key",
        "job.input_schema[0].datatype": "unknown key",
    }


def test_every_problem_is_reported_in_one_go(tmp_path: Path) -> None:
    toml = MINIMAL.replace('url = "https://example.us-east-1.aws.api.imply.io"\n', "") + (
        '[sender]\nworkers = 0\ncompression = "zstd"\n'
    )
    problems = _problems(tmp_path, toml, environ={})
    assert set(problems) == {
        "polaris.api_key",
        "polaris.url",
        "sender.workers",
        "sender.compression",
    }


def test_missing_sources_and_relative_globs_are_problems(tmp_path: Path) -> None:
    no_sources = MINIMAL.split("[[sources]]")[0]
    assert _problems(tmp_path, no_sources) == {"sources": "required key is missing"}
    relative = MINIMAL.replace("/var/log/app/*.log", "logs/*.log")
    assert list(_problems(tmp_path, relative)) == ["sources[0].include"]


def test_unreadable_and_malformed_files_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.toml", ENV)
    with pytest.raises(ConfigError, match="not valid TOML"):
        _load(tmp_path, "[polaris\n")


# -- [job] -----------------------------------------------------------------------------

JOB = """
[job]
table = "app_logs"
input_schema = [{ name = "event_time" }, { name = "message" }]
mappings = [{ column = "__time", expression = 'TIME_PARSE("event_time")' },
            { column = "message", expression = '"message"' }]
"""


def test_job_defaults(tmp_path: Path) -> None:
    job = _load(tmp_path, MINIMAL + JOB).job
    assert job is not None
    assert job.read_from_point == "latest"
    assert job.create_table_if_not_exists is True
    assert [f.data_type for f in job.input_schema] == ["string", "string"]


def test_job_must_map_time(tmp_path: Path) -> None:
    toml = MINIMAL + JOB.replace('"__time"', '"time"')
    assert _problems(tmp_path, toml) == {"job": "mappings must map the __time column"}


def test_job_rejection_periods_are_iso_8601(tmp_path: Path) -> None:
    good = MINIMAL + JOB + 'late_message_rejection_period = "P90D"\n'
    assert _load(tmp_path, good).job is not None
    bad = MINIMAL + JOB + 'early_message_rejection_period = "90 days"\n'
    assert list(_problems(tmp_path, bad)) == ["job.early_message_rejection_period"]


def test_job_columns_are_unique(tmp_path: Path) -> None:
    toml = MINIMAL + JOB.replace('column = "message"', 'column = "__time"')
    assert _problems(tmp_path, toml) == {"job.mappings": "names must be unique; repeated: __time"}


@pytest.mark.parametrize("name", ["example.toml", "demo.toml"])
def test_the_shipped_example_configs_are_valid(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POLARIS_PROJECT_ID", "p")
    monkeypatch.setenv("POLARIS_API_KEY", "pok_example")
    monkeypatch.setenv("DEMO_DIR", "/tmp/demo")
    config = load_config(Path(__file__).resolve().parent.parent / "config" / name)
    assert config.sources
