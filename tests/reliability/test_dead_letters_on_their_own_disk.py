"""Dead letters the disk refuses keep their lines behind the checkpoint.

The dead-letter directory can sit on a disk of its own (a mount at `data_dir/dead-letter`)
that fills while the checkpoint's disk has room. The letters are then kept in memory and
written when the disk takes them; until then the checkpoint must not pass their lines, or a
crash (or, for `run --once`, the end of the run) loses them for good: the next start reads
on after them."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.devserver import DevServer
from agent.state.deadletter import read_letters
from tests.support.disks import fill
from tests.support.lines import Ledger
from tests.support.process import AgentProcess


@pytest.fixture
def small_dead_letter_disk(tmp_path: Path) -> Iterator[Path]:
    """A full 64 KiB tmpfs at the agent's `data_dir/dead-letter`; its `data_dir` on the test's
    own disk. Unmounted at the end."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    point = tmp_path / "data" / "dead-letter"
    point.mkdir(parents=True, mode=0o700)
    (tmp_path / "data").chmod(0o700)
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k,mode=0700", "tmpfs", str(point)], check=True
    )
    try:
        fill(point)
        yield point
    finally:
        subprocess.run(["umount", "-l", str(point)], check=False)


async def test_letters_a_full_dead_letter_disk_refused_are_written_by_the_next_run(
    dev_server: DevServer,
    make_agent,
    ledger: Ledger,
    log_dir: Path,
    small_dead_letter_disk: Path,
) -> None:
    log = log_dir / "app.log"
    broken = [b"not json %d " % n + b"x" * 2000 for n in range(20)]
    with log.open("ab") as out:
        for line in broken:
            out.write(ledger.lines(5))
            out.write(line + b"\n")
    agent: AgentProcess = make_agent()

    assert await agent.run_once() in (0, 1)  # 1: it says the run left letters unwritten
    assert agent.named("dead_letter_write_failed")
    assert not ledger.missing()

    (small_dead_letter_disk / "filler").unlink()  # the disk has room again
    assert await agent.run_once() == 0

    stored = {letter.record["line"][:12] for letter in read_letters(small_dead_letter_disk)}
    assert {line[:12].decode() for line in broken} <= stored, "every refused line lettered"
