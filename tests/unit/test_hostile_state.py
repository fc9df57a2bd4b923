"""Hostile state (issue 12): what the agent writes must land in its own files, never through a
link someone planted, and never in a directory others can write.

Each test plants the link or the mode an attacker (or a careless `chmod -R 777`) would, and
checks that a victim file outside `data_dir` is untouched and the agent says what it refused.
The tests run as root, who bypasses file permissions: where a permission error is needed, it is
injected at the one place the spool opens files (see `test_an_unreadable_spool_file_...`).
"""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import orjson
import pytest
import structlog

from agent.records import Origin
from agent.ship.spool import Spool, SpoolEntry
from agent.state.checkpoint import CheckpointStore, FileCheckpoint
from agent.state.deadletter import DeadLetters
from agent.state.files import UnsafeState, private_dir, write_atomically

VICTIM_TEXT = b"root:secret:do-not-touch\n"


@pytest.fixture
def victim(tmp_path: Path) -> Path:
    """A file outside data_dir that an attacker wants the agent to overwrite."""
    path = tmp_path / "victim"
    path.write_bytes(VICTIM_TEXT)
    return path


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return private_dir(tmp_path / "data")


def checkpoint(offset: int) -> FileCheckpoint:
    return FileCheckpoint("abc", 10, offset, "/var/log/app.log", 1, 2, 0.0)


def entry(n: int) -> SpoolEntry:
    return SpoolEntry("logs", b'{"n":%d}\n' % n, 1, (Origin("/var/log/app.log", [n]),))


# -- defect 1: writes never follow a link ------------------------------------------------------


def test_a_symlinked_temp_file_is_replaced_not_written_through(
    data_dir: Path, victim: Path
) -> None:
    target = data_dir / "checkpoints.json"
    (data_dir / ".checkpoints.json.tmp").symlink_to(victim)

    write_atomically(target, b'{"new": true}')

    assert victim.read_bytes() == VICTIM_TEXT
    assert target.read_bytes() == b'{"new": true}'
    assert not target.is_symlink()
    assert not (data_dir / ".checkpoints.json.tmp").exists()


def test_checkpoint_save_never_writes_through_planted_links(data_dir: Path, victim: Path) -> None:
    store = CheckpointStore(data_dir / "checkpoints.json")
    (data_dir / ".checkpoints.json.tmp").symlink_to(victim)
    (data_dir / "checkpoints.json").symlink_to(victim)

    store.save([checkpoint(42)])
    store.save([checkpoint(43)])

    assert victim.read_bytes() == VICTIM_TEXT
    assert [c.offset for c in store.load()] == [43]
    assert oct((data_dir / "checkpoints.json").stat().st_mode & 0o777) == oct(0o600)


def test_a_symlinked_checkpoint_is_refused_at_load_not_read(data_dir: Path, tmp_path: Path) -> None:
    decoy = tmp_path / "decoy.json"  # a valid checkpoint elsewhere: following it would use it
    decoy.write_bytes(orjson.dumps({"version": 1, "files": [asdict(checkpoint(7))]}))
    (data_dir / "checkpoints.json").symlink_to(decoy)

    with pytest.raises(UnsafeState, match=r"checkpoints\.json"):
        CheckpointStore(data_dir / "checkpoints.json").load()


@pytest.mark.parametrize("link", ["symlink", "hardlink"])
def test_dead_letters_never_append_through_a_planted_link(
    data_dir: Path, victim: Path, link: str
) -> None:
    letters = DeadLetters(data_dir / "dead-letter")
    private_dir(letters.directory)
    today = letters.today_path()
    if link == "symlink":
        today.symlink_to(victim)
    else:
        os.link(victim, today)

    with structlog.testing.capture_logs() as logs:
        letters.write("too_large", "/var/log/app.log", 0, b"x" * 10)
        letters.close()

    assert victim.read_bytes() == VICTIM_TEXT
    records = [orjson.loads(x) for x in today.read_bytes().splitlines()]
    assert [r["reason"] for r in records] == ["too_large"]
    assert not today.is_symlink()
    assert today.stat().st_nlink == 1
    moved = [e for e in logs if e["event"] == "state_file_moved_aside"]
    assert len(moved) == 1 and moved[0]["path"] == str(today)


async def test_a_symlink_posing_as_a_spool_file_is_quarantined_not_read(
    data_dir: Path, tmp_path: Path
) -> None:
    spool = Spool(data_dir / "spool", 1 << 20, "block")
    assert await spool.put(entry(1))
    real = next((data_dir / "spool").glob("*.spool"))
    elsewhere = tmp_path / "elsewhere.spool"
    elsewhere.write_bytes(real.read_bytes())
    planted = data_dir / "spool" / "00000000000000000000-1-00000000.spool"
    planted.symlink_to(elsewhere)

    reopened = Spool(data_dir / "spool", 1 << 20, "block")
    first = reopened.oldest()
    assert first is not None and first.name == planted.name
    assert await reopened.read(first) is None
    assert reopened.stats.corrupt == 1
    assert (data_dir / "spool" / "quarantine" / planted.name).is_symlink()
    assert elsewhere.read_bytes() == real.read_bytes()


