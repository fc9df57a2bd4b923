"""Every shape of log a user has, each beside the plain-loop baseline in the same run (issue 13).

A shape is a way the lines are written (the JSON time present, missing, under another name, as
epoch numbers under a candidate name or the time field itself, static fields, event ids, CRLF
line ends; text, also CRLF; the parsed formats) and the source options
that read it. Each shape runs the agent (`run --once`) and, for the unparsed shapes, the plain
loop (`bench/plainloop.py`) on the very same file, so each figure is also a ratio. With
``--cpus 1`` the shipper under test is pinned to core 0 (``taskset``) and the endpoint and
the runner to core 1.

Every line carries a unique ``seq`` (``"seq":N`` in JSON, ``seq=N`` in text) so the endpoint
counts events, whatever the parser makes of the rest of the line.
"""

from __future__ import annotations

import calendar
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench import perfprofile, scenarios
from bench.endpoint import EndpointClient
from bench.gen import CHUNK_LINES, LineGenerator
from bench.procs import Monitored
from bench.report import MB, Result

TARGET_PARSED_LINES_S = 100_000.0
TARGET_CPU_RATIO = 1.3

_ISO = re.compile(rb'\{"timestamp":"([^"]+)",')
_TEXT_HEAD = re.compile(rb"^(\S+) ", re.M)

Transform = Callable[[bytes, int], bytes]
"""(a block of generated lines, seq of its first line) -> the shape's lines."""


def _epoch_ms(iso: bytes) -> int:
    second = calendar.timegm(time.strptime(iso[:19].decode(), "%Y-%m-%dT%H:%M:%S"))
    return second * 1000 + int(iso[20:23])


def _renamed(name: bytes) -> Transform:
    return lambda block, _first: block.replace(b'{"timestamp":', b'{"' + name + b'":')


def _epoch(name: bytes, seconds: bool) -> Transform:
    def transform(block: bytes, _first: int) -> bytes:
        cache: dict[bytes, int] = {}

        def number(match: re.Match[bytes]) -> bytes:
            iso = match.group(1)
            base = cache.get(iso[:19])
            if base is None:
                base = cache[iso[:19]] = _epoch_ms(iso[:19] + b".000") // 1000
            millis = base * 1000 + int(iso[20:23])
            text = b"%d.%03d" % divmod(millis, 1000) if seconds else b"%d" % millis
            return b'{"' + name + b'":' + text + b","

        return _ISO.sub(number, block)

    return transform


def _crlf(block: bytes, _first: int) -> bytes:
    """Windows line endings (a .NET service, a file written on Windows)."""
    return block.replace(b"\n", b"\r\n")


def _asctime(block: bytes, _first: int) -> bytes:
    """python-json-logger's time: ``"asctime": "2026-12-03 10:00:00,123"``."""
    return _ISO.sub(
        lambda m: b'{"asctime":"%s %s,%s",' % (m[1][:10], m[1][11:19], m[1][20:23]), block
    )


def _missing(block: bytes, _first: int) -> bytes:
    return _ISO.sub(b"{", block)


def _access(iso: bytes, rest: bytes, seq: int) -> bytes:
    ip = b"10.%d.%d.%d" % (seq >> 16 & 255, seq >> 8 & 255, seq & 255)
    stamp = b"%s/%s/%s:%s +0000" % (iso[8:10], _MONTHS[int(iso[5:7]) - 1], iso[:4], iso[11:19])
    return b'%s - - [%s] "GET /api/v1/orders/%d?seq=%d HTTP/1.1" 200 %d "-" "curl/8.4.0"\n' % (
        ip,
        stamp,
        seq % 9973,
        seq,
        len(rest),
    )


def _with_head(make: Callable[[bytes, bytes, int], bytes]) -> Transform:
    """Text lines (``<iso> seq=N ...``) rewritten per line by `make(iso, rest, seq)`."""

    def transform(block: bytes, first: int) -> bytes:
        out = []
        for seq, line in enumerate(block.split(b"\n")[:-1], first):
            iso, _, rest = line.partition(b" ")
            out.append(make(iso, rest, seq))
        return b"".join(out)

    return transform


