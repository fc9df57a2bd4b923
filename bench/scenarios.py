"""The agent's scenarios: throughput (1/10/500 files, text, fields), latency, idle, outage."""

from __future__ import annotations

import os
import pstats
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.endpoint import EndpointClient
from bench.gen import Format, LineGenerator, write_logs
from bench.procs import Monitored
from bench.report import MB, Result, percentile

API_KEY = "bench-key"
REPO = Path(__file__).resolve().parent.parent

TARGET_MB_S = 150.0
TARGET_CPU_PER_GB = 4.0
TARGET_RSS_MB = 64.0
TARGET_IDLE_PCT = 1.0


@dataclass
class Settings:
    lines: int = 1_000_000
    latency_secs: float = 30.0
    latency_rate: float = 20.0
    idle_secs: float = 20.0
    idle_files: int = 100
    outage_secs: float = 60.0
    outage_rate: float = 5000.0  # lines/s appended during the outage
    max_wait_ms: int = 500
    timeout: float = 600.0  # per throughput run
    keep: bool = False


def agent_env() -> dict[str, str]:
    return {**os.environ, "BENCH_KEY": API_KEY}


def agent_config(
    work: Path,
    url: str,
    include: Sequence[str],
    *,
    fmt: Format = "json",
    fields: dict[str, str] | None = None,
    max_wait_ms: int = 500,
    start_at: str = "beginning",
) -> Path:
    """A config for the agent under test: defaults everywhere except what the bench needs."""
    field_text = ""
    if fields:
        members = ", ".join(f'{k} = "{v}"' for k, v in fields.items())
        field_text = f"fields = {{ {members} }}"
    includes = ", ".join(f'"{p}"' for p in include)
    path = work / "agent.toml"
    path.write_text(
        f"""data_dir = "{work / "data"}"
[polaris]
url = "{url}"
project_id = "bench"
connection = "logs"
api_key = "${{BENCH_KEY}}"
[[sources]]
name = "app"
include = [{includes}]
format = "{fmt}"
start_at = "{start_at}"
{field_text}
[batch]
max_bytes = 1000000
max_wait = "{max_wait_ms}ms"
[sender]
workers = 4
compression = "gzip"
[log]
level = "warning"
format = "json"
"""
    )
    path.chmod(0o600)
    return path


def agent_argv(config: Path, *, once: bool, profile: Path | None = None) -> list[str]:
    head = [sys.executable]
    if profile is not None:
        head += ["-m", "cProfile", "-o", str(profile)]
    return [*head, "-m", "agent", "run", *(["--once"] if once else []), "--config", str(config)]


def start_agent(work: Path, argv: list[str]) -> Monitored:
    return Monitored(argv, env=agent_env(), stderr=work / "agent.stderr", cwd=REPO).start()


def await_all(
    endpoint: EndpointClient,
    proc: Monitored,
    expected: int,
    *,
    timeout: float,
    stall: float = 30.0,
) -> dict[str, Any]:
    """Poll the endpoint until it has every line, the shipper exits, nothing new arrives for
    `stall` seconds, or `timeout` passes; the last stats."""
    deadline = time.monotonic() + timeout
    last_new, changed = -1, time.monotonic()
    while True:
        stats = endpoint.stats()
        now = time.monotonic()
        if stats["new"] >= expected:
            return stats
        if stats["new"] != last_new:
            last_new, changed = stats["new"], now
        if not proc.running():
            time.sleep(0.2)  # answers in flight when it exited
            return endpoint.stats()
        if now - changed > stall or now > deadline:
            return stats
        time.sleep(0.05)


def stderr_tail(work: Path, lines: int = 3) -> str:
    path = work / "agent.stderr"
    if not path.exists():
        return ""
    text = path.read_bytes().decode(errors="replace").strip().splitlines()
    return " | ".join(line[:200] for line in text[-lines:])


def fill_result(result: Result, stats: dict[str, Any], started: float) -> None:
    result.lost = stats["lost"]
    result.duplicates = stats["duplicates"]
    if stats["new"]:
        result.seconds = stats["last_new_at"] - started
        result.first_seconds = stats["first_at"] - started
    refused = stats["by_status"].get("413", 0)
    if refused:
        result.note = f"{refused} requests refused 413 (over 1 MB)"
    result.extra["endpoint"] = stats


# -- throughput --------------------------------------------------------------------------