@pytest.mark.parametrize("name", ["dead-letter", "spool"])
def test_a_symlinked_state_directory_is_refused(data_dir: Path, tmp_path: Path, name: str) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    (data_dir / name).symlink_to(elsewhere)

    with pytest.raises(UnsafeState, match=name):
        private_dir(data_dir / name)


def test_data_dir_itself_may_be_a_link_to_a_private_directory(tmp_path: Path) -> None:
    real = private_dir(tmp_path / "real")
    (tmp_path / "data").symlink_to(real)

    assert private_dir(tmp_path / "data", follow=True) == tmp_path / "data"
    real.chmod(0o777)
    with pytest.raises(UnsafeState, match="writable by others"):
        private_dir(tmp_path / "data", follow=True)


# -- defect 2: a directory others can write is refused -----------------------------------------


@pytest.mark.parametrize("mode", [0o777, 0o770, 0o1777, 0o720])
def test_a_directory_others_can_write_is_refused(tmp_path: Path, mode: int) -> None:
    directory = tmp_path / "data"
    directory.mkdir()
    directory.chmod(mode)

    with pytest.raises(UnsafeState, match="writable by"):
        private_dir(directory)


@pytest.mark.skipif(os.geteuid() != 0, reason="chown to another user needs root")
def test_a_directory_owned_by_another_user_is_refused(tmp_path: Path) -> None:
    directory = tmp_path / "data"
    directory.mkdir(mode=0o700)
    os.chown(directory, 12345, 12345)

    with pytest.raises(UnsafeState, match="owned by uid 12345"):
        private_dir(directory)


def test_a_new_directory_is_created_private(tmp_path: Path) -> None:
    made = private_dir(tmp_path / "a" / "data")

    assert made.stat().st_mode & 0o777 == 0o700


# -- defect 3: a spool file that cannot be read now is retried, not quarantined ----------------


async def test_an_unreadable_spool_file_is_retried_later_not_quarantined(
    data_dir: Path,
) -> None:
    """As root, chmod 000 does not stop a read: the EACCES is injected at the spool's one file
    opener (the seam `Spool(read_file=...)`), as a non-root agent would meet it."""
    failures = {"left": 3}
    real_reader = Spool.read_file

    def flaky(path: Path) -> bytes:
        if failures["left"]:
            failures["left"] -= 1
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_reader(path)

    writer = Spool(data_dir / "spool", 1 << 20, "block")
    assert await writer.put(entry(1))
    spool = Spool(data_dir / "spool", 1 << 20, "block", read_file=flaky, retry_unreadable=0.05)

    with structlog.testing.capture_logs() as logs:
        file = spool.oldest()
        assert file is not None
        assert await spool.read(file) is None
        assert spool.oldest() is None  # set aside: the replayer does not spin on it
        got = None
        while got is None:
            await spool.wait_for_files()  # wakes when the retry time comes
            again = spool.oldest()
            assert again is not None
            got = await spool.read(again)

    assert got == entry(1)
    assert spool.stats.corrupt == 0
    assert not (data_dir / "spool" / "quarantine").exists()
    unreadable = [e for e in logs if e["event"] == "spool_file_unreadable"]
    assert len(unreadable) == 1  # logged once, not at every retry


# -- defect 2 through the CLI: `run` refuses to start, naming data_dir -------------------------

CONFIG = """
data_dir = "{data_dir}"
[polaris]
url = "http://127.0.0.1:9"
project_id = "p"
connection = "c"
api_key = "k"
[[sources]]
name = "app"
include = ["{logs}/*.log"]
"""


def _run_agent(
    tmp_path: Path, data_dir: Path, command: tuple[str, ...] = ("run", "--once")
) -> subprocess.CompletedProcess[str]:
    config = tmp_path / "agent.toml"
    config.write_text(CONFIG.format(data_dir=data_dir, logs=tmp_path))
    config.chmod(0o600)
    return subprocess.run(
        [sys.executable, "-m", "agent", *command, "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("command", [("run", "--once"), ("check",)], ids=["run", "check"])
@pytest.mark.parametrize("where", ["data_dir", "data_dir/spool", "data_dir/dead-letter"])
def test_run_and_check_refuse_a_world_writable_state_directory_naming_it(
    tmp_path: Path, victim: Path, where: str, command: tuple[str, ...]
) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir(mode=0o700)
    unsafe = data_dir / where.partition("/")[2] if "/" in where else data_dir
    unsafe.mkdir(mode=0o700, exist_ok=True)
    unsafe.chmod(0o777)

    result = _run_agent(tmp_path, data_dir, command)

    assert result.returncode == 78, result.stderr  # a config problem, not a crash
    assert "Traceback" not in result.stderr
    assert "data_dir" in result.stderr
    assert f"{unsafe}: is writable by others (mode 0777)" in result.stderr
    assert not (data_dir / "checkpoints.json").exists()
