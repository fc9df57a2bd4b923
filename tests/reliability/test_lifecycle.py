"""Restarts, reloads and what the operator sees: torn checkpoints are recovered, SIGHUP applies
a new config or keeps the old one, systemd hears READY/RELOADING/STOPPING, the admin endpoint
tells the truth, and an event Polaris refuses is dead-lettered with its file and offset."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from pathlib import Path

import aiohttp
import orjson
import pytest

from agent.devserver import DevServer
from tests.support.config import API_KEY
from tests.support.lines import Ledger
from tests.support.process import AgentProcess
from tests.support.waiting import eventually


@pytest.mark.parametrize("damage", ["nul_bytes", "truncated_json", "both_files_broken"])
async def test_a_torn_checkpoint_is_recovered_with_a_warning_not_a_crash(
    dev_server: DevServer, file_agent, ledger: Ledger, log_dir: Path, damage: str
) -> None:
    log = log_dir / "app.log"
    agent = file_agent()
    ledger.append(log, 300)
    assert await agent.run_once() == 0
    ledger.append(log, 300)
    assert await agent.run_once() == 0  # a second run leaves a good `.prev` behind
    current = agent.data_dir / "checkpoints.json"
    previous = agent.data_dir / "checkpoints.json.prev"
    assert previous.exists()
    good = current.read_bytes()
    if damage == "nul_bytes":
        current.write_bytes(b"\0" * len(good))  # what a power cut can leave on some filesystems
    elif damage == "truncated_json":
        current.write_bytes(good[: len(good) // 2])
    else:
        current.write_bytes(good[:10])
        previous.write_bytes(b"\0\0\0")

    ledger.append(log, 300)
    assert await agent.run_once() == 0

    assert not ledger.missing()
    assert agent.named("checkpoint_unreadable")
    if damage == "both_files_broken":
        assert ledger.duplicates() == 600  # nothing to resume from: read again, never lost
    else:
        assert agent.named("checkpoint_recovered")
        assert ledger.duplicates() <= 300


async def test_sighup_adds_a_source_and_an_invalid_config_is_refused_while_the_old_runs_on(
    dev_server: DevServer, file_agent, ledger: Ledger, log_dir: Path, tmp_path: Path
) -> None:
    other_dir = tmp_path / "other"
    other_dir.mkdir()
    agent = file_agent()
    original = agent.config.read_text()
    await agent.start()
    ledger.append(log_dir / "app.log", 50)
    await ledger.all_received(what="first source")

    agent.config.write_text(original.replace("[polaris]", "[polaris]\nurll = 'typo'", 1))
    hup(agent)
    await eventually(lambda: agent.named("reload_rejected"), what="reload refused")
    [refused] = agent.named("reload_rejected")
    assert any("polaris.urll" in problem for problem in refused["problems"])
    ledger.append(log_dir / "app.log", 50)
    await ledger.all_received(what="old config still running")

    agent.config.write_text(
        original
        + f'\n[[sources]]\nname = "other"\ninclude = ["{other_dir}/*.log"]\n'
        + 'scan_interval = "200ms"\n'
    )
    hup(agent)
    await eventually(lambda: agent.named("config_reloaded"), what="reloaded")
    assert "sources" in agent.named("config_reloaded")[-1]["applied"]
    ledger.append(other_dir / "new.log", 50, tag="other")
    ledger.append(log_dir / "app.log", 50)
    assert await ledger.all_received(what="both sources") == 0
    assert await agent.stop() == 0


async def test_systemd_hears_ready_reloading_and_stopping(
    dev_server: DevServer, file_agent, log_dir: Path, tmp_path: Path, monkeypatch
) -> None:
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(tmp_path / "notify.sock"))
    notify.settimeout(10)
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "notify.sock"))
    agent = file_agent()
    await agent.start()
    try:
        assert notify.recv(4096).startswith(b"READY=1\n")
        hup(agent)
        reloading = notify.recv(4096)
        assert reloading.startswith(b"RELOADING=1\nMONOTONIC_USEC=")
        assert notify.recv(4096).startswith(b"READY=1\n")
        assert await agent.stop() == 0
        assert notify.recv(4096) == b"STOPPING=1"
    finally:
        notify.close()


async def test_the_admin_endpoint_and_status_report_health_readiness_and_metrics(
    dev_server: DevServer, file_agent, ledger: Ledger, log_dir: Path
) -> None:
    port = free_port()
    agent = file_agent(api={"listen": f"127.0.0.1:{port}"})
    ledger.append(log_dir / "app.log", 100)
    await agent.start()
    await eventually(lambda: agent.named("admin_listening"), what="admin up")
    url = agent.named("admin_listening")[0]["url"]
    assert url == f"http://127.0.0.1:{port}"
    await ledger.all_received(what="shipped")

    async with aiohttp.ClientSession() as http:
        async with http.get(f"{url}/healthz") as response:
            assert response.status == 200
        async with http.get(f"{url}/readyz") as response:
            assert response.status == 200, await response.text()
        async with http.get(f"{url}/metrics") as response:
            metrics = await response.text()
    status = await run_cli("status", "--config", str(agent.config))

    assert 'polaris_agent_sent_events_total{connection="logs"} 100.0' in metrics  # issue 15
    assert 'polaris_agent_read_lines_total{source="app"} 100.0' in metrics
    assert 'polaris_agent_requests_total{connection="logs",status="200"}' in metrics
    assert "test-key" not in metrics
    assert "agent: ready" in status
    assert "sent 100 events" in status
    assert "source app: 100 lines read, 0 bytes not yet safe" in status
    assert await agent.stop() == 0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def run_cli(*args: str) -> str:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "agent",
        *args,
        stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "TEST_POLARIS_KEY": API_KEY},
    )
    stdout, _ = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0, stdout
    return stdout.decode()


async def test_an_event_polaris_refuses_is_dead_lettered_with_its_file_and_offset(
    dev_server: DevServer, file_agent, ledger: Ledger, log_dir: Path
) -> None:
    log = log_dir / "app.log"
    agent = file_agent()
    ledger.append(log, 1)
    assert await agent.run_once() == 0
    first_of_next_run = log.stat().st_size
    ledger.append(log, 4)
    refused = log.read_bytes()[first_of_next_run:].splitlines()[0]
    dev_server.faults.refuse_events_containing(f'"id":"{orjson.loads(refused)["id"]}"')

    assert await agent.run_once() == 0

    [record] = [
        orjson.loads(line)
        for file in (agent.data_dir / "dead-letter").glob("*.ndjson")
        for line in file.read_bytes().splitlines()
    ]
    assert record["reason"] == "http_rejected"
    assert record["path"] == str(log)
    assert record["offset"] == first_of_next_run
    sent = orjson.loads(record["line"])  # the event as it was sent: the line plus its time
    assert sent == {**orjson.loads(refused), "timestamp": sent["timestamp"]}
    assert sum(ledger.missing().values()) == 1  # that one, and only that one


def hup(agent: AgentProcess) -> None:
    assert agent.process is not None
    agent.process.send_signal(signal.SIGHUP)
