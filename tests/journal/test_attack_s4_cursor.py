"""Attack round s4 on the journald cursor file: whatever sits at
`<data_dir>/journal/<source>.cursor` (any bytes, a FIFO, a directory) gives a cursor, or
`CursorFileError` (the source then reads from the start: duplicates, not a crash or a hang);
a full disk costs a save, not the agent; the journal directory is the agent's own, never a
link."""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from structlog.testing import capture_logs

from agent.config import Config, parse_config
from agent.journal import CursorFileError, CursorStore
from agent.journal.runner import JournalSources
from agent.records import Piece
from agent.state.acks import AckTracker
from agent.state.deadletter import DeadLetters
from agent.state.files import UnsafeState, private_dir
from tests.support.disks import fill

T = TypeVar("T")
HANG_BOUND = 30.0
"""Not a speed measure: how long a load may take before it is called hung."""


def bounded(work: Callable[[], T]) -> T:
    """`work()` in a thread: a hang (a FIFO opened for reading) is reported, not waited out."""
    result: list[T] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            result.append(work())
        except BaseException as exc:  # handed to the test
            errors.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(HANG_BOUND)
    assert not thread.is_alive(), "blocked (opening a FIFO?)"
    if errors:
        raise errors[0]
    return result[0]


@pytest.fixture
def store(tmp_path: Path) -> CursorStore:
    return CursorStore(str(private_dir(tmp_path / "journal") / "app.cursor"), "app")


def test_a_fifo_at_the_cursor_file_is_refused_not_waited_on(store: CursorStore) -> None:
    os.mkfifo(store.path, 0o600)
    with pytest.raises(CursorFileError, match="regular file"):
        bounded(store.load)


def test_a_directory_at_the_cursor_file_is_refused_as_unusable(store: CursorStore) -> None:
    os.mkdir(store.path)
    with pytest.raises(CursorFileError):
        bounded(store.load)


@settings(
    max_examples=300, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.binary(max_size=200) | st.binary(min_size=70_000, max_size=70_000))
def test_any_bytes_give_a_cursor_or_cursor_file_error(
    tmp_path_factory: pytest.TempPathFactory, data: bytes
) -> None:
    store = CursorStore(str(tmp_path_factory.mktemp("journal") / "app.cursor"), "app")
    Path(store.path).write_bytes(data)
    with contextlib.suppress(CursorFileError):
        assert isinstance(store.load(), str | None)


@pytest.fixture
def full_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 64 KiB tmpfs (0700), every byte taken: ENOSPC from the kernel."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    point = tmp_path / "disk"
    point.mkdir()
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k,mode=0700", "tmpfs", str(point)], check=True
    )
    yield point
    subprocess.run(["umount", "-l", str(point)], check=False)


def test_a_cursor_the_full_disk_refuses_is_not_raised_and_saved_once_it_has_room(
    full_disk: Path,
) -> None:
    store = CursorStore(str(private_dir(full_disk / "journal") / "app.cursor"), "app")
    store.save("s=1;i=1")
    filler = fill(full_disk)
    assert store.save("s=1;i=2") is False
    assert not Path(store.path + ".tmp").exists(), "a torn temp file keeps the disk full"
    filler.unlink()
    assert store.save("s=1;i=3") is True
    assert store.load() == "s=1;i=3"


def test_a_symlinked_journal_directory_is_refused(tmp_path: Path) -> None:
    elsewhere = private_dir(tmp_path / "elsewhere")
    data_dir = private_dir(tmp_path / "data")
    (data_dir / "journal").symlink_to(elsewhere)
    config = parse_config(
        {
            "data_dir": str(data_dir),
            "polaris": {
                "url": "http://127.0.0.1:9",
                "project_id": "p",
                "connection": "c",
                "api_key": "k",
            },
            "sources": [{"name": "app", "type": "journald"}],
        },
        "agent.toml",
        {},
    )
    with pytest.raises(UnsafeState, match="symlink"):
        JournalSources(
            config.sources,
            data_dir,
            acks=AckTracker(),
            dead_letters=DeadLetters(data_dir / "dead-letter"),
            emit=no_emit,
            piece_bytes=1000,
        )
    assert not list(elsewhere.iterdir())


def test_a_journal_directory_made_unsafe_before_a_reload_costs_that_source_not_the_agent(
    tmp_path: Path,
) -> None:
    """At start an unsafe journal/ is refused (a person must look); at a SIGHUP the agent is
    running and shipping: the new source is not started, and said so, the rest goes on."""
    data_dir = private_dir(tmp_path / "data")
    sources = JournalSources(
        journald_config(data_dir, "app").sources,
        data_dir,
        acks=AckTracker(),
        dead_letters=DeadLetters(data_dir / "dead-letter"),
        emit=no_emit,
        piece_bytes=1000,
    )
    shutil.rmtree(data_dir / "journal")
    (data_dir / "journal").symlink_to(private_dir(tmp_path / "elsewhere"))
    with capture_logs() as logged:
        sources.reconfigure(journald_config(data_dir, "app", "other").sources, 1000)
    assert sorted(sources.runs) == ["app"]
    [failed] = [e for e in logged if e["event"] == "journal_source_failed"]
    assert failed["source"] == "other" and "symlink" in failed["error"]


def journald_config(data_dir: Path, *names: str) -> Config:
    return parse_config(
        {
            "data_dir": str(data_dir),
            "polaris": {
                "url": "http://127.0.0.1:9",
                "project_id": "p",
                "connection": "c",
                "api_key": "k",
            },
            "sources": [{"name": name, "type": "journald"} for name in names],
        },
        "agent.toml",
        {},
    )


async def no_emit(piece: Piece) -> None:
    raise AssertionError("nothing is read here")


def test_a_cursor_directory_deleted_while_running_is_made_again_private(tmp_path: Path) -> None:
    journal_dir = private_dir(tmp_path / "data" / "journal")
    store = CursorStore(str(journal_dir / "app.cursor"), "app")
    assert store.save("s=1;i=1") is True
    shutil.rmtree(tmp_path / "data")  # data_dir removed under the running agent
    assert store.save("s=1;i=2") is True
    assert store.load() == "s=1;i=2"
    assert stat.S_IMODE(journal_dir.stat().st_mode) == 0o700
