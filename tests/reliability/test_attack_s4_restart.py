"""Attack round s4: the real agent, started over state a crash, a bug or a person left
behind, ships every line and exits 0 instead of exiting 1 at every start."""

from __future__ import annotations

import gzip
import os
import shutil
import stat
import struct
import subprocess
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import orjson
import pytest

from agent.devserver import DevServer
from agent.state.deadletter import read_letters
from agent.state.files import private_dir
from tests.support.disks import fill
from tests.support.lines import Ledger
from tests.support.process import AgentProcess
from tests.support.waiting import Condition, wait_until


@pytest.mark.parametrize(
    ("field", "value"),
    [("offset", -5), ("fingerprint_len", "a"), ("seen_at", "now")],
)
async def test_a_checkpoint_with_a_wrong_field_is_passed_over_and_every_line_ships(
    dev_server: DevServer, file_agent, ledger: Ledger, log_dir: Path, field: str, value: object
) -> None:
    log = log_dir / "app.log"
    agent = file_agent()
    ledger.append(log, 100)
    assert await agent.run_once() == 0
    checkpoints = agent.data_dir / "checkpoints.json"
    doc = orjson.loads(checkpoints.read_bytes())
    doc["files"][0][field] = value
    checkpoints.write_bytes(orjson.dumps(doc))
    (agent.data_dir / "checkpoints.json.prev").unlink(missing_ok=True)

    ledger.append(log, 100)
    assert await agent.run_once() == 0

    assert not ledger.missing()
    assert agent.named("checkpoint_unreadable")


# -- a full disk under data_dir ----------------------------------------------------------------


@pytest.fixture
def full_disk(tmp_path: Path) -> Iterator[Callable[[str], Path]]:
    """`full_disk(size)`: a tmpfs of `size` mounted as the agent's data_dir (`tmp/data`), 0700
    as the agent wants it; unmounted at the end. ENOSPC for real, no injection."""
    mounted: list[Path] = []

    def mount(size: str) -> Path:
        if os.geteuid() != 0:
            pytest.skip("mounting a tmpfs needs root")
        point = tmp_path / "data"
        point.mkdir()
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(point)],
            check=True,
        )
        mounted.append(point)
        return point

    yield mount
    for point in mounted:
        subprocess.run(["umount", "-l", str(point)], check=False)


def exited_or(agent: AgentProcess, event: str) -> Condition:
    return Condition(
        f"{event} logged (or the agent exited)",
        lambda: (
            bool(agent.named(event))
            or (agent.process is not None and agent.process.returncode is not None)
        ),
    )


async def test_a_spool_write_that_finds_the_disk_full_waits_for_room_and_loses_nothing(
    dev_server: DevServer, file_agent, ledger: Ledger, log_dir: Path, full_disk
) -> None:
    full_disk("64k")
    log = log_dir / "app.log"
    agent = file_agent(spool={"after": "300ms"}, batch={"max_bytes": 20000})
    dev_server.faults.fail_for(503, seconds=3600)
    ledger.append(log, 20000)  # ~1.4 MB: its gzip is more than the 64 KiB disk holds
    await agent.start()

    await wait_until(exited_or(agent, "spool_write_failed"), within=60)
    assert agent.process is not None and agent.process.returncode is None, "the agent crashed"

    dev_server.faults.clear()
    await ledger.all_received(within=90, what="after the disk has room again")
    assert await agent.stop() == 0


async def test_a_checkpoint_that_cannot_be_saved_on_a_full_disk_costs_no_run(
    dev_server: DevServer, file_agent, ledger: Ledger, log_dir: Path, full_disk
) -> None:
    data_dir = full_disk("64k")
    log = log_dir / "app.log"
    agent = file_agent()
    ledger.append(log, 100)
    assert await agent.run_once() == 0
    fill(data_dir)

    ledger.append(log, 100)
    assert await agent.run_once() == 0  # delivered: a checkpoint not saved costs duplicates

    assert not ledger.missing()
    assert agent.named("checkpoint_save_failed")
    assert not list(data_dir.glob(".*.tmp")), "a torn temp file keeps the disk full"
    (data_dir / "filler").unlink()
    ledger.append(log, 100)
    assert await agent.run_once() == 0
    assert not ledger.missing()
    assert ledger.duplicates() <= 100  # the second run's lines, read again: never lost


async def test_dead_letters_the_full_disk_refuses_cost_no_run_and_are_written_later(
    dev_server: DevServer, file_agent, ledger: Ledger, log_dir: Path, full_disk
) -> None:
    data_dir = full_disk("64k")
    log = log_dir / "app.log"
    agent = file_agent()
    ledger.append(log, 10)
    assert await agent.run_once() == 0
    filler = data_dir / "filler"
    fill(data_dir)

    too_long = [b'{"id":"long-%d","p":"%s"}\n' % (n, b"a" * 1_100_000) for n in range(10)]
    with log.open("ab") as out:
        for line in too_long:  # each ~1 KiB as a dead letter: more than the disk has left
            out.write(line)
            out.write(ledger.lines(5))
    assert await agent.run_once() == 0

    assert not ledger.missing()
    assert agent.named("dead_letter_write_failed")
    filler.unlink()
    assert await agent.run_once() == 0
    stored = {letter.record["line"][:14] for letter in read_letters(data_dir / "dead-letter")}
    assert {line[:14].decode() for line in too_long} <= stored


