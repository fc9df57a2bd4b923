"""A spool write the disk refuses tries the writer's other way out before each wait.

On a full disk (a real one: a small tmpfs, filled), `Spool.put(meanwhile=...)` calls
`meanwhile` after each refused write: True means the entry went elsewhere (the sender
delivered it), so nothing is written and put says so; False means it waits for the disk
and writes once there is room, as before."""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.records import Origin
from agent.ship.spool import Spool, SpoolEntry
from tests.support.disks import fill


def entry(events: int = 50) -> SpoolEntry:
    body = b"".join(
        b'{"seq":%d,"pad":"%s"}\n' % (n, os.urandom(64).hex().encode()) for n in range(events)
    )
    return SpoolEntry("logs", body, events, (Origin("/var/log/app.log", list(range(events))),))


@pytest.fixture
def full_disk(tmp_path: Path) -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    point = tmp_path / "spool"
    point.mkdir(mode=0o700)
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k,mode=0700", "tmpfs", str(point)], check=True
    )
    try:
        fill(point)
        yield point
    finally:
        subprocess.run(["umount", "-l", str(point)], check=False)


def spool_files(directory: Path) -> list[str]:
    return [name for name in os.listdir(directory) if name.endswith(".spool")]


async def test_an_entry_taken_meanwhile_is_not_written(full_disk: Path) -> None:
    spool = Spool(full_disk, 1 << 20, "block", retry_write=0.01)
    offers = []

    async def delivered_on_the_third_offer() -> bool:
        offers.append(len(offers) + 1)
        return len(offers) == 3

    assert await spool.put(entry(), meanwhile=delivered_on_the_third_offer) is False
    assert offers == [1, 2, 3], "offered once per refused write, until it was taken"
    assert spool_files(full_disk) == []
    assert spool.stats.written == 0


async def test_an_entry_not_taken_is_written_once_the_disk_has_room(full_disk: Path) -> None:
    spool = Spool(full_disk, 1 << 20, "block", retry_write=0.01)
    offered = asyncio.Event()

    async def refused() -> bool:
        offered.set()
        return False

    writing = asyncio.create_task(spool.put(entry(), meanwhile=refused))
    await asyncio.wait_for(offered.wait(), 60)
    assert not writing.done(), "the disk is still full: the entry waits in memory"
    (full_disk / "filler").unlink()

    assert await asyncio.wait_for(writing, 60) is True
    assert len(spool_files(full_disk)) == 1
