"""The long runs, only in `make soak`: a 10-minute outage under steady input with the agent's
memory sampled, and many more chaos rounds. Nothing here runs in `make test`.

    make soak                      # SOAK_SECONDS=600, CHAOS_ROUNDS=40
    SOAK_SECONDS=120 make soak     # a shorter look
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest
from test_chaos import SPOOL_SOON, Kills, run_chaos

from agent.devserver import DevServer
from tests.support.clock import TestClock
from tests.support.lines import Ledger
from tests.support.process import AgentProcess
from tests.support.waiting import eventually

pytestmark = pytest.mark.soak


def rss_mib(agent: AgentProcess) -> float:
    for line in Path(f"/proc/{agent.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


@pytest.mark.timeout(3600)
async def test_memory_stays_flat_through_a_long_outage_and_nothing_is_lost(
    dev_server: DevServer, file_agent, ledger: Ledger, log_dir: Path, clock: TestClock
) -> None:
    seconds = float(os.environ.get("SOAK_SECONDS", "600"))
    log = log_dir / "app.log"
    agent = file_agent(spool={"after": "2s"})
    await agent.start()
    ledger.append(log, 100)
    await ledger.all_received(what="before the outage")
    baseline = rss_mib(agent)

    clock.pause()  # the outage ends when the writing does, not a moment before
    dev_server.faults.fail_for(503, seconds=seconds)
    samples: list[tuple[float, float]] = []
    began = time.monotonic()
    while (elapsed := time.monotonic() - began) < seconds:
        ledger.append(log, 40)  # ~200 lines/s, ~16 KB/s
        if not samples or elapsed - samples[-1][0] >= 10:
            samples.append((elapsed, rss_mib(agent)))
        await asyncio.sleep(0.2)  # the scenario: a writer's steady pace through the outage
    clock.advance(seconds)
    written = sum(ledger.written.values())
    await ledger.all_received(within=300, what=f"after a {seconds:.0f} s outage")

    peak = max(rss for _, rss in samples)
    print(
        f"RSS before outage {baseline:.1f} MiB; during: "
        + ", ".join(f"{t:.0f}s={r:.1f}" for t, r in samples[:: max(1, len(samples) // 12)])
        + f"; peak {peak:.1f} MiB; lines {written}"
    )
    later_half = [rss for t, rss in samples if t >= seconds / 2]
    first_half = [rss for t, rss in samples if t < seconds / 2]
    assert max(later_half) <= max(first_half) + 8, "memory kept growing through the outage"
    await eventually(lambda: not list((agent.data_dir / "spool").glob("*.spool")), within=60)
    assert await agent.stop() == 0


@pytest.mark.timeout(3600)
async def test_many_chaos_rounds_lose_nothing(
    dev_server: DevServer, file_agent, ledger: Ledger, log_dir: Path
) -> None:
    rounds = int(os.environ.get("CHAOS_ROUNDS", "40"))
    seed = int(os.environ.get("CHAOS_SEED", str(int(time.time()))))
    agent = file_agent(
        include=[f"{log_dir}/app.log*"], spool=SPOOL_SOON, batch={"max_bytes": 30000}
    )
    kills = Kills()
    log = log_dir / "app.log"
    duplicates = await run_chaos(
        dev_server, agent, ledger, log, rounds=rounds, seed=seed, kills=kills
    )
    kills.assert_repeats_bounded(duplicates, dev_server, agent, seed)
