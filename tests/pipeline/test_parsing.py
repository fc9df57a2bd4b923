"""Issue 6 end to end: the real agent parses real log lines and the dev-server gets
events with fields and normalized times; held lines (CRI fragments, stack traces) survive
rotations and SIGKILL; events outside the late window are dead-lettered, not lost in Polaris.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from agent.devserver import DevServer
from tests.support.config import CONNECTION
from tests.support.f2b_samples import Sample, fetch, samples
from tests.support.inprocess import InProcessAgent
from tests.support.probes import Probes
from tests.support.process import AgentProcess
from tests.support.waiting import eventually

TRACEBACK = (
    "2026-05-28 20:00:01,002 ERROR worker crashed\n"
    "Traceback (most recent call last):\n"
    '  File "/srv/app/worker.py", line 42, in run\n'
    "    result = handler(job)\n"
    "ZeroDivisionError: division by zero\n"
)
START = r"^\d{4}-\d{2}-\d{2} "


def received(server: DevServer) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in server.received_lines(CONNECTION)]


def offsets_by_inode(agent: Probes) -> dict[int, int]:
    """Checkpoints by inode: a rotated file keeps the path it had when last found."""
    path = agent.data_dir / "checkpoints.json"
    files = orjson.loads(path.read_bytes())["files"] if path.exists() else []
    return {f["ino"]: f["offset"] for f in files}


def utc_second(sample: Sample) -> str:
    assert sample.time is not None
    return sample.time.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")


def write_samples(path: Path, lines: list[Sample]) -> None:
    path.write_text("".join(s.line + "\n" for s in lines), encoding="utf-8")


async def test_real_lines_of_four_parsers_arrive_with_fields_and_normalized_times(
    inprocess_agent: Callable[..., InProcessAgent], dev_server: DevServer, log_dir: Path
) -> None:
    logs = fetch()
    nginx = [s for s in samples(logs, "nginx-bad-request") if " 400 " in s.line]
    syslog = samples(logs, "dropbear")
    mongo = samples(logs, "mongodb-auth")
    grafana = samples(logs, "grafana")
    assert nginx and syslog and mongo and grafana
    for name, lines in (("access", nginx), ("sys", syslog), ("mongo", mongo), ("graf", grafana)):
        write_samples(log_dir / f"{name}.txt", lines)
    regex = r"^(?P<time>\S+) \[(?P<conn>[^\]]+)\] (?P<msg>.*)$"

    def source(name: str, file: str, parser: object, **more: object) -> dict[str, object]:
        return {
            "name": name,
            "include": [f"{log_dir}/{file}"],
            "parser": parser,
            "fields": {"src": name},
            "late_window": "36500d",
            "time": {"timezone": "Europe/Zurich"},
            **more,
        }

    agent = inprocess_agent(
        extra_sources=[  # after the harness' own "app" source, which stays unused
            source("nginx", "access.txt", "nginx"),
            source("syslog", "sys.txt", "syslog"),
            source("regex", "mongo.txt", {"type": "regex", "pattern": regex}),
            source(
                "logfmt", "graf.txt", "logfmt", time={"field": "t", "timezone": "Europe/Zurich"}
            ),
        ]
    )
    assert await agent.run_once() == 0
    events = received(dev_server)
    by_src: dict[str, list[dict[str, Any]]] = {}
    for event in events:
        by_src.setdefault(event["src"], []).append(event)
    assert {k: len(v) for k, v in by_src.items()} == {
        "nginx": len(nginx),
        "syslog": len(syslog),
        "regex": len(mongo),
        "logfmt": len(grafana),
    }
    for sample, event in zip(nginx, by_src["nginx"], strict=True):
        assert event["remote_addr"] == sample.host
        assert event["status"] in (400, "400") and event["timestamp"][:19] == utc_second(sample)
    for sample, event in zip(syslog, by_src["syslog"], strict=True):
        assert event["app"] == "dropbear" and "from" in event["message"], event
        assert event["timestamp"][4:19] == utc_second(sample)[4:19]  # the year is inferred
    for sample, event in zip(mongo, by_src["regex"], strict=True):
        assert event["conn"].startswith("conn") and "time" not in event
        assert event["timestamp"][:19] == utc_second(sample)
    for sample, event in zip(grafana, by_src["logfmt"], strict=True):
        assert event["lvl"] == "eror" and event["remote_addr"] == sample.host
        assert event["timestamp"][:19] == utc_second(sample)
    for event in events:
        stamp = event["timestamp"]
        assert len(stamp) == 24 and stamp.endswith("Z") and stamp[19] == "."


async def test_cri_fragment_split_by_a_rotation_arrives_joined(
    inprocess_agent: Callable[..., InProcessAgent], dev_server: DevServer, log_dir: Path
) -> None:
    pod_dir = log_dir / "var/log/pods/shop_checkout-7d4f_0f1e2d3c/app"
    pod_dir.mkdir(parents=True)
    current = pod_dir / "0.log"
    fresh = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    first = f"{fresh} stdout F started\n"
    current.write_text(first)
    agent = inprocess_agent(
        extra_sources=[
            {
                "name": "pods",
                "include": [f"{pod_dir}/*.log"],
                "format": "text",
                "kubernetes": {"format": "cri", "partial_flush_timeout": "20s"},
            }
        ]
    )
    await agent.start()
    await agent.wait_until(agent.received(1), agent.checkpointed(current))
    fragment = f"{fresh} stdout P a line the runtime split, \n"
    with current.open("a") as out:
        out.write(fragment)
    # The agent has read the P fragment (it has consumed every byte of both lines)...
    await agent.wait_until(agent.read("pods", len(first) + len(fragment)))
    # ...and holds it: its checkpoint stays before the fragment, nothing more was sent.
    assert agent.source("pods").checkpoint_lag_bytes == len(fragment)
    assert agent.checkpoints()[str(current)] == len(first)
    assert len(received(dev_server)) == 1
    rotated = pod_dir / "0.log.20260528-200000"
    os.rename(current, rotated)
    current.write_text(f"{fresh} stdout F continued in the new file\n")
    await agent.wait_until(agent.received(2))
    joined = received(dev_server)[1]
    assert joined["message"] == "a line the runtime split, continued in the new file"
    assert joined["stream"] == "stdout" and joined["timestamp"].startswith(fresh[:23])
    assert (joined["k8s_namespace"], joined["k8s_pod"], joined["k8s_container"]) == (
        "shop",
        "checkout-7d4f",
        "app",
    )
    # Once the joined event was safe, the old file's checkpoint moves on (it is saved under
    # the path the file had when last seen).
    await eventually(
        lambda: offsets_by_inode(agent).get(rotated.stat().st_ino) == rotated.stat().st_size,
        what="the rotated file's checkpoint at its end",
    )
    assert offsets_by_inode(agent)[current.stat().st_ino] == current.stat().st_size
    assert await agent.stop() == 0
    assert len(received(dev_server)) == 2


async def test_python_traceback_held_at_a_sigkill_arrives_as_one_event_after_restart(
    make_agent: Callable[..., AgentProcess], dev_server: DevServer, log_dir: Path
) -> None:
    app = log_dir / "app.log"
    first = "2026-05-28 20:00:00,001 INFO worker started\n"
    app.write_text(first + TRACEBACK)
    agent = make_agent(
        source={
            "format": "text",
            "multiline": {"start_pattern": START, "flush_timeout": "30s"},
        }
    )
    await agent.start()
    await eventually(lambda: len(received(dev_server)) == 1, what="the first event")
    await eventually(lambda: agent.checkpoints().get(str(app)) == len(first), what="checkpoint")
    assert await agent.stop(signal.SIGKILL) == -signal.SIGKILL
    # The checkpoint stopped before the held traceback: it is read again, nothing is lost.
    assert agent.checkpoints()[str(app)] == len(first)
    assert len(received(dev_server)) == 1

    await agent.start()
    with app.open("a") as out:
        out.write("2026-05-28 20:00:02,000 INFO worker restarted\n")
    await eventually(lambda: len(received(dev_server)) == 2, what="the traceback")
    messages = [e["message"] for e in received(dev_server)]
    assert messages == [first.rstrip("\n"), TRACEBACK.rstrip("\n")]
    assert await agent.stop() == 0


async def test_held_traceback_leaves_at_its_flush_timeout_between_scans(
    inprocess_agent: Callable[..., InProcessAgent], dev_server: DevServer, log_dir: Path
) -> None:
    app = log_dir / "app.log"
    app.write_text("")
    agent = inprocess_agent(
        source={
            "scan_interval": "10s",
            "format": "text",
            "multiline": {"start_pattern": START, "flush_timeout": "300ms"},
        }
    )
    await agent.start()
    await agent.wait_until(agent.event("file_opened"))
    written = time.monotonic()
    app.write_text(TRACEBACK)
    await eventually(lambda: len(received(dev_server)) == 1, within=8, what="the traceback")
    assert time.monotonic() - written < 5.0  # the scan interval (10 s) did not decide
    assert received(dev_server)[0]["message"] == TRACEBACK.rstrip("\n")
    assert await agent.stop() == 0


async def test_forty_day_old_event_is_dead_lettered_with_reason_path_and_offset(
    inprocess_agent: Callable[..., InProcessAgent], dev_server: DevServer, log_dir: Path
) -> None:
    now = datetime.now(UTC)
    fresh = orjson.dumps({"timestamp": now.isoformat(), "msg": "fresh"}) + b"\n"
    old = orjson.dumps({"timestamp": (now - timedelta(days=40)).isoformat(), "msg": "old"})
    app = log_dir / "app.log"
    app.write_bytes(fresh + old + b"\n")
    agent = inprocess_agent(source={"parser": "json"})
    assert await agent.run_once() == 0
    assert [e["msg"] for e in received(dev_server)] == ["fresh"]
    [letter] = [
        orjson.loads(line)
        for f in sorted((agent.data_dir / "dead-letter").glob("*.ndjson"))
        for line in f.read_bytes().splitlines()
    ]
    assert (letter["reason"], letter["path"], letter["offset"]) == (
        "too_late",
        str(app),
        len(fresh),
    )
    assert '"old"' in letter["line"] and "late window of 30 days" in letter["detail"]
    [stopped] = [e for e in agent.events() if e.get("event") == "agent_stopped"]
    assert stopped["dead_letters"] == 1
    assert agent.checkpoints()[str(app)] == app.stat().st_size  # dead-lettered is safe


async def test_bom_and_invalid_bytes_ship_clean_and_event_ids_survive_a_reread(
    inprocess_agent: Callable[..., InProcessAgent], dev_server: DevServer, log_dir: Path
) -> None:
    app = log_dir / "app.log"
    app.write_bytes(b"\xef\xbb\xbfstarted\nbad byte \xff here\nlast\n")
    agent = inprocess_agent(source={"format": "text", "event_id": True})
    assert await agent.run_once() == 0
    first = received(dev_server)
    assert [e["message"] for e in first] == ["started", "bad byte \ufffd here", "last"]
    for line in dev_server.received_lines(CONNECTION):
        line.decode("utf-8")  # strict: no BOM, no invalid byte reached the endpoint
        assert not line.startswith(b"\xef\xbb\xbf")

    (agent.data_dir / "checkpoints.json").unlink()  # as if the checkpoint never got saved
    assert await agent.run_once() == 0
    again = received(dev_server)[len(first) :]
    assert [e["event_id"] for e in again] == [e["event_id"] for e in first]
    assert len({e["event_id"] for e in first}) == 3


@pytest.mark.parametrize("charset", ["utf-16", "latin-1"])
async def test_a_source_charset_is_decoded(
    inprocess_agent: Callable[..., InProcessAgent],
    dev_server: DevServer,
    log_dir: Path,
    charset: str,
) -> None:
    (log_dir / "app.log").write_bytes("Grüße\nnaïve café\n".encode(charset))
    agent = inprocess_agent(source={"format": "text", "charset": charset})
    assert await agent.run_once() == 0
    assert [e["message"] for e in received(dev_server)] == ["Grüße", "naïve café"]


async def test_docker_json_file_lines_in_sidecar_mode_carry_the_pod_fields(
    make_agent: Callable[..., AgentProcess],
    dev_server: DevServer,
    log_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Docker's json-file format (`log`, `stream`, `time`), with a partial line joined, and the
    pod fields a Kubernetes sidecar gets from the downward API."""
    for name, value in {
        "POD_NAME": "checkout-7d4f",
        "POD_NAMESPACE": "shop",
        "NODE_NAME": "node-3",
    }.items():
        monkeypatch.setenv(name, value)
    fresh = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") + "123Z"
    lines = [
        {"log": "order 17 paid\n", "stream": "stdout", "time": fresh},
        {"log": "a long line the runtime ", "stream": "stderr", "time": fresh},
        {"log": "split in two\n", "stream": "stderr", "time": fresh},
    ]
    (log_dir / "app.log").write_bytes(b"".join(orjson.dumps(x) + b"\n" for x in lines))
    agent = make_agent(
        source={"format": "text", "kubernetes": {"format": "docker", "sidecar_env": True}}
    )

    assert await agent.run_once() == 0

    events = received(dev_server)
    assert [(e["message"], e["stream"]) for e in events] == [
        ("order 17 paid", "stdout"),
        ("a long line the runtime split in two", "stderr"),
    ]
    assert all(e["k8s_pod"] == "checkout-7d4f" for e in events)
    assert all(e["k8s_namespace"] == "shop" and e["k8s_node"] == "node-3" for e in events)
    assert all(e["timestamp"].startswith(fresh[:23]) for e in events)
