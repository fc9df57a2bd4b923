"""`polaris-agent setup` against the local dev-server: create, re-run, differ, fail clearly."""

from __future__ import annotations

import socket
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiohttp import web
from polaris_testkit import (
    API_KEY,
    CONNECTION,
    MAPPINGS,
    PROJECT,
    TABLE,
    Outcome,
    Polaris,
    run_setup_cli,
    write_config,
)
from test_polaris_api import stand_in_polaris

from agent.config import load_config
from agent.polaris.api import PolarisApi
from agent.polaris.provision import (
    EXIT_CONFIG,
    EXIT_DIFFERS,
    EXIT_FAILED,
    EXIT_OK,
    JobStep,
    make_plan,
    provision,
)


async def run_setup(config: Path, capsys: pytest.CaptureFixture[str], **kw: bool) -> Outcome:
    """`setup` in-process (same code path as the CLI after argument parsing)."""
    code = await provision(
        load_config(config), replace=kw.get("replace", False), dry_run=kw.get("dry_run", False)
    )
    out, err = capsys.readouterr()
    return Outcome(code, out, err)


async def test_setup_creates_the_connection_and_the_job(polaris: Polaris, tmp_path: Path) -> None:
    result = await run_setup_cli(write_config(tmp_path, polaris.url))

    assert result.code == EXIT_OK, result.stderr
    assert f"connection {CONNECTION}: created" in result.stdout
    [job] = await polaris.jobs_for(TABLE)
    assert f"job for table {TABLE}: created, id {job['id']}" in result.stdout
    connection = await polaris.get(f"/connections/{CONNECTION}")
    assert connection["type"] == "push_streaming"
    assert job["type"] == "streaming"
    assert job["source"]["connectionName"] == CONNECTION
    assert job["source"]["formatSettings"] == {"format": "nd-json"}
    assert [(m["columnName"], m["expression"]) for m in job["mappings"]] == MAPPINGS


async def test_setup_twice_changes_nothing_the_second_time(
    polaris: Polaris, tmp_path: Path
) -> None:
    config = write_config(tmp_path, polaris.url)
    first = await run_setup_cli(config)
    assert first.code == EXIT_OK, first.stderr
    [job_before] = await polaris.jobs_for(TABLE)

    second = await run_setup_cli(config)

    assert second.code == EXIT_OK, second.stderr
    assert second.stdout == (
        f"connection {CONNECTION}: exists\njob for table {TABLE}: exists, matches\n"
    )
    assert await polaris.jobs_for(TABLE) == [job_before]


