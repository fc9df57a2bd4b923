"""A batch the spool's disk refuses is offered to Polaris while it waits for the disk.

The spool can sit on a disk of its own (a mount at `data_dir/spool`) that is full. A batch
given up to the spool then waits in memory for the disk, unacknowledged, the readers held
behind it. It waited for the disk only: with Polaris back and the disk still full, nothing
was sent again (no spool file to replay, so the outage never ended), and the agent stood
still until someone freed the disk. What a Fluent Bit or Vector user expects: the batch is
sent as soon as Polaris takes it, the disk or not."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.devserver import DevServer
from tests.support.disks import fill
from tests.support.lines import Ledger
from tests.support.process import AgentProcess
from tests.support.waiting import eventually

SLOW_MACHINE_SECS = 60


@pytest.fixture
def full_spool_disk(tmp_path: Path) -> Iterator[Path]:
    """A full 64 KiB tmpfs at the agent's `data_dir/spool`; its `data_dir` (checkpoints)
    on the test's own disk. Unmounted at the end, whatever fails."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    point = tmp_path / "data" / "spool"
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


def at_end(agent: AgentProcess, log: Path) -> bool:
    return agent.checkpoints().get(str(log)) == log.stat().st_size


async def test_a_batch_the_full_spool_disk_refuses_is_delivered_when_polaris_is_back(
    dev_server: DevServer, file_agent, ledger: Ledger, log_dir: Path, full_spool_disk: Path
) -> None:
    log = log_dir / "app.log"
    agent = file_agent(spool={"after": "300ms"}, batch={"max_bytes": 10000})
    dev_server.faults.fail_for(503, seconds=3600)
    ledger.append(log, 3000)  # about 240 KB: many batches, far more than waits in memory
    await agent.start()

    await eventually(
        lambda: agent.named("spool_write_failed"), within=SLOW_MACHINE_SECS, what="disk refused"
    )
    assert not at_end(agent, log), "the readers wait behind the batch the disk refused"
    assert dev_server.received_lines("logs") == []

    dev_server.faults.clear()  # Polaris is back; the spool's disk stays full

    assert await ledger.all_received(within=2 * SLOW_MACHINE_SECS, what="disk still full") == 0
    await eventually(lambda: at_end(agent, log), within=SLOW_MACHINE_SECS, what="checkpointed")
    assert agent.named("spool_refused_batch_delivered")
    on_disk = os.listdir(full_spool_disk)
    assert "filler" in on_disk, "the spool's disk stayed full all along"
    assert not [name for name in on_disk if name.endswith(".spool")], "nothing was spooled"

    ledger.append(log, 200)  # and the agent goes on delivering
    assert await ledger.all_received(within=SLOW_MACHINE_SECS, what="after recovery") == 0
    assert await agent.stop() == 0