def throughput(
    name: str,
    endpoint: EndpointClient,
    work: Path,
    settings: Settings,
    *,
    files: int = 1,
    fmt: Format = "json",
    fields: dict[str, str] | None = None,
    headline: bool = False,
    profile: Path | None = None,
) -> Result:
    written = write_logs(work / "logs", settings.lines, files=files, fmt=fmt)
    config = agent_config(
        work, endpoint.url, [str(work / "logs" / "*.log")], fmt=fmt, fields=fields
    )
    endpoint.reset(settings.lines)
    proc = start_agent(work, agent_argv(config, once=True, profile=profile))
    stats = await_all(endpoint, proc, settings.lines, timeout=settings.timeout)
    usage = proc.wait(timeout=120)
    result = Result(name, lines=settings.lines, raw_bytes=written.bytes)
    fill_result(result, stats, proc.started_at)
    result.cpu = usage.cpu
    result.peak_rss = usage.peak_rss
    if usage.exit_code != 0:
        result.note = f"agent exit {usage.exit_code}: {stderr_tail(work)}"
    result.extra["max_body"] = stats["max_body"]
    result.check(f"loss 0 (got {result.lost})", result.lost == 0)
    result.check(f"RSS<={TARGET_RSS_MB:.0f}MB", usage.peak_rss <= TARGET_RSS_MB * MB)
    if headline:
        rate = result.mb_per_s or 0.0
        result.check(f">={TARGET_MB_S:.0f}MB/s", rate >= TARGET_MB_S)
        result.check(
            f"<={TARGET_CPU_PER_GB:.0f}CPU-s/GB", (result.cpu_per_gb or 1e9) <= TARGET_CPU_PER_GB
        )
        note_start_up(result, start_up_cpu(work, endpoint, fmt=fmt, fields=fields))
    return result


def start_up_cpu(
    work: Path, endpoint: EndpointClient, *, fmt: Format, fields: dict[str, str] | None
) -> float:
    """CPU-seconds of the agent starting and stopping with nothing to read (the same config
    but for an include that matches nothing): the fixed cost inside every run's figure."""
    empty = work / "start-up"
    empty.mkdir()
    config = agent_config(empty, endpoint.url, [str(empty / "*.log")], fmt=fmt, fields=fields)
    proc = start_agent(empty, agent_argv(config, once=True))
    return proc.wait(timeout=60).cpu


def note_start_up(result: Result, cpu: float) -> None:
    """How much of CPU-s/GB is start-up: what a long-running agent pays per GB is the rest."""
    if result.cpu is None or not result.raw_bytes:
        return
    per_gb = (result.cpu - cpu) / (result.raw_bytes / 1e9)
    text = f"start-up {cpu:.2f} CPU-s; {per_gb:.1f} CPU-s/GB after it"
    result.note = f"{result.note}; {text}" if result.note else text
    result.extra["start_up_cpu"] = cpu


def print_profile(path: Path, top: int = 25) -> None:
    print(f"\nagent profile (cProfile, main thread only; compression threads not shown): {path}")
    stats = pstats.Stats(str(path))
    stats.sort_stats("tottime").print_stats(top)


# -- latency -----------------------------------------------------------------------------


class Appender(threading.Thread):
    """Appends lines with seq first..first+count-1 to `path` at `rate` lines/s, each line
    stamped with its write time; `written[i]` is when line first+i was written."""

    def __init__(
        self, path: Path, first: int, count: int, rate: float, *, fmt: Format = "json"
    ) -> None:
        super().__init__(daemon=True)
        self.path = path
        self.first = first
        self.count = count
        self.rate = rate
        self.gen = LineGenerator(fmt)
        self.written: list[float] = [0.0] * count
        self.stop_event = threading.Event()
        self.done = 0

    def run(self) -> None:
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            per_tick = max(1, int(self.rate / 50))  # at most 50 writes a second
            interval = per_tick / self.rate
            started = time.monotonic()
            index = 0
            while index < self.count and not self.stop_event.is_set():
                n = min(per_tick, self.count - index)
                now = time.time()
                if n == 1:
                    data = self.gen.line_at(self.first + index, now)
                else:
                    data = self.gen.lines(self.first + index, n)
                os.write(fd, data)
                for i in range(index, index + n):
                    self.written[i] = now
                index += n
                self.done = index
                delay = started + (index / per_tick) * interval - time.monotonic()
                if delay > 0:
                    self.stop_event.wait(delay)
        finally:
            os.close(fd)


