"""Rotation in every shape logrotate, kubelet and people produce: nothing written is lost.

Each scenario writes lines with unique ids while the real agent runs (or while it is stopped),
rotates, and then checks every id against what the dev-server received. Duplicates are
counted; where the design promises none (no crash, no resend of a rotated copy) they are 0.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from agent.devserver import DevServer
from tests.support.waiting import eventually


async def test_rename_and_create_reads_the_old_file_to_its_end(
    dev_server: DevServer, file_agent, ledger, log_dir: Path
) -> None:
    log = log_dir / "app.log"
    ledger.append(log, 200)
    dev_server.faults.fail_next(503, 2)
    agent = file_agent()
    await agent.start()
    await ledger.all_received(what="before rotation")

    with log.open("ab") as writer:  # the application still holds the old file open
        log.rename(log_dir / "app.log.1")
        ledger.append(log, 100, "new")
        writer.write(ledger.lines(150, "late"))  # written after the rename, to the old file

    assert await ledger.all_received(what="rename+create") == 0
    assert await agent.stop() == 0


async def test_copytruncate_does_not_resend_the_rotated_copy(
    dev_server: DevServer, file_agent, ledger, log_dir: Path
) -> None:
    log = log_dir / "app.log"
    ledger.append(log, 300)
    agent = file_agent(include=[f"{log_dir}/app.log*"])
    await agent.start()
    await ledger.all_received(what="before copytruncate")

    for generation in range(1, 4):
        ledger.append(log, 40, f"unread{generation}")  # may or may not be read before the copy
        shutil.copyfile(log, log_dir / f"app.log.{generation}")
        with log.open("r+b") as out:
            out.truncate(0)
        ledger.append(log, 60, f"after{generation}")
        await eventually(lambda: not ledger.missing(), within=20)

    assert await ledger.all_received(what="copytruncate") == 0, "a rotated copy was re-sent"
    assert await agent.stop() == 0
    assert agent.named("file_truncated"), "the truncation was noticed"


def recreate_on_the_same_inode(path: Path, data: bytes) -> None:
    """Delete `path` and create it again with `data` on the inode it had.

    That is what inode reuse looks like to the agent: the name goes away, then the same
    (dev, inode) comes back with other content. A hard link keeps the inode alive meanwhile,
    so the kernel cannot hand out another one: no luck involved.
    """
    keep = path.with_name(path.name + ".keep")
    inode = path.stat().st_ino
    os.link(path, keep)
    path.unlink()
    with keep.open("r+b") as out:
        out.truncate(0)
        out.write(data)
    keep.rename(path)
    assert path.stat().st_ino == inode


async def test_delete_and_recreate_on_a_reused_inode_starts_from_the_beginning(
    dev_server: DevServer, file_agent, ledger, log_dir: Path
) -> None:
    log = log_dir / "app.log"
    ledger.append(log, 50, "old")
    agent = file_agent(source={"close_inactive": "300ms"})
    await agent.start()
    await ledger.all_received(what="first file")
    await eventually(lambda: agent.named("file_closed_inactive"), within=10)

    # Longer than the old file, so that resuming at the old offset would skip lines.
    recreate_on_the_same_inode(log, ledger.lines(120, "reborn"))

    assert await ledger.all_received(what="recreated on the same inode") == 0
    assert await agent.stop() == 0

    # The same while the agent is stopped: the checkpoint names this inode, with an offset.
    recreate_on_the_same_inode(log, ledger.lines(200, "stopped"))
    assert await agent.run_once() == 0
    assert await ledger.all_received(what="recreated while stopped") == 0


async def test_rotations_several_times_faster_than_the_scan_interval_lose_nothing(
    dev_server: DevServer, file_agent, ledger, log_dir: Path
) -> None:
    log = log_dir / "app.log"
    log.write_bytes(b"")
    agent = file_agent(include=[f"{log_dir}/app.log*"], source={"scan_interval": "3s"})
    await agent.start()
    await eventually(lambda: agent.named("file_opened"), within=10)

    for _ in range(8):  # eight generations within milliseconds: notifications coalesce
        ledger.append(log, 50, "gen")
        for n in range(8, 0, -1):
            older = log_dir / f"app.log.{n}"
            if older.exists():
                older.rename(log_dir / f"app.log.{n + 1}")
        log.rename(log_dir / "app.log.1")
        log.write_bytes(b"")
    ledger.append(log, 10, "current")

    assert await ledger.all_received(within=30, what="fast rotation") == 0
    assert await agent.stop() == 0


async def test_a_file_rotated_while_the_agent_is_stopped_is_found_by_fingerprint_and_finished(
    dev_server: DevServer, file_agent, ledger, log_dir: Path
) -> None:
    log = log_dir / "app.log"
    ledger.append(log, 100)
    agent = file_agent(include=[f"{log_dir}/app.log*"])
    await agent.start()
    await ledger.all_received(what="before stop")
    assert await agent.stop() == 0

    ledger.append(log, 70, "while-stopped")
    log.rename(log_dir / "app.log.1")
    ledger.append(log, 30, "new")
    dev_server.faults.fail_for(503, 0.5)
    await agent.start()

    assert await ledger.all_received(what="rotated while stopped") == 0
    assert await agent.stop() == 0
    resumed = [e for e in agent.named("file_opened") if e["path"].endswith("app.log.1")]
    assert resumed and resumed[-1]["start"] == "checkpoint"


async def test_copytruncate_while_the_agent_is_stopped_finishes_the_copy_without_resending(
    dev_server: DevServer, file_agent, ledger, log_dir: Path
) -> None:
    log = log_dir / "app.log"
    ledger.append(log, 100)
    agent = file_agent(include=[f"{log_dir}/app.log*"])
    assert await agent.run_once() == 0
    await ledger.all_received(what="first run")

    ledger.append(log, 40, "unread")
    shutil.copyfile(log, log_dir / "app.log.1")
    os.truncate(log, 0)
    ledger.append(log, 25, "after")

    assert await agent.run_once() == 0
    assert await ledger.all_received(what="copytruncate while stopped") == 0