_MONTHS = b"Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split()


def _syslog_time(iso: bytes) -> bytes:
    return b"%s %2d %s" % (_MONTHS[int(iso[5:7]) - 1], int(iso[8:10]), iso[11:19])


def _cri(iso: bytes, rest: bytes, seq: int) -> bytes:
    stamp = iso[:-1] + b"456789Z"
    if seq % 10:
        return b"%s stdout F %s %s\n" % (stamp, iso, rest)
    half = len(rest) // 2
    return b"%s stdout P %s %s\n%s stdout F %s\n" % (stamp, iso, rest[:half], stamp, rest[half:])


def _docker(iso: bytes, rest: bytes, seq: int) -> bytes:
    log = (iso + b" " + rest).replace(b"\\", b"\\\\").replace(b'"', b'\\"')
    return b'{"log":"%s\\n","stream":"stdout","time":"%s"}\n' % (log, iso[:-1] + b"456789Z")


def _traceback(iso: bytes, rest: bytes, seq: int) -> bytes:
    line = iso + b" " + rest + b"\n"
    if seq % 10:
        return line
    return line + (
        b"Traceback (most recent call last):\n"
        b'  File "/app/server.py", line 42, in handle\n'
        b"ValueError: upstream answered 502\n"
    )


@dataclass(frozen=True)
class Shape:
    name: str
    fmt: str  # the generator's: json or text
    transform: Transform | None = None
    source: str = ""  # TOML lines added to the [[sources]] entry
    fields: dict[str, str] | None = None
    parsed: bool = False  # lines/s is the target, not the plain loop
    lines_divisor: int = 1  # fewer lines than the JSON shapes (the parsed ones)
    plain_loop: bool = True
    extra: dict[str, str] = field(default_factory=dict)


FIELDS = {"env": "bench", "cluster": "eu-west-1a", "team": "payments"}
SHAPES = [
    Shape("json-timestamp", "json"),
    Shape("json-missing", "json", _missing),
    Shape("json-event_time", "json", _renamed(b"event_time")),
    Shape("json-@timestamp", "json", _renamed(b"@timestamp")),
    Shape("json-epoch-s", "json", _epoch(b"time", seconds=True)),
    Shape("json-epoch-ms", "json", _epoch(b"ts", seconds=False)),
    Shape("json-timestamp-ms", "json", _epoch(b"timestamp", seconds=False)),
    Shape("json-zap", "json", _epoch(b"ts", seconds=True), source='time_field = "ts"'),
    Shape("json-asctime", "json", _asctime, source='time_field = "asctime"'),
    Shape("json-crlf", "json", _crlf),
    Shape("json-fields", "json", fields=FIELDS),
    Shape("json-event_id", "json", source="event_id = true"),
    Shape("text", "text", source=""),
    Shape("text-crlf", "text", _crlf),
    Shape("nginx", "text", _with_head(_access), 'parser = "nginx"', parsed=True, lines_divisor=5),
    Shape("apache", "text", _with_head(_access), 'parser = "apache"', parsed=True, lines_divisor=5),
    Shape(
        "syslog-3164",
        "text",
        _with_head(
            lambda iso, rest, seq: (
                b"<34>%s web-01 app[%d]: %s\n" % (_syslog_time(iso), seq % 997, rest)
            )
        ),
        'parser = "syslog"',
        parsed=True,
        lines_divisor=5,
    ),
    Shape(
        "syslog-5424",
        "text",
        _with_head(
            lambda iso, rest, seq: (
                b'<165>1 %s web-01 app %d ID47 [ex@32473 iut="3"] %s\n' % (iso, seq % 997, rest)
            )
        ),
        'parser = "syslog"',
        parsed=True,
        lines_divisor=5,
    ),
    Shape(
        "logfmt",
        "text",
        _with_head(
            lambda iso, rest, seq: (
                b'time=%s level=info service=checkout msg="%s"\n' % (iso, rest.replace(b'"', b"'"))
            )
        ),
        'parser = "logfmt"',
        parsed=True,
        lines_divisor=5,
    ),
    Shape(
        "regex",
        "text",
        None,
        'parser = { type = "regex", pattern = \'^(?P<time>\\S+) (?P<message>seq=\\d+ '
        "(?P<level>[A-Z]+) (?P<service>\\S+) .*)$' }",
        parsed=True,
        lines_divisor=5,
    ),
    Shape(
        "cri-P/F",
        "text",
        _with_head(_cri),
        'kubernetes = { format = "cri" }',
        parsed=True,
        lines_divisor=5,
    ),
    Shape(
        "docker",
        "text",
        _with_head(_docker),
        'kubernetes = { format = "docker" }',
        parsed=True,
        lines_divisor=5,
    ),
    Shape(
        "multiline",
        "text",
        _with_head(_traceback),
        "multiline = { start_pattern = '^\\d{4}-', flush_timeout = \"200ms\" }",
        parsed=True,
        lines_divisor=5,
    ),
]
BY_NAME = {f"shape:{shape.name}": shape for shape in SHAPES}