async def test_a_data_dir_deleted_while_running_is_made_again_private_and_checkpoints_resume(
    dev_server: DevServer, file_agent, ledger: Ledger, log_dir: Path
) -> None:
    log = log_dir / "app.log"
    agent = file_agent()
    ledger.append(log, 20)
    await agent.start()
    await ledger.all_received(what="before data_dir goes")
    await wait_until(
        Condition("a checkpoint saved", lambda: (agent.data_dir / "checkpoints.json").exists())
    )
    shutil.rmtree(agent.data_dir)

    ledger.append(log, 20)
    await ledger.all_received(what="after data_dir went")
    await wait_until(Condition("the checkpoint saved again", lambda: at_end(agent, log)), within=30)
    with log.open("ab") as out:
        out.write(b'{"id":"long","p":"%s"}\n' % (b"a" * 1_100_000))
    await wait_until(Condition("dead-lettered", lambda: bool(agent.named("dead_lettered"))))

    for directory in (agent.data_dir, agent.data_dir / "dead-letter"):
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700, directory
    assert await agent.stop() == 0


def at_end(agent: AgentProcess, log: Path) -> bool:
    try:
        return agent.checkpoints().get(str(log)) == log.stat().st_size
    except ValueError:  # read while written: the test looks again
        return False


# -- spool files that pass their CRC but not their shapes ------------------------------------


def spool_file(directory: Path, name: str, header: dict[str, object], ndjson: bytes) -> None:
    """A spool file as `encode_entry` lays it out, its CRC right, its header as given."""
    body = gzip.compress(ndjson)
    raw = orjson.dumps(header)
    crc = zlib.crc32(body, zlib.crc32(raw))
    path = directory / f"{name}.spool"
    path.write_bytes(struct.pack("<4sIIQ", b"PAS1", crc, len(raw), len(body)) + raw + body)
    path.chmod(0o600)


@pytest.mark.parametrize(
    "header",
    [
        {"connection": "../../../v1/projects/other/events/x", "events": 1, "origins": []},
        {"connection": "logs", "events": -3, "origins": []},
        {"connection": "logs", "events": True, "origins": []},
        {"connection": "logs", "events": 1, "origins": [["/x", ["a", {"k": 1}]]]},
        {"connection": "logs", "events": 1, "origins": [[5, [1]]]},
        {"connection": "logs", "events": 1, "origins": [], "size": "big"},
    ],
)
async def test_a_spool_file_with_a_header_of_the_wrong_shape_is_quarantined_not_replayed(
    dev_server: DevServer, file_agent, ledger: Ledger, header: dict[str, object]
) -> None:
    agent = file_agent()
    spool = private_dir(agent.data_dir / "spool")
    spool_file(spool, "00000000000000000001-1-00000001", header, b'{"id":"hostile"}\n')
    good = ledger.lines(3)
    spool_file(
        spool,
        "00000000000000000002-1-00000001",
        {"connection": "logs", "events": 3, "origins": [["/x", [0, 1, 2]]]},
        good,
    )
    assert await agent.run_once(within=60) == 0
    assert not ledger.missing()
    assert ledger.unexpected() == set()
    assert [p.name for p in (spool / "quarantine").iterdir()] == [
        "00000000000000000001-1-00000001.spool"
    ]


async def test_a_huge_sparse_spool_file_is_quarantined_unread_not_a_crash_at_every_start(
    dev_server: DevServer, file_agent, ledger: Ledger, log_dir: Path
) -> None:
    """A 3 GiB spool file (sparse: no disk used) was read whole: MemoryError under the
    agent's memory limit, exit 1 at every start, and every spool file behind it stuck."""
    agent = file_agent(wrapper=["prlimit", f"--as={2 * 2**30}", "--"])
    spool = private_dir(agent.data_dir / "spool")
    with (spool / "00000000000000000001-1-00000001.spool").open("wb") as out:
        out.truncate(3 * 2**30)
    (spool / "00000000000000000001-1-00000001.spool").chmod(0o600)
    good = ledger.lines(3)
    spool_file(
        spool,
        "00000000000000000002-1-00000001",
        {"connection": "logs", "events": 3, "origins": [["/x", [0, 1, 2]]]},
        good,
    )
    ledger.append(log_dir / "app.log", 10)
    assert await agent.run_once(within=60) == 0
    assert not ledger.missing()
    assert [p.name for p in (spool / "quarantine").iterdir()] == [
        "00000000000000000001-1-00000001.spool"
    ]


async def test_a_huge_sparse_checkpoint_file_is_passed_over_not_a_crash_at_every_start(
    dev_server: DevServer, file_agent, ledger: Ledger, log_dir: Path
) -> None:
    log = log_dir / "app.log"
    agent = file_agent(wrapper=["prlimit", f"--as={2 * 2**30}", "--"])
    ledger.append(log, 50)
    assert await agent.run_once() == 0
    with (agent.data_dir / "checkpoints.json").open("r+b") as out:
        out.truncate(3 * 2**30)  # sparse: its first bytes the old JSON, then zeros

    ledger.append(log, 50)
    assert await agent.run_once(within=60) == 0
    assert not ledger.missing()
    [unreadable] = agent.named("checkpoint_unreadable")
    assert "bytes, more than" in unreadable["error"]
    assert ledger.duplicates() <= 50  # the previous checkpoint was used
