"""``python -m bench``: run the scenarios, print one table (see bench/README.md)."""

from __future__ import annotations

import argparse
import compileall
import json
import os
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path

from bench import journal_bench, peers, scenarios, shapes
from bench.ceiling import blast as blast_requests
from bench.ceiling import build_requests
from bench.endpoint import EndpointClient, EndpointProcess
from bench.report import Result, table
from bench.scenarios import Settings

FIELDS = {"env": "bench", "cluster": "eu-west-1a", "team": "payments"}

SCENARIOS = [
    "ceiling",
    "json-1",
    "json-10",
    "json-500",
    "text-1",
    "fields-1",
    "latency",
    "idle",
    "outage",
    "journald",  # the journald source: bench/journal_bench.py
    *peers.PEERS,
    *shapes.BY_NAME,
]
GROUPS = {
    "throughput": ["json-1"],
    "scaling": ["json-10", "json-500", "text-1", "fields-1"],
    "peers": list(peers.PEERS),
    "shapes": list(shapes.BY_NAME),
    "json-shapes": [n for n, s in shapes.BY_NAME.items() if not s.parsed],
    "parsed": [n for n, s in shapes.BY_NAME.items() if s.parsed],
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Benchmark the agent (and peers when available) against a counting endpoint.",
    )
    parser.add_argument("--lines", type=int, default=None, help="lines per throughput run (1M)")
    parser.add_argument(
        "--quick", action="store_true", help="200k lines, shorter latency/idle/outage runs"
    )
    parser.add_argument(
        "--only",
        default="",
        help="comma-separated scenarios or groups: "
        + ",".join([*SCENARIOS, *GROUPS])
        + " (default: all)",
    )
    parser.add_argument("--skip", default="", help="comma-separated scenarios or groups to skip")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="run json-1 under cProfile (or, with --only naming shapes, each of those shapes, "
        "no plain loop); print the top 25",
    )
    parser.add_argument(
        "--perf",
        action="store_true",
        help="shapes only: run the agent and the plain loop under `perf record` and print "
        "their CPU by library side by side (bench/perfprofile.py)",
    )
    parser.add_argument(
        "--cpus",
        default="1",
        help="shapes only: 1 pins the shipper to core 0 and the endpoint to core 1; "
        "'1,2' runs each shape both ways (default 1)",
    )
    parser.add_argument(
        "--shape-lines", type=int, default=None, help="lines per JSON shape run (500k)"
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    parser.add_argument("--keep", action="store_true", help="keep the work directories")
    parser.add_argument("--workdir", type=Path, default=None, help="where to write logs (tmp)")
    return parser.parse_args(argv)


def expand(text: str) -> list[str]:
    names: list[str] = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        if item in GROUPS:
            names += GROUPS[item]
        elif item in SCENARIOS:
            names.append(item)
        else:
            raise SystemExit(f"unknown scenario {item!r}; choose from {SCENARIOS + list(GROUPS)}")
    return names


def settings_for(args: argparse.Namespace) -> Settings:
    settings = Settings()
    if args.quick:
        settings.lines = 200_000
        settings.latency_secs = 10.0
        settings.idle_secs = 8.0
        settings.outage_secs = 20.0
    if args.lines is not None:
        settings.lines = args.lines
    settings.keep = args.keep
    return settings


def shape_settings(args: argparse.Namespace, settings: Settings) -> Settings:
    """The shapes run 500k JSON lines each (a fifth of that for the parsed ones) to keep
    `make bench` near ten minutes; --shape-lines (or --quick) changes it."""
    chosen = Settings(**{**settings.__dict__})
    chosen.lines = args.shape_lines or (100_000 if args.quick else 500_000)
    return chosen


def ceiling(endpoint: EndpointClient, port: int, settings: Settings) -> Result:
    lines = max(settings.lines, 500_000)
    requests, raw = build_requests(lines, "127.0.0.1", port, scenarios.API_KEY)
    endpoint.reset(lines)
    wall = blast_requests(requests, "127.0.0.1", port, connections=4)
    stats = endpoint.stats()
    result = Result("endpoint ceiling", tool="blast", lines=lines, raw_bytes=raw, seconds=wall)
    result.lost, result.duplicates = stats["lost"], stats["duplicates"]
    result.note = (
        f"{len(requests)} pre-gzipped ~1 MB bodies over 4 keep-alive connections from another "
        "process: the most the endpoint can count"
    )
    result.check(
        f">= 2x agent target ({2 * scenarios.TARGET_MB_S:.0f} MB/s)",
        (result.mb_per_s or 0) >= 2 * scenarios.TARGET_MB_S,
    )
    return result


def compile_agent() -> None:
    """Byte-compile the agent as an installed package is (pip writes .pyc files at install):
    where PYTHONDONTWRITEBYTECODE is set, every run would otherwise compile each module anew
    (about 0.05 CPU-s and 1.5 MB of the agent's start-up)."""
    compileall.compile_dir(scenarios.REPO / "agent", quiet=1)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    compile_agent()
    settings = settings_for(args)
    chosen = expand(args.only) if args.only else list(SCENARIOS)
    if args.profile:  # the shapes --only names, each under cProfile; else json-1
        named = expand(args.only) if args.only else []
        chosen = [name for name in named if name in shapes.BY_NAME] or ["profile"]
    skipped = set(expand(args.skip))
    chosen = [name for name in chosen if name not in skipped]
    if args.workdir:  # a --workdir that does not exist yet is made, not a traceback
        Path(args.workdir).mkdir(parents=True, exist_ok=True)
    base = Path(tempfile.mkdtemp(prefix="polaris-bench-", dir=args.workdir))
    results: list[Result] = []
    print(
        f"polaris-agent bench: {settings.lines:,} lines per throughput run; scenarios: "
        f"{', '.join(chosen)}; work dir {base}",
        flush=True,
    )
    cpu_counts = [int(c) for c in args.cpus.split(",")]
    runs = [
        (name, cpus) for name in chosen for cpus in (cpu_counts if name in shapes.BY_NAME else [0])
    ]
    try:
        for name, cpus in runs:
            work = base / (f"{name}-{cpus}" if cpus else name).replace(":", "-").replace("/", "-")
            work.mkdir(parents=True)
            started = time.monotonic()
            print(f"-- {name}{f' --cpus {cpus}' if cpus else ''} ...", end=" ", flush=True)
            endpoint = EndpointProcess(scenarios.API_KEY)
            try:
                with endpoint as endpoint_client:
                    if cpus == 1:  # the endpoint on the other core (the runner too)
                        assert endpoint.process is not None
                        os.sched_setaffinity(endpoint.process.pid, {1})
                        os.sched_setaffinity(0, {1})
                    if name in shapes.BY_NAME:
                        ran = shapes.run_shape(
                            shapes.BY_NAME[name],
                            endpoint_client,
                            work,
                            shape_settings(args, settings),
                            cpus,
                            profile=work / "agent.prof" if args.profile else None,
                            perf=args.perf,
                        )
                    else:
                        ran = [run_one(name, endpoint_client, work, settings)]
            except Exception as exc:  # a scenario that breaks must not lose the others
                traceback.print_exc()
                result = Result(name, note=f"error: {type(exc).__name__}: {exc}"[:300])
                result.check("ran", False)
                ran = [result]
            finally:
                os.sched_setaffinity(0, range(os.cpu_count() or 1))
            results += ran
            result = ran[0]
            rate = f"{result.mb_per_s:.1f} MB/s" if result.mb_per_s else ""
            print(f"{time.monotonic() - started:.1f} s {rate} {result.verdict}", flush=True)
            if not settings.keep:
                shutil.rmtree(work, ignore_errors=True)
    finally:
        if not settings.keep:
            shutil.rmtree(base, ignore_errors=True)
    print()
    print(table(results))
    print_ratios(results)
    for line in shapes.spread(results):
        print(line)
    if args.json is not None:
        args.json.write_text(json.dumps([r.as_dict() for r in results], indent=2, default=str))
    return 0


def run_one(name: str, endpoint: EndpointClient, work: Path, settings: Settings) -> Result:
    throughput = scenarios.throughput
    if name == "ceiling":
        return ceiling(endpoint, endpoint.port, settings)
    if name == "json-1":
        return throughput(name, endpoint, work, settings, headline=True)
    if name == "profile":
        profile = work.parent / "agent.prof"
        fields = FIELDS if os.environ.get("BENCH_PROFILE_FIELDS") else None
        result = throughput(
            "json-1 (cProfile)", endpoint, work, settings, profile=profile, fields=fields
        )
        scenarios.print_profile(profile)
        return result
    if name == "json-10":
        return throughput(name, endpoint, work, settings, files=10)
    if name == "json-500":
        return throughput(name, endpoint, work, settings, files=500)
    if name == "text-1":
        return throughput(name, endpoint, work, settings, fmt="text")
    if name == "fields-1":
        return throughput(name, endpoint, work, settings, fields=FIELDS)
    if name == "latency":
        return scenarios.latency(endpoint, work, settings)
    if name == "idle":
        return scenarios.idle(endpoint, work, settings)
    if name == "outage":
        return scenarios.outage(endpoint, work, settings)
    if name == "journald":
        return journal_bench.scenario(work, settings)
    return peers.run_peer(name, endpoint, work, settings)


def print_ratios(results: list[Result]) -> None:
    agent = next((r for r in results if r.tool == "agent" and r.scenario == "json-1"), None)
    peer_rows = [r for r in results if r.tool in peers.PEERS and r.mb_per_s]
    if agent is None or not agent.mb_per_s or not peer_rows:
        return
    print()
    for peer in peer_rows:
        assert peer.mb_per_s is not None
        ratio = agent.mb_per_s / peer.mb_per_s
        target = ""
        if peer.tool == "fluent-bit":
            target = f"  (target >= 4x: {'PASS' if ratio >= 4 else 'FAIL'})"
        print(
            f"agent json-1 {agent.mb_per_s:.1f} MB/s / {peer.tool} {peer.mb_per_s:.1f} MB/s "
            f"= {ratio:.2f}x{target}"
        )


if __name__ == "__main__":
    sys.exit(main())