@dataclass(frozen=True, slots=True)
class ShapeFile:
    path: Path
    events: int
    lines: int
    bytes: int


def write_shape(shape: Shape, directory: Path, events: int) -> ShapeFile:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "app-0000.log"
    gen = LineGenerator("json" if shape.fmt == "json" else "text")
    lines = size = 0
    with path.open("wb") as out:
        for first in range(0, events, CHUNK_LINES):
            data = gen.lines(first, min(CHUNK_LINES, events - first))
            if shape.transform is not None:
                data = shape.transform(data, first)
            out.write(data)
            lines += data.count(b"\n")
            size += len(data)
    return ShapeFile(path, events, lines, size)


def pinned(argv: list[str], cpus: int) -> list[str]:
    return ["taskset", "-c", "0", *argv] if cpus == 1 else argv


def shape_config(work: Path, endpoint: EndpointClient, shape: Shape, data: ShapeFile) -> Path:
    config = scenarios.agent_config(
        work,
        endpoint.url,
        [str(data.path.parent / "*.log")],
        fmt="json" if shape.fmt == "json" and not shape.parsed else "text",
        fields=shape.fields,
    )
    if shape.source:
        text = config.read_text().replace("[batch]", shape.source + "\n[batch]", 1)
        config.write_text(text)
    return config