def latency(endpoint: EndpointClient, work: Path, settings: Settings) -> Result:
    count = int(settings.latency_rate * settings.latency_secs)
    logs = work / "logs"
    logs.mkdir(parents=True)
    path = logs / "app.log"
    gen = LineGenerator("json")
    path.write_bytes(gen.line_at(count, time.time()))  # a warm-up line, outside the range
    config = agent_config(
        work, endpoint.url, [str(logs / "*.log")], max_wait_ms=settings.max_wait_ms
    )
    endpoint.reset(count, times=True)
    proc = start_agent(work, agent_argv(config, once=False))
    result = Result(f"latency {settings.latency_rate:g}/s", lines=count, rates=False)
    try:
        _until(lambda: endpoint.stats()["requests"] > 0, 30)
        appender = Appender(path, 0, count, settings.latency_rate)
        appender.start()
        appender.join()
        stats = await_all(endpoint, proc, count, timeout=30, stall=10)
        receipts = endpoint.receipts()
    finally:
        usage = proc.stop()
    result.raw_bytes = path.stat().st_size
    result.lost, result.duplicates = stats["lost"], stats["duplicates"]
    delays = [(receipts[i] - appender.written[i]) * 1000 for i in range(count) if receipts[i] > 0]
    result.cpu, result.peak_rss = usage.cpu, usage.peak_rss
    if delays:
        result.p50_ms = percentile(delays, 50)
        result.p99_ms = percentile(delays, 99)
        result.extra["max_ms"] = max(delays)
        result.note = (
            f"max {max(delays):.0f} ms over {len(delays)} lines, {settings.latency_secs:g} s"
        )
    bound = settings.max_wait_ms + 100
    result.check(f"p99<={bound}ms", result.p99_ms is not None and result.p99_ms <= bound)
    result.check("loss 0", result.lost == 0)
    return result


def _until(check: Callable[[], bool], within: float) -> None:
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError("the agent did not deliver its warm-up line")
        time.sleep(0.05)


# -- idle --------------------------------------------------------------------------------


def idle(endpoint: EndpointClient, work: Path, settings: Settings) -> Result:
    lines = settings.idle_files * 10
    written = write_logs(work / "logs", lines, files=settings.idle_files)
    config = agent_config(work, endpoint.url, [str(work / "logs" / "*.log")])
    endpoint.reset(lines)
    proc = start_agent(work, agent_argv(config, once=False))
    result = Result(
        f"idle {settings.idle_files} files", lines=lines, raw_bytes=written.bytes, rates=False
    )
    try:
        stats = await_all(endpoint, proc, lines, timeout=60)
        time.sleep(2.0)  # let the last checkpoint write and the watcher settle
        before, t0 = proc.cpu_now(), time.monotonic()
        time.sleep(settings.idle_secs)
        after, t1 = proc.cpu_now(), time.monotonic()
    finally:
        usage = proc.stop()
    pct = (after - before) / (t1 - t0) * 100
    result.lost, result.duplicates = stats["lost"], stats["duplicates"]
    result.cpu, result.peak_rss = after - before, usage.peak_rss
    result.note = f"{pct:.2f}% of a core over {settings.idle_secs:g} s idle"
    if usage.exit_code not in (0, None) or stats["new"] < lines:
        result.note += f"; agent exit {usage.exit_code}: {stderr_tail(work)}"
    result.extra["idle_pct"] = pct
    result.check("all shipped first", result.lost == 0)
    result.check(f"idle<{TARGET_IDLE_PCT:g}% core", pct < TARGET_IDLE_PCT)
    return result


# -- outage ------------------------------------------------------------------------------


def outage(endpoint: EndpointClient, work: Path, settings: Settings) -> Result:
    count = int(settings.outage_rate * settings.outage_secs)
    logs = work / "logs"
    logs.mkdir(parents=True)
    path = logs / "app.log"
    path.touch()
    config = agent_config(work, endpoint.url, [str(logs / "*.log")])
    endpoint.reset(count)
    endpoint.fail(503)
    proc = start_agent(work, agent_argv(config, once=False))
    result = Result(f"outage {settings.outage_secs:g}s 503", lines=count, rates=False)
    try:
        time.sleep(1.0)
        appender = Appender(path, 0, count, settings.outage_rate)
        started = time.time()
        appender.start()
        appender.join()
        ended = time.time()
        endpoint.fail(0)
        stats = await_all(endpoint, proc, count, timeout=120, stall=45)
        recovered = time.time()
    finally:
        usage = proc.stop()
    result.raw_bytes = path.stat().st_size
    # Batches go to the spool from spool.after (30 s) on: "flat" compares two points of that
    # stretch (36 s, 60 s); the step when the spool begins is a one-off, shown by the first.
    rss = [proc.rss_at(started + f * (ended - started)) / MB for f in (0.1, 0.6, 1.0)]
    result.lost, result.duplicates = stats["lost"], stats["duplicates"]
    result.cpu, result.peak_rss = usage.cpu, usage.peak_rss
    result.note = (
        f"RSS start/spooling/end {rss[0]:.0f}/{rss[1]:.0f}/{rss[2]:.0f} MB; "
        f"{stats['by_status'].get('503', 0)} 503s; all delivered {recovered - ended:.1f} s "
        "after the outage ended"
    )
    result.extra["rss_mb"] = rss
    result.check(f"RSS<={TARGET_RSS_MB:.0f}MB", usage.peak_rss <= TARGET_RSS_MB * MB)
    result.check("flat (end-spooling<=4MB)", rss[2] - rss[1] <= 4)
    result.check("loss 0", result.lost == 0)
    return result
