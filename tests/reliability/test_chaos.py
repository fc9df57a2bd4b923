"""Everything at once, at random: SIGKILL and SIGTERM at any moment, rotations, an endpoint
that fails, throttles, resets and stalls — and at the end every line written has arrived.

`CHAOS_SEED` picks the run (printed on failure); `make soak` runs many more rounds and a long
outage with the agent's memory sampled (see test_soak.py)."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from agent.devserver import DevServer
from tests.support.config import CONNECTION
from tests.support.lines import Ledger
from tests.support.process import AgentProcess

SPOOL_AFTER = 0.4  # a batch that cannot be delivered for this long is spooled, so safe
SPOOL_SOON = {"after": f"{SPOOL_AFTER * 1000:.0f}ms"}
CHECKPOINT_INTERVAL = 0.25  # the agent's default `checkpoint_interval`
ACK_LAG = 0.5
"""Seconds between the dev-server accepting a request and the agent having taken in the
answer (response on the wire, the worker scheduled, the ack recorded): generous, since the
agent shares two cores with the test and the dev-server."""


@dataclass
class Kills:
    """When each SIGKILL landed, to bound the repeats it may cause: only what was delivered or
    spooled since the last checkpoint written before it, plus what was in flight."""

    at: list[float] = field(default_factory=list)  # time.monotonic(), the dev-server's clock
    wall_minus_monotonic: float = field(default_factory=lambda: time.time() - time.monotonic())

    def assert_repeats_bounded(
        self, duplicates: int, server: DevServer, agent: AgentProcess, seed: int
    ) -> None:
        """Repeats come only from what was in flight or not yet checkpointed at each SIGKILL:
        what the dev-server accepted, or the agent spooled, within one checkpoint interval
        (plus the spool deadline and the time an answer takes to be taken in) around it. A
        SIGTERM drains and repeats nothing."""
        bound = self.accepted_near_kills(server) + self.spooled_near_kills(agent)
        print(f"chaos seed={seed}: kills={len(self.at)} duplicates={duplicates} bound={bound}")
        assert duplicates <= bound, f"{duplicates} repeats, over {bound} in flight (seed {seed})"

    def window(self, kill: float) -> tuple[float, float]:
        return kill - CHECKPOINT_INTERVAL - SPOOL_AFTER - ACK_LAG, kill + ACK_LAG

    def accepted_near_kills(self, server: DevServer) -> int:
        """Lines the dev-server accepted close enough to a kill to be uncheckpointed then."""
        return sum(
            r.line_count
            for r in server.requests
            if r.status == 200
            and r.connection == CONNECTION
            and any(a <= r.at <= b for a, b in map(self.window, self.at))
        )

    def spooled_near_kills(self, agent: AgentProcess) -> int:
        """Events the agent spooled close enough to a kill to be uncheckpointed then: they are
        read again after the restart and also replayed from the spool."""
        total = 0
        for event in agent.named("spooled"):
            at = datetime.fromisoformat(event["timestamp"]).timestamp() - self.wall_minus_monotonic
            if any(a <= at <= b for a, b in map(self.window, self.at)):
                total += int(event["events"])
        return total


def rotate(log: Path, keep: int = 1000) -> None:
    """logrotate-style renames (app.log.1 -> .2, app.log -> .1, new app.log); nothing is
    deleted: a rotation that deletes a file the agent never read loses it for any shipper."""
    for n in range(keep, 0, -1):
        older = log.with_name(f"{log.name}.{n}")
        if older.exists():
            older.rename(log.with_name(f"{log.name}.{n + 1}"))
    log.rename(log.with_name(f"{log.name}.1"))
    log.touch()


def misbehave(server: DevServer, rng: random.Random) -> str:
    faults = server.faults
    choice = rng.choice(["503", "429", "reset", "slow", "none"])
    if choice == "503":
        faults.fail_for(503, seconds=rng.uniform(0.3, 2.0))
    elif choice == "429":
        faults.fail_next(429, rng.randint(1, 3), retry_after=0.2)
    elif choice == "reset":
        faults.reset_next(rng.randint(1, 3))
    elif choice == "slow":
        faults.delay(rng.uniform(0.05, 0.3), count=3)
    return choice


async def run_chaos(
    server: DevServer,
    agent: AgentProcess,
    ledger: Ledger,
    log: Path,
    rounds: int,
    seed: int,
    kills: Kills,
) -> int:
    rng = random.Random(seed)
    ledger.append(log, 0)  # creates the file
    for round_no in range(rounds):
        await agent.start()
        for _ in range(rng.randint(2, 5)):
            ledger.append(log, rng.randint(20, 400))
            if rng.random() < 0.3:
                rotate(log)
            if rng.random() < 0.4:
                misbehave(server, rng)
            await asyncio.sleep(rng.uniform(0.0, 0.4))  # the scenario: a writer at random pace
        how = rng.choice([signal.SIGKILL, signal.SIGKILL, signal.SIGTERM])
        if how == signal.SIGKILL:
            kills.at.append(time.monotonic())
        code = await agent.stop(how)
        # -SIGTERM: the signal came while Python was still importing, before the handlers
        # were installed and before anything was read; that loses nothing either.
        allowed = (0, -signal.SIGKILL, -signal.SIGTERM)
        assert code in allowed, f"round {round_no}: exit {code} (seed {seed})"
    server.faults.clear()
    assert await agent.run_once() == 0
    duplicates = await ledger.all_received(within=60, what=f"chaos seed={seed} rounds={rounds}")
    if os.environ.get("CHAOS_DEBUG"):
        print("duplicated ids:", _ranges(ledger.duplicated_ids()))
    return duplicates


def _ranges(ids: list[str]) -> str:
    numbers = sorted(int(i.rsplit("-", 1)[1]) for i in ids)
    spans: list[list[int]] = []
    for n in numbers:
        if spans and n == spans[-1][1] + 1:
            spans[-1][1] = n
        else:
            spans.append([n, n])
    return ", ".join(f"{a}-{b}" for a, b in spans)


async def test_random_kills_rotations_and_endpoint_faults_lose_nothing(
    dev_server: DevServer, file_agent, ledger: Ledger, log_dir: Path
) -> None:
    seed = int(os.environ.get("CHAOS_SEED", "11"))
    log = log_dir / "app.log"
    agent = file_agent(
        include=[f"{log_dir}/app.log*"], spool=SPOOL_SOON, batch={"max_bytes": 30000}
    )

    kills = Kills()

    duplicates = await run_chaos(dev_server, agent, ledger, log, rounds=5, seed=seed, kills=kills)

    kills.assert_repeats_bounded(duplicates, dev_server, agent, seed)