def run_shape(
    shape: Shape,
    endpoint: EndpointClient,
    work: Path,
    settings: scenarios.Settings,
    cpus: int,
    profile: Path | None = None,
    perf: bool = False,
) -> list[Result]:
    """The agent (and the plain loop) on the shape's file; with `profile`, the agent alone
    under cProfile (its top functions printed; no start-up run, no plain loop); with `perf`,
    each under ``perf record``, their CPU by library printed side by side
    (`bench.perfprofile`; CPU figures then include perf's own)."""
    events = max(settings.lines // shape.lines_divisor, 1000)
    data = write_shape(shape, work / "logs", events)
    label = f"{shape.name} ({cpus} core{'s' if cpus > 1 else ''})"
    config = shape_config(work, endpoint, shape, data)
    idle = work / "start-up"
    idle.mkdir()
    idle_config = shape_config(idle, endpoint, shape, ShapeFile(idle / "logs" / "x", 0, 0, 0))
    argv = _traced(scenarios.agent_argv(config, once=True, profile=profile), work, "agent", perf)
    agent = _measure(label, "agent", endpoint, data, pinned(argv, cpus), work, settings)
    results = [agent]
    if profile is not None:
        scenarios.print_profile(profile)
        return results
    idle_argv = _traced(scenarios.agent_argv(idle_config, once=True), work, "agent-start-up", perf)
    start_up(agent, pinned(idle_argv, cpus), work)
    if shape.parsed:
        # lines/s from the first event received to the last: the agent's start-up (about
        # 0.5 s of a run this short) is not the parser's rate
        steady = (agent.seconds or 0.0) - (agent.first_seconds or 0.0)
        rate = data.lines / steady if steady > 0 else 0.0
        agent.extra["lines_per_s"] = rate
        agent.check(
            f">={TARGET_PARSED_LINES_S:,.0f} lines/s ({rate:,.0f})", rate >= TARGET_PARSED_LINES_S
        )
    elif shape.plain_loop:
        url = f"{endpoint.url}/v1/projects/bench/events/logs"
        loop_argv = [
            sys.executable, "-m", "bench.plainloop", "--url", url, "--key", scenarios.API_KEY,
            *(["--text"] if shape.fmt == "text" else []), str(data.path),
        ]  # fmt: skip
        traced = pinned(_traced(loop_argv, work, "plain-loop", perf), cpus)
        loop = _measure(label, "plain-loop", endpoint, data, traced, work, settings)
        empty = work / "empty.log"
        empty.write_bytes(b"")
        idle_loop = _traced([*loop_argv[:-1], str(empty)], work, "plain-loop-start-up", perf)
        start_up(loop, pinned(idle_loop, cpus), work)
        results.append(loop)
        compare(agent, loop)
    if perf:
        print_perf(work, results)
    return results


def _traced(argv: list[str], work: Path, tool: str, perf: bool) -> list[str]:
    """`argv` under ``perf record`` into ``work/<tool>.perf`` when `perf`."""
    return perfprofile.recorded(argv, work / f"{tool}.perf") if perf else argv


def print_perf(work: Path, results: list[Result]) -> None:
    """Each traced tool's CPU by library, its start-up taken out, side by side."""
    profiled = []
    for result in results:
        run, start = work / f"{result.tool}.perf", work / f"{result.tool}-start-up.perf"
        if not (run.exists() and start.exists() and result.cpu and result.raw_bytes):
            continue
        start_cpu = float(result.extra.get("start_up_cpu") or 0.0)
        rows = perfprofile.report_rows(run)
        profiled.append(
            perfprofile.Profiled(
                result.tool,
                perfprofile.costs(rows, result.cpu),
                perfprofile.costs(perfprofile.report_rows(start), start_cpu),
                result.raw_bytes / 1e9,
            )
        )
        print(f"\n{result.scenario} {result.tool}, its top symbols in the whole run:")
        print(perfprofile.top_symbols(rows))
    print("\n" + perfprofile.side_by_side(results[0].scenario, profiled))


def start_up(result: Result, argv: list[str], work: Path) -> None:
    """The shipper's CPU with nothing to read (the same command on an empty input): what
    every run pays once, and the CPU-s/GB after it, which a long-running agent pays."""
    work.mkdir(parents=True, exist_ok=True)
    proc = Monitored(argv, env=scenarios.agent_env(), stderr=work / "start-up.stderr")
    proc.cwd = scenarios.REPO
    cpu = proc.start().wait(timeout=60).cpu
    result.extra["start_up_cpu"] = cpu
    if result.cpu is not None and result.raw_bytes:
        after = (result.cpu - cpu) / (result.raw_bytes / 1e9)
        result.extra["cpu_per_gb_after_start_up"] = after
        text = f"start-up {cpu:.2f} CPU-s, {after:.1f} CPU-s/GB after it"
        result.note = f"{result.note}; {text}" if result.note else text


def compare(agent: Result, loop: Result) -> None:
    """The agent's MB/s and CPU-s/GB as ratios to the plain loop's (the issue's targets)."""
    if not (agent.mb_per_s and loop.mb_per_s and agent.cpu_per_gb and loop.cpu_per_gb):
        return
    speed = agent.mb_per_s / loop.mb_per_s
    cost = agent.cpu_per_gb / loop.cpu_per_gb
    agent.extra.update(speed_ratio=speed, cpu_ratio=cost)
    agent.check(f"MB/s {speed:.2f}x loop>=1.0", speed >= 1.0)
    agent.check(f"CPU-s/GB {cost:.2f}x loop<={TARGET_CPU_RATIO}", cost <= TARGET_CPU_RATIO)
    after = (
        agent.extra.get("cpu_per_gb_after_start_up"),
        loop.extra.get("cpu_per_gb_after_start_up"),
    )
    if after[0] and after[1]:
        agent.extra["cpu_ratio_after_start_up"] = after[0] / after[1]
        agent.note += f"; after start-up {after[0] / after[1]:.2f}x the loop's CPU-s/GB"


def _measure(
    label: str,
    tool: str,
    endpoint: EndpointClient,
    data: ShapeFile,
    argv: list[str],
    work: Path,
    settings: scenarios.Settings,
) -> Result:
    endpoint.reset(data.events)
    proc = Monitored(
        argv, env=scenarios.agent_env(), stderr=work / f"{tool}.stderr", cwd=scenarios.REPO
    )
    proc.start()
    stats = scenarios.await_all(endpoint, proc, data.events, timeout=settings.timeout)
    usage = proc.wait(timeout=120)
    result = Result(label, tool=tool, lines=data.events, raw_bytes=data.bytes)
    scenarios.fill_result(result, stats, proc.started_at)
    result.cpu, result.peak_rss = usage.cpu, usage.peak_rss
    result.extra.update(raw_lines=data.lines)
    if data.lines != data.events and result.seconds:
        result.note = f"{data.lines:,} lines, {data.lines / result.seconds:,.0f} lines/s"
    if usage.exit_code != 0:
        result.note += f"; exit {usage.exit_code}: {_tail(work / f'{tool}.stderr')}"
    result.check(f"loss 0 (got {result.lost})", result.lost == 0)
    if tool == "agent":
        result.check(
            f"RSS<={scenarios.TARGET_RSS_MB:.0f}MB",
            usage.peak_rss <= scenarios.TARGET_RSS_MB * MB,
        )
    return result


def _tail(path: Path) -> str:
    if not path.exists():
        return ""
    lines = path.read_bytes().decode(errors="replace").strip().splitlines()
    return " | ".join(line[:200] for line in lines[-3:])


def spread(results: list[Result]) -> list[str]:
    """How far each JSON shape is from the best one run the same way (pinned to one core,
    or not: the 2-core json-1/json-10/json-500 scenarios, unpinned and a million lines, are
    their own group; they were once the "cheapest shape" the pinned ones were held to): "no
    shape costs more than 15% over the best one" is checked on CPU-s/GB (what a shape
    costs; the steadier figure on a shared machine), MB/s and the CPU-s/GB after start-up
    (the same program's start-up, whatever the shape; it varies by ±0.1 CPU-s between runs)
    given beside it."""
    rows = [r for r in results if r.tool == "agent" and r.scenario.startswith("json-")]
    rows = [r for r in rows if r.mb_per_s and r.cpu_per_gb]
    groups: dict[str, list[Result]] = {}
    for r in rows:
        groups.setdefault(_how_run(r.scenario), []).append(r)
    lines = []
    for group in groups.values():
        fastest = max(r.mb_per_s or 0.0 for r in group)
        cheapest = min(r.cpu_per_gb or 0.0 for r in group)
        afters = [_after(r) for r in group if _after(r)]
        least_after = min(afters) if afters else 0.0
        for r in group:
            cost = (r.cpu_per_gb or 0.0) / cheapest
            speed = (r.mb_per_s or 0.0) / fastest
            after = f", {_after(r) / least_after:.2f}x after start-up" if least_after else ""
            verdict = "" if cost <= 1.15 else "  (costs more than 15% over the best)"
            lines.append(
                f"{r.scenario}: {cost:.2f}x the cheapest JSON shape's CPU-s/GB{after}, "
                f"{speed:.2f} of the fastest one's MB/s{verdict}"
            )
    return lines


def _how_run(scenario: str) -> str:
    """ "(1 core)" of "json-zap (1 core)"; "" for a scenario that is not a shape."""
    return scenario[scenario.index("(") :] if "(" in scenario else ""


def _after(result: Result) -> float:
    return float(result.extra.get("cpu_per_gb_after_start_up") or 0.0)
