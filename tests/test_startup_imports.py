"""What `polaris-agent check` loads for a file-only config: the real command as a child
process, its modules listed at exit. A check (ExecStartPre, ExecReload, an operator at a
prompt) waits for every module it imports: the journal's reader, the running agent's wiring
(`agent.once` and the event loop it needs) and aiohttp are not a check's, unless the config
asks for them (a journald source, `--environment`)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from agent.cli import _parser, once_timeout
from agent.once import DEFAULT_ONCE_TIMEOUT
from tests.support.config import API_KEY, agent_config, merged, render_toml

PROBE = """\
import atexit, runpy, sys
listing = sys.argv[1]
atexit.register(lambda: open(listing, "w").write("\\n".join(sorted(sys.modules))))
sys.argv = ["polaris-agent", *sys.argv[2:]]
runpy.run_module("agent", run_name="__main__", alter_sys=True)
"""
"""Runs `python -m agent ...` as itself, and writes `sys.modules` to a file when it exits."""

NOT_IN_A_FILE_CHECK = (
    "agent.journal",
    "agent.once",
    "agent.runtime",
    "agent.ship",
    "agent.ops.events",
    "aiohttp",
    "asyncio",
    "ssl",
    "structlog",
)


def loaded_by(tmp_path: Path, *args: str) -> tuple[int, list[str]]:
    """The exit code of `polaris-agent *args` and the modules it had loaded."""
    listing = tmp_path / "modules.txt"
    env = dict(os.environ, TEST_POLARIS_KEY=API_KEY)
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(listing), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return done.returncode, listing.read_text().split()


def write_config(tmp_path: Path, **changes: object) -> Path:
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "app.log").write_bytes(b'{"n":1}\n')
    doc = merged(agent_config(tmp_path / "data", "http://127.0.0.1:9", logs), changes)
    path = tmp_path / "agent.toml"
    path.write_text(render_toml(doc))
    return path


def test_checking_a_file_only_config_loads_neither_the_journal_nor_the_running_agent(
    tmp_path: Path,
) -> None:
    config = write_config(tmp_path)
    code, loaded = loaded_by(tmp_path, "check", "--config", str(config))

    assert code == 0
    assert "agent.checkcmd" in loaded  # the probe saw the check
    assert [m for m in loaded if m.startswith(NOT_IN_A_FILE_CHECK)] == []


def test_a_quiet_check_loads_no_encoder(tmp_path: Path) -> None:
    """`check --quiet` (the systemd unit's ExecStartPre and ExecReload) prints no summary, so
    it does not read the first lines of the files to say where their event time comes from."""
    config = write_config(tmp_path)
    code, loaded = loaded_by(tmp_path, "check", "--quiet", "--config", str(config))

    assert code == 0
    assert "agent.checkcmd" in loaded
    assert [m for m in loaded if m.startswith("agent.encode")] == []


def test_checking_a_journald_source_still_asks_for_journalctl(tmp_path: Path) -> None:
    config = write_config(tmp_path, extra_sources=[{"name": "journal", "type": "journald"}])
    _, loaded = loaded_by(tmp_path, "check", "--config", str(config))  # 78 without journalctl

    assert "agent.journal.runner" in loaded


@pytest.mark.parametrize(
    ("given", "seconds"),
    [
        ((), DEFAULT_ONCE_TIMEOUT),
        (("--once-timeout", "90s"), 90.0),
        (("--once-timeout", "0s"), None),
    ],
)
def test_once_timeout_is_the_default_unless_given_and_zero_means_never(
    given: tuple[str, ...], seconds: float | None
) -> None:
    args = _parser().parse_args(["run", "--config", "agent.toml", "--once", *given])

    assert once_timeout(args) == seconds


SECTIONS_BUILT_AT_IMPORT = """\
import agent.config as c
sections = (c.BatchConfig, c.QueueConfig, c.SenderConfig, c.SpoolConfig, c.ApiConfig,
            c.LogConfig, c.PolarisConfig, c.SourceConfig, c.JobConfig, c.Config)
print(" ".join(s.__name__ for s in sections if s.__pydantic_complete__))
"""


def test_importing_the_config_builds_no_validator_of_a_section() -> None:
    """`Config` validates every section with its own validator, built at first use: one
    more per section, at import, was start-up time of every command."""
    done = subprocess.run(
        [sys.executable, "-c", SECTIONS_BUILT_AT_IMPORT], capture_output=True, text=True
    )

    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == []


def test_a_section_left_out_is_the_section_with_its_defaults(tmp_path: Path) -> None:
    from agent.config import ApiConfig, QueueConfig, SpoolConfig, load_config

    left_out = load_config(write_config(tmp_path), {"TEST_POLARIS_KEY": API_KEY})

    assert (left_out.queue, left_out.spool, left_out.api) == (
        QueueConfig(),
        SpoolConfig(),
        ApiConfig(),
    )
    assert left_out.model_dump()["spool"] == SpoolConfig().model_dump()
