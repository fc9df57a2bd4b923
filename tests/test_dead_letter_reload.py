"""A SIGHUP that changes `[dead_letter]`: the real agent as a child process applies the new
bounds without a restart, prunes what they no longer allow, and counts it in /metrics."""

from __future__ import annotations

import signal
from pathlib import Path

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from agent.state.deadletter import read_letters
from tests.support import endpoint, process
from tests.support.process import AgentProcess

dev_server = endpoint.dev_server
log_dir = endpoint.log_dir
make_agent = process.make_agent


async def scrape(url: str) -> dict[tuple[str, str], float]:
    async with aiohttp.ClientSession() as http, http.get(f"{url}/metrics") as response:
        text = await response.text()
    return {
        (sample.name, sample.labels.get("reason", "")): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def test_sighup_lowering_max_size_prunes_and_counts_without_a_restart(
    make_agent, log_dir: Path
) -> None:
    pruned = ("polaris_agent_dead_letters_pruned_total", "size")
    agent: AgentProcess = make_agent(
        api={"listen": "127.0.0.1:0"}, dead_letter={"max_size": "1MiB"}
    )
    await agent.start()
    await agent.wait_until(agent.event("admin_listening"))
    [listening] = agent.named("admin_listening")
    lines = b"".join(b"not json %03d " % n + b"x" * 4000 + b"\n" for n in range(150))
    (log_dir / "app.log").write_bytes(lines)
    await agent.wait_until(agent.checkpointed(log_dir / "app.log", len(lines)))
    directory = agent.data_dir / "dead-letter"
    assert len(list(read_letters(directory))) == 150
    assert (await scrape(listening["url"]))[pruned] == 0

    agent.write_config(api={"listen": "127.0.0.1:0"}, dead_letter={"max_size": "200KiB"})
    agent.process.send_signal(signal.SIGHUP)
    await agent.wait_until(agent.event("config_reloaded"))

    [reloaded] = agent.named("config_reloaded")
    assert reloaded["applied"] == ["dead_letter"]
    assert agent.named("reload_needs_restart") == []
    assert sum(f.stat().st_size for f in directory.glob("*.ndjson")) <= 200 * 1024
    left = len(list(read_letters(directory)))
    metrics = await scrape(listening["url"])
    assert metrics[pruned] == 150 - left > 0
    assert metrics[("polaris_agent_dead_letters_total", "invalid_json")] == 150
    logged = [e for e in agent.events() if e["event"] == "dead_letters_pruned"]
    assert {e["bound"] for e in logged} == {"size"}
    assert sum(e["records"] for e in logged) == 150 - left
    assert await agent.stop() == 0
