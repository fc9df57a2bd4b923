"""Polaris goes away: batches go to the disk spool, the checkpoints move on, and every line
arrives once Polaris is back — also across a SIGTERM, a wrong key, and a damaged spool file."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import orjson

from agent.devserver import DevServer
from agent.ship.spool import decode_entry
from tests.support.clock import TestClock
from tests.support.lines import Ledger
from tests.support.process import AgentProcess
from tests.support.waiting import eventually

FAST_SPOOL = {"after": "300ms"}
SLOW_MACHINE_SECS = 60
"""How long a scenario waits for what the agent does at its own pace (read, batch, spool,
checkpoint): a bound for a stuck agent, not a measure of a fast one. A 6 s bound on a lot
of 300 lines failed once on a loaded machine, with nothing wrong but the load."""


def spool_files(agent: AgentProcess) -> list[Path]:
    directory = agent.data_dir / "spool"
    return sorted(directory.glob("*.spool")) if directory.is_dir() else []


def at_end(agent: AgentProcess, log: Path) -> bool:
    return agent.checkpoints().get(str(log)) == log.stat().st_size


async def test_a_long_outage_is_spooled_and_replayed_when_polaris_is_back(
    dev_server: DevServer, file_agent, ledger: Ledger, log_dir: Path, clock: TestClock
) -> None:
    log = log_dir / "app.log"
    ledger.append(log, 200)
    agent = file_agent(spool=FAST_SPOOL)
    await agent.start()
    await ledger.all_received(within=SLOW_MACHINE_SECS, what="before the outage")

    clock.pause()  # the outage lasts until the test ends it
    dev_server.faults.fail_for(503, seconds=8)
    for _ in range(8):  # lines keep coming during the outage; each lot is spooled in turn
        ledger.append(log, 300)
        await eventually(
            lambda: at_end(agent, log), within=SLOW_MACHINE_SECS, what="checkpoint past spooled"
        )
    assert spool_files(agent), "the outage should be on disk, not in memory"
    clock.advance(8)

    duplicates = await ledger.all_received(within=2 * SLOW_MACHINE_SECS, what="after the outage")
    assert duplicates == 0
    await eventually(lambda: not spool_files(agent), within=SLOW_MACHINE_SECS, what="spool emptied")
    names = [e["event"] for e in agent.events()]
    assert "outage_spooling" in names
    assert "spool_replayed" in names
    assert "outage_over" in names
    assert await agent.stop() == 0


async def test_a_failing_batch_is_spooled_at_spool_after_not_a_whole_backoff_later(
    dev_server: DevServer, file_agent, ledger: Ledger, log_dir: Path
) -> None:
    """With 20-40 s between tries, the try due after `spool.after` (1 s) would come only at
    20 s or later: the last wait is cut short so the batch is on disk at about 1 s."""
    log = log_dir / "app.log"
    agent = file_agent(spool={"after": "1s"}, sender={"retry_initial": "40s", "retry_max": "60s"})
    dev_server.faults.fail_for(503, seconds=60)
    ledger.append(log, 50)
    await agent.start()

    await eventually(lambda: bool(spool_files(agent)), within=8, what="the batch spooled")
    assert agent.named("outage_spooling")
    assert await agent.stop() == 0


async def test_sigterm_during_backoff_spools_and_exits_within_the_shutdown_timeout(
    dev_server: DevServer, file_agent, ledger: Ledger, log_dir: Path
) -> None:
    log = log_dir / "app.log"
    agent = file_agent()  # shutdown_timeout 5 s; spool.after stays at 30 s
    dev_server.faults.fail_for(503, seconds=3600)
    ledger.append(log, 1000)
    await agent.start()
    await eventually(
        lambda: len(dev_server.requests) >= 2, what="a failed request retried: backing off now"
    )

    began = time.monotonic()
    assert await agent.stop(signal.SIGTERM) == 0
    stopped_in = time.monotonic() - began
    # A stop during backoff spools at once: the drain ends by itself, the shutdown timeout
    # never cuts it short (which alone could keep a wall-time bound below it)...
    assert not agent.named("drain_timeout")
    assert stopped_in < 5.0, "...so the agent is out well within shutdown_timeout (5 s)"
    assert spool_files(agent), "what was read went to the spool"
    assert at_end(agent, log), "so the checkpoint moved past it"
    assert dev_server.received_lines("logs") == []

    dev_server.faults.clear()
    restarted = file_agent()
    assert await restarted.run_once() == 0
    assert await ledger.all_received(what="replayed at the next start") == 0
    assert not spool_files(restarted)


async def test_a_refused_key_spools_at_once_and_a_reload_with_the_right_key_delivers(
    dev_server: DevServer, file_agent, ledger: Ledger, log_dir: Path
) -> None:
    log = log_dir / "app.log"
    agent = file_agent()
    good = agent.config.read_text()
    agent.config.write_text(good.replace("${TEST_POLARIS_KEY}", "pok_revokedKey_123"))
    agent.config.chmod(0o600)
    ledger.append(log, 500)
    await agent.start()
    await eventually(lambda: spool_files(agent) and at_end(agent, log), what="spooled on 401")
    assert agent.named("auth_failed")
    assert dev_server.received_lines("logs") == []

    agent.config.write_text(good)
    assert agent.process is not None
    agent.process.send_signal(signal.SIGHUP)

    assert await ledger.all_received(within=30, what="after the key was fixed") == 0
    reloaded = agent.named("config_reloaded")
    assert reloaded and "polaris" in reloaded[-1]["applied"]
    assert "pok_revokedKey_123" not in agent.stderr.read_text()
    assert await agent.stop() == 0


async def test_a_damaged_spool_file_is_quarantined_and_the_rest_is_delivered(
    dev_server: DevServer, file_agent, ledger: Ledger, log_dir: Path
) -> None:
    log = log_dir / "app.log"
    agent = file_agent(spool=FAST_SPOOL, batch={"max_bytes": 20000})
    dev_server.faults.fail_for(503, seconds=3600)
    ledger.append(log, 1000)
    await agent.start()
    await eventually(lambda: at_end(agent, log), what="all spooled")
    assert await agent.stop() == 0
    files = spool_files(agent)
    assert len(files) >= 3
    victim = files[1]
    lost = {orjson.loads(x)["id"] for x in decode_entry(victim.read_bytes()).body.splitlines()}
    victim.write_bytes(victim.read_bytes()[:-10])  # torn: shorter than its header says

    dev_server.faults.clear()
    assert await agent.run_once() == 0

    assert set(ledger.missing()) == lost
    assert (agent.data_dir / "spool" / "quarantine" / victim.name).exists()
    [corrupt] = agent.named("spool_file_corrupt")
    assert corrupt["file"] == victim.name


async def test_a_full_spool_blocks_the_readers_and_loses_nothing(
    dev_server: DevServer, file_agent, ledger: Ledger, log_dir: Path
) -> None:
    log = log_dir / "app.log"
    agent = file_agent(
        spool={**FAST_SPOOL, "max_size": "30KiB"},
        batch={"max_bytes": 10000},
    )
    dev_server.faults.fail_for(503, seconds=4)
    ledger.append(log, 3000)  # about 240 KB: far more than the spool holds
    await agent.start()
    await eventually(lambda: agent.named("spool_full"), what="spool full")
    assert not at_end(agent, log), "readers wait: the log file is the buffer"

    assert await ledger.all_received(within=40, what="after the outage") == 0
    assert not agent.named("spool_dropped_oldest")
    assert await agent.stop() == 0


async def test_drop_oldest_counts_and_logs_every_event_it_gives_up(
    dev_server: DevServer, file_agent, ledger: Ledger, log_dir: Path
) -> None:
    log = log_dir / "app.log"
    agent = file_agent(
        spool={**FAST_SPOOL, "max_size": "30KiB", "when_full": "drop_oldest"},
        batch={"max_bytes": 10000},
    )
    dev_server.faults.fail_for(503, seconds=4)
    ledger.append(log, 3000)
    await agent.start()
    await eventually(lambda: at_end(agent, log), within=20, what="read to the end")
    await eventually(lambda: not spool_files(agent), within=40, what="spool replayed")

    def dropped() -> int:
        return sum(e["events"] for e in agent.named("spool_dropped_oldest"))

    def missing() -> int:
        return sum(ledger.missing().values())

    # The last batches may still be on their way: wait until only the dropped are missing.
    await eventually(lambda: missing() == dropped(), within=20, what="only drops missing")
    assert dropped() > 0
    assert await agent.stop() == 0
