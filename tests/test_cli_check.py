"""`polaris-agent check`: one run names every bad key; a good config prints redacted, exits 0."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from agent.checkcmd import check_main, holds_literal_secret

SECRET = "pok_Zq8sLw3XvN0tA7kR"

GOOD = """
[polaris]
url = "https://example.us-east-1.aws.api.imply.io"
project_id = "12375ffx"
connection = "demo_connection"
api_key = "${POLARIS_API_KEY}"

[[sources]]
name = "app"
include = ["/var/log/app/*.log"]

[batch]
max_wait = "500ms"
"""


def _check(config: Path, env: dict[str, str], *options: str) -> subprocess.CompletedProcess[str]:
    """Run the real CLI, as an operator would."""
    return subprocess.run(
        [sys.executable, "-m", "agent", "check", *options, "--config", str(config)],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=60,
        check=False,
    )


def _write(tmp_path: Path, text: str, mode: int = 0o600) -> Path:
    """The config, its glob pointed at a log file that exists (else `check` warns)."""
    (tmp_path / "app.log").touch()
    path = tmp_path / "agent.toml"
    path.write_text(text.replace("/var/log/app/*.log", f"{tmp_path}/*.log"))
    path.chmod(mode)
    return path


def test_typo_missing_url_and_bad_duration_are_all_named_in_one_run(tmp_path: Path) -> None:
    config = _write(
        tmp_path,
        GOOD.replace('url = "https://example.us-east-1.aws.api.imply.io"\n', "")
        .replace("connection =", "conection_name = 'x'\nconnection =")
        .replace('"500ms"', '"half a second"'),
    )
    result = _check(config, {"POLARIS_API_KEY": SECRET})
    assert result.returncode == 78
    assert "polaris.conection_name: unknown key" in result.stderr
    assert "polaris.url: required key is missing" in result.stderr
    assert "batch.max_wait: invalid duration 'half a second'" in result.stderr
    assert result.stdout == ""


def test_good_config_prints_resolved_and_redacted_and_exits_0(tmp_path: Path) -> None:
    # `--print` since issue 15: by default `check` says a short summary, not the whole config.
    result = _check(_write(tmp_path, GOOD), {"POLARIS_API_KEY": SECRET}, "--print")
    assert result.returncode == 0, result.stderr
    resolved = orjson.loads(result.stdout)
    assert resolved["polaris"]["api_key"] == "**********"
    assert resolved["batch"]["max_wait"] == 0.5
    assert resolved["sources"][0]["include"] == [f"{tmp_path}/*.log"]
    assert SECRET not in result.stdout + result.stderr


def test_a_literal_key_is_redacted_too(tmp_path: Path) -> None:
    config = _write(tmp_path, GOOD.replace("${POLARIS_API_KEY}", SECRET))
    result = _check(config, {})
    assert result.returncode == 0, result.stderr
    assert SECRET not in result.stdout + result.stderr


def test_a_missing_key_variable_is_named_without_leaking_anything(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "POLARIS_API_KEY"}
    result = subprocess.run(
        [sys.executable, "-m", "agent", "check", "--config", str(_write(tmp_path, GOOD))],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert result.returncode == 78
    assert "polaris.api_key: environment variable POLARIS_API_KEY is not set" in result.stderr


# The warning is implemented in agent.checkcmd; these call it the way the CLI does.


def test_literal_key_in_a_group_readable_file_is_warned_about(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _write(tmp_path, GOOD.replace("${POLARIS_API_KEY}", SECRET), mode=0o644)
    assert check_main(config) == 0
    out, err = capsys.readouterr()
    assert "warning: polaris.api_key: " in err and "literal key" in err and "0644" in err
    assert SECRET not in out + err


@pytest.mark.parametrize(
    ("api_key", "mode"),
    [
        (SECRET, 0o600),  # literal, but only the owner can read it
        ("${POLARIS_API_KEY}", 0o644),  # readable, but holds no key
    ],
)
def test_no_warning_when_the_key_is_private_or_not_in_the_file(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    api_key: str,
    mode: int,
) -> None:
    monkeypatch.setenv("POLARIS_API_KEY", SECRET)
    assert check_main(_write(tmp_path, GOOD.replace("${POLARIS_API_KEY}", api_key), mode)) == 0
    assert "warning:" not in capsys.readouterr().err


def test_turning_tls_verification_off_is_warned_about(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("POLARIS_API_KEY", SECRET)
    config = _write(tmp_path, GOOD.replace("connection =", "tls_verify = false\nconnection ="))
    assert check_main(config) == 0
    assert "warning: polaris.tls_verify: false" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("value", "literal"),
    [
        ("pok_abc", True),
        ("${POLARIS_API_KEY}", False),
        ("${POLARIS_API_KEY:-}", False),
        ("${POLARIS_API_KEY:-pok_abc}", True),  # the default is a key written in the file
        ("pok_${SUFFIX}", True),
    ],
)
def test_what_counts_as_a_literal_key(value: str, literal: bool) -> None:
    assert holds_literal_secret(value) is literal