async def test_a_differing_mapping_is_shown_and_nothing_changes(
    polaris: Polaris, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (await run_setup(write_config(tmp_path, polaris.url), capsys)).code == EXIT_OK
    [job_before] = await polaris.jobs_for(TABLE)
    changed = [MAPPINGS[0], ("message", 'LOWER("message")'), MAPPINGS[2]]

    result = await run_setup(write_config(tmp_path, polaris.url, mappings=changed), capsys)

    assert result.code == EXIT_DIFFERS
    assert f"job for table {TABLE}: exists, differs from the config" in result.stdout
    assert "  mappings[1].expression: '\"message\"' -> 'LOWER(\"message\")'\n" in result.stdout
    assert "nothing changed" in result.stderr
    assert await polaris.jobs_for(TABLE) == [job_before]


async def test_apply_updates_the_job_in_place_without_reading_the_stream_again(
    polaris: Polaris, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    await run_setup(write_config(tmp_path, polaris.url), capsys)
    [job_before] = await polaris.jobs_for(TABLE)
    await polaris.push({"event_time": now_iso(), "message": "before", "level": "info"})
    assert await polaris.sql(f"SELECT level FROM {TABLE}") == [["info"]]
    changed = [*MAPPINGS[:2], ("level", 'UPPER("level")')]

    result = await run_setup(
        write_config(tmp_path, polaris.url, mappings=changed), capsys, replace=True
    )
    await polaris.push({"event_time": now_iso(), "message": "after", "level": "info"})

    assert result.code == EXIT_OK, result.stderr
    assert "plan: update job" in result.stdout
    assert "  mappings[2].expression: '\"level\"' -> 'UPPER(\"level\")'\n" in result.stdout
    assert f"job for table {TABLE}: updated in place, id {job_before['id']}" in result.stdout
    [job_after] = await polaris.jobs_for(TABLE)
    assert job_after["id"] == job_before["id"]
    assert job_after["mappings"][2]["expression"] == 'UPPER("level")'
    rows = await polaris.sql(f"SELECT message, level FROM {TABLE} ORDER BY message DESC")
    assert rows == [["before", "info"], ["after", "INFO"]]  # the first event was not re-read
    again = await run_setup(write_config(tmp_path, polaris.url, mappings=changed), capsys)
    assert again.code == EXIT_OK
    assert f"job for table {TABLE}: exists, matches" in again.stdout


async def test_apply_refuses_to_move_a_job_to_another_connection(
    polaris: Polaris, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    await run_setup(write_config(tmp_path, polaris.url), capsys)
    [job_before] = await polaris.jobs_for(TABLE)
    moved = write_config(tmp_path, polaris.url)
    moved.write_text(moved.read_text().replace(f'"{CONNECTION}"', '"other_connection"'))

    result = await run_setup(moved, capsys, replace=True)

    assert result.code == EXIT_DIFFERS
    assert "connection other_connection: missing, will be created" in result.stdout
    assert "source.connectionName: 'demo_connection' -> 'other_connection'" in result.stdout
    assert "source.connectionName cannot change on an existing job" in result.stderr
    assert await polaris.jobs_for(TABLE) == [job_before]
    assert await polaris.connection_names() == [CONNECTION]  # planned first: nothing made


def write_config_for(url: str, directory: Path) -> Path:
    """A config for project p1 and connection c (the stand-in's names)."""
    path = write_config(directory, url)
    text = path.read_text().replace(PROJECT, "p1").replace(f'"{CONNECTION}"', '"c"')
    path.write_text(text)
    return path


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


async def test_a_wrong_key_fails_with_one_line_and_never_shows_the_key(
    polaris: Polaris, tmp_path: Path
) -> None:
    wrong_key = "pok_wrongKey_0c4b7d"
    result = await run_setup_cli(write_config(tmp_path, polaris.url, api_key=wrong_key))

    assert result.code == EXIT_FAILED
    assert result.stderr == "error: authentication failed: check polaris.api_key\n"
    assert wrong_key not in result.stdout + result.stderr
    assert await polaris.jobs_for(TABLE) == []


async def test_a_spec_polaris_rejects_shows_polaris_message(
    polaris: Polaris, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = [MAPPINGS[0], ("message", 'LOWER("message"')]

    result = await run_setup(write_config(tmp_path, polaris.url, mappings=broken), capsys)

    assert result.code == EXIT_FAILED
    assert result.stderr.startswith(f"error: Polaris rejected POST {polaris.url}/v1/projects/")
    assert "(400): " in result.stderr
    assert result.stderr.count("\n") == 1
    assert API_KEY not in result.stdout + result.stderr


async def test_an_unreachable_url_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}"

    result = await run_setup(write_config(tmp_path, url), capsys)

    assert result.code == EXIT_FAILED
    assert result.stderr == (
        f"error: cannot reach Polaris at {url}: connection refused by 127.0.0.1:{port}\n"
    )
    assert API_KEY not in result.stdout + result.stderr


async def test_a_host_that_does_not_resolve_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = "https://polaris-agent-test.invalid"  # https: plaintext to a remote host is refused

    result = await run_setup(write_config(tmp_path, url), capsys)

    assert result.code == EXIT_FAILED
    assert result.stderr.startswith(f"error: cannot reach Polaris at {url}: ")
    assert API_KEY not in result.stdout + result.stderr


async def test_a_config_without_a_job_section_is_a_config_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    result = await run_setup(write_config(tmp_path, "http://127.0.0.1:1", job=False), capsys)

    assert result.code == EXIT_CONFIG
    assert "job: required key is missing" in result.stderr


async def test_turning_tls_verification_off_is_warned_about(
    polaris: Polaris, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, polaris.url, polaris_extra="tls_verify = false")

    result = await run_setup(config, capsys)

    assert result.code == EXIT_OK
    assert "warning: polaris.tls_verify = false: TLS certificates are NOT verified" in (
        result.stderr
    )


# --------------------------------------------------------------------------- issue 14


async def test_read_from_point_is_not_compared_on_an_existing_job(
    polaris: Polaris, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    await run_setup(write_config(tmp_path, polaris.url, read_from_point="earliest"), capsys)

    result = await run_setup(write_config(tmp_path, polaris.url, read_from_point="latest"), capsys)

    assert result.code == EXIT_OK, result.stdout + result.stderr
    assert f"job for table {TABLE}: exists, matches" in result.stdout


async def test_dry_run_prints_the_plan_and_creates_nothing(
    polaris: Polaris, tmp_path: Path
) -> None:
    result = await run_setup_cli(write_config(tmp_path, polaris.url), "--dry-run")

    assert result.code == EXIT_DIFFERS, result.stderr
    assert result.stdout == (
        f"connection {CONNECTION}: missing, will be created\n"
        f"job for table {TABLE}: missing, will be created reading {CONNECTION} from"
        " readFromPoint 'earliest', or from the table's kept position if it read this"
        " connection before\n"
    )
    assert result.stderr == "dry run: nothing changed\n"
    assert await polaris.connection_names() == []
    assert await polaris.jobs_for(TABLE) == []


async def test_dry_run_with_apply_shows_the_change_and_makes_none(
    polaris: Polaris, tmp_path: Path
) -> None:
    await run_setup_cli(write_config(tmp_path, polaris.url))
    [job_before] = await polaris.jobs_for(TABLE)
    changed = [*MAPPINGS[:2], ("level", 'UPPER("level")')]
    config = write_config(tmp_path, polaris.url, mappings=changed)

    result = await run_setup_cli(config, "--apply", "--dry-run")

    assert result.code == EXIT_DIFFERS
    assert "  mappings[2].expression: '\"level\"' -> 'UPPER(\"level\")'\n" in result.stdout
    assert f"  plan: update job {job_before['id']} in place; if Polaris refuses" in result.stdout
    assert "dry run: nothing changed" in result.stderr
    assert await polaris.jobs_for(TABLE) == [job_before]


async def test_apply_recreates_a_job_polaris_will_not_update_keeping_its_position(
    polaris_without_updates: Polaris, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The job is canceled and created again with readFromPoint earliest: the table keeps its
    position on the connection, so the first event is not read again and none is skipped."""
    polaris = polaris_without_updates
    await run_setup(write_config(tmp_path, polaris.url), capsys)
    [old_job] = await polaris.jobs_for(TABLE)
    await polaris.push({"event_time": now_iso(), "message": "before", "level": "info"})
    assert await polaris.sql(f"SELECT level FROM {TABLE}") == [["info"]]
    changed = [*MAPPINGS[:2], ("level", 'UPPER("level")')]

    result = await run_setup(
        write_config(tmp_path, polaris.url, mappings=changed), capsys, replace=True
    )
    await polaris.push({"event_time": now_iso(), "message": "after", "level": "info"})

    assert result.code == EXIT_OK, result.stderr
    assert f"job for table {TABLE}: Polaris refused the update in place (" in result.stdout
    assert f"job for table {TABLE}: canceled job {old_job['id']}" in result.stdout
    [new_job] = await polaris.jobs_for(TABLE, live=True)
    assert new_job["id"] != old_job["id"]
    assert f"recreated, id {new_job['id']} (was {old_job['id']})" in result.stdout
    assert new_job["mappings"][2]["expression"] == 'UPPER("level")'
    rows = await polaris.sql(f"SELECT message, level FROM {TABLE} ORDER BY __time")
    assert rows == [["before", "info"], ["after", "INFO"]]  # once each, in order
    again = await run_setup(write_config(tmp_path, polaris.url, mappings=changed), capsys)
    assert (again.code, again.stdout.splitlines()[-1]) == (
        EXIT_OK,
        f"job for table {TABLE}: exists, matches",
    )


async def test_a_new_spec_polaris_refuses_on_recreate_puts_the_old_job_back(
    polaris_without_updates: Polaris, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    polaris = polaris_without_updates
    await run_setup(write_config(tmp_path, polaris.url), capsys)
    await polaris.push({"event_time": now_iso(), "message": "before", "level": "info"})
    assert await polaris.sql(f"SELECT message FROM {TABLE}") == [["before"]]
    broken = [*MAPPINGS[:2], ("level", 'UPPER("level"')]

    result = await run_setup(
        write_config(tmp_path, polaris.url, mappings=broken), capsys, replace=True
    )
    await polaris.push({"event_time": now_iso(), "message": "after", "level": "info"})

    assert result.code == EXIT_FAILED
    assert "error: Polaris refused the new job" in result.stderr
    [restored] = await polaris.jobs_for(TABLE, live=True)
    assert f"restored the previous spec, id {restored['id']}" in result.stdout
    assert [(m["columnName"], m["expression"]) for m in restored["mappings"]] == MAPPINGS
    rows = await polaris.sql(f"SELECT message FROM {TABLE} ORDER BY __time")
    assert rows == [["before"], ["after"]]


async def test_planning_lists_streaming_jobs_only_and_only_reads(tmp_path: Path) -> None:
    """Against a stand-in that records requests: the plan is made of GETs, and the jobs are
    asked for with `?type=streaming` (docs.imply.io/polaris/api-manage-job)."""
    seen: list[str] = []

    async def handler(request: web.Request) -> web.Response:
        seen.append(f"{request.method} {request.path_qs}")
        if request.path.endswith("/connections/c"):
            return web.json_response({"name": "c", "type": "push_streaming"})
        return web.json_response({"values": []})

    async with stand_in_polaris(handler) as url:
        config = load_config(write_config_for(url, tmp_path))
        assert config.job is not None
        async with PolarisApi.open(config.polaris) as api:
            plan = await make_plan(api, config.job, "c")

    assert plan.job_step is JobStep.CREATE
    assert not plan.create_connection
    assert seen == [
        "GET /v1/projects/p1/connections/c",
        "GET /v1/projects/p1/jobs?type=streaming",
    ]
