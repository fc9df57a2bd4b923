"""`check` says little by default, nothing with `--quiet`, everything with `--print`, and
with `--environment` checks this machine and the endpoint (against the dev-server)."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from agent.devserver import DevServer
from tests.support import endpoint
from tests.support.config import API_KEY, CONNECTION, agent_config, merged, render_toml

# The fixtures these tests use, from the shared support package.
dev_server = endpoint.dev_server
log_dir = endpoint.log_dir


async def check(config: Path, *options: str, key: str = API_KEY) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "agent",
        "check",
        *options,
        "--config",
        str(config),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "TEST_POLARIS_KEY": key},
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


def write(tmp_path: Path, url: str, log_dir: Path, **changes: object) -> Path:
    config = tmp_path / "agent.toml"
    doc = merged(agent_config(tmp_path / "data", url, log_dir), changes)
    config.write_text(render_toml(doc))
    return config


async def test_default_is_a_short_summary_and_quiet_prints_nothing(
    tmp_path: Path, dev_server: DevServer, log_dir: Path
) -> None:
    (log_dir / "app.log").touch()
    config = write(tmp_path, dev_server.url, log_dir)

    code, out, err = await check(config)
    assert code == 0, err
    assert out.startswith(f"config ok: {config}")
    assert len(out.splitlines()) <= 8
    assert API_KEY not in out + err

    code, out, err = await check(config, "--quiet")
    assert (code, out, err) == (0, "", "")


async def test_quiet_still_says_warnings(
    tmp_path: Path, dev_server: DevServer, log_dir: Path
) -> None:
    config = write(tmp_path, dev_server.url, log_dir)  # the glob matches nothing yet
    code, out, err = await check(config, "--quiet")
    assert code == 0
    assert out == ""
    assert "warning: sources[0].include[0]" in err


async def test_environment_passes_when_files_data_dir_and_key_are_good(
    tmp_path: Path, dev_server: DevServer, log_dir: Path
) -> None:
    (log_dir / "app.log").touch()
    config = write(tmp_path, dev_server.url, log_dir)

    code, out, err = await check(config, "--environment")

    assert code == 0, out + err
    assert "matches 1 file(s)" in out
    assert f"data_dir {tmp_path / 'data'}: does not exist yet" in out
    assert f"connection {CONNECTION}: reachable, key accepted, connection exists" in out
    assert [r.status for r in dev_server.requests] == []  # no event was sent


async def test_environment_fails_on_a_refused_key_an_empty_glob_and_a_missing_connection(
    tmp_path: Path, dev_server: DevServer, log_dir: Path
) -> None:
    config = write(tmp_path, dev_server.url, log_dir, polaris={"connection": "nowhere"})

    code, out, err = await check(config, "--environment", "--quiet", key="wrong-key-0123456789")
    assert code == 1
    assert out == ""
    assert "FAILED  source app include" in err and "matches no file" in err
    assert "the key is refused (401)" in err

    code, _, err = await check(config, "--environment", "--quiet")
    assert code == 1
    assert "connection nowhere: does not exist (404)" in err
