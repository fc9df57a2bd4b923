"""The journald source's throughput: entries/s and CPU-s per million entries on one core.

    .venv/bin/python bench/journal_bench.py [--entries 200000] [--cpu 1] [--bindings]

Builds a journal of `--entries` entries with systemd-journal-remote (kept in
``$TMPDIR/journal-bench-N`` for the next run), then reads all of it through the agent's path:
the journalctl child, `EntryEncoder`, pieces handed to a no-op emit. The process and its
journalctl child are pinned to one core (sched_setaffinity, what ``taskset -c`` does), so the
figure is the whole cost of an entry, the child's share included. ``--bindings`` also times
cysystemd (libsystemd through a wheel), when installed, reading the same files and building
the same events, for the child-or-bindings decision.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agent.journal import EntryEncoder, JournalPiece, JournalReader, JournalSettings
from agent.journal.export import export_entry

REMOTE = ("/usr/lib/systemd/systemd-journal-remote", "/lib/systemd/systemd-journal-remote")


def build(directory: Path, entries: int) -> None:
    remote = next(path for path in REMOTE if os.access(path, os.X_OK))
    directory.mkdir(parents=True, exist_ok=True)
    writer = subprocess.Popen(
        [remote, f"--output={directory}/bench.journal", "-"],
        stdin=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert writer.stdin is not None
    base = int(time.time() * 1e6) - entries * 1000
    chunk: list[bytes] = []
    for n in range(entries):
        chunk.append(
            export_entry(
                {
                    "__REALTIME_TIMESTAMP": base + n * 1000,
                    "__MONOTONIC_TIMESTAMP": 1000 + n,
                    "_BOOT_ID": "0123456789abcdef0123456789abcdef",
                    "MESSAGE": f"GET /api/v1/items/{n} 200 {n % 997}ms user=u{n % 50} "
                    f"request_id={n:016x}",
                    "PRIORITY": 6,
                    "_SYSTEMD_UNIT": f"app{n % 4}.service",
                    "SYSLOG_IDENTIFIER": "app",
                    "_PID": 1000 + n % 7,
                    "_HOSTNAME": "bench-host",
                    "_UID": 1000,
                    "_GID": 1000,
                    "_COMM": "app",
                    "_TRANSPORT": "stdout",
                }
            )
        )
        if len(chunk) == 5000:
            writer.stdin.write(b"".join(chunk))
            chunk = []
    writer.stdin.write(b"".join(chunk))
    writer.stdin.close()
    if writer.wait() != 0:
        raise SystemExit("systemd-journal-remote failed")
    (directory / "complete").write_text(str(entries))


def cpu(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


async def through_reader(directory: Path, entries: int) -> dict[str, float]:
    settings = JournalSettings(directory=str(directory), since="beginning")
    reader = JournalReader("bench", settings, EntryEncoder(settings), resume=None)
    sent = 0
    done = asyncio.Event()

    async def emit(piece: JournalPiece) -> None:
        nonlocal sent
        sent += len(piece.data)
        if reader.stats.entries >= entries:
            done.set()

    stop = asyncio.Event()
    self0, child0 = cpu(resource.RUSAGE_SELF), cpu(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    task = asyncio.create_task(reader.run(stop, emit))
    await done.wait()
    elapsed = time.perf_counter() - start
    stop.set()
    await task
    agent = cpu(resource.RUSAGE_SELF) - self0
    child = cpu(resource.RUSAGE_CHILDREN) - child0
    return {"seconds": elapsed, "agent_cpu": agent, "child_cpu": child, "bytes": sent}


def through_bindings(directory: Path, entries: int) -> dict[str, float] | None:
    try:
        from cysystemd.reader import JournalReader as Bindings  # type: ignore[import-not-found]
    except ImportError:
        return None
    import orjson

    self0 = cpu(resource.RUSAGE_SELF)
    start = time.perf_counter()
    journal: Any = Bindings()
    journal.open_directory(str(directory))
    journal.seek_head()
    sent = 0
    for record in journal:
        data = dict(record.data)
        event = {(k[1:] if k[0] == "_" else k): v for k, v in data.items() if k[:2] != "__"}
        event["message"] = event.pop("MESSAGE", "")
        sent += len(orjson.dumps(event, default=str)) + len(record.cursor) * 0
    elapsed = time.perf_counter() - start
    return {"seconds": elapsed, "agent_cpu": cpu(resource.RUSAGE_SELF) - self0, "bytes": sent}


def scenario(work: Path, settings: Any) -> Any:
    """`make bench`'s "journald" row: this script in a child process pinned to one core
    (the runner itself stays unpinned), `settings.lines` entries (at most 1M)."""
    from bench.report import Result

    entries = min(settings.lines, 1_000_000)
    core = (os.cpu_count() or 1) - 1
    script = Path(__file__).resolve()
    argv = [sys.executable, str(script), "--entries", str(entries), "--cpu", str(core), "--json"]
    out = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=settings.timeout)
    numbers = json.loads(out.stdout.strip().splitlines()[-1])
    total = numbers["agent_cpu"] + numbers["child_cpu"]
    per_million = 1e6 / entries
    note = (
        f"{entries / numbers['seconds']:,.0f} entries/s on one core; CPU-s per M entries "
        f"{total * per_million:.1f} (agent {numbers['agent_cpu'] * per_million:.1f}, "
        f"journalctl {numbers['child_cpu'] * per_million:.1f}); reader+encoder, no HTTP"
    )
    return Result(
        "journald",
        lines=entries,
        raw_bytes=int(numbers["bytes"]),
        seconds=numbers["seconds"],
        cpu=total,
        note=note,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=200_000)
    parser.add_argument("--cpu", type=int, default=(os.cpu_count() or 1) - 1, help="-1: no pinning")
    parser.add_argument("--bindings", action="store_true")
    parser.add_argument("--json", action="store_true", help="one JSON line (for `make bench`)")
    args = parser.parse_args()
    directory = Path(tempfile.gettempdir()) / f"journal-bench-{args.entries}"
    if not (directory / "complete").exists():
        print(f"building {args.entries} entries in {directory} ...", file=sys.stderr)
        build(directory, args.entries)
    if args.cpu >= 0:
        os.sched_setaffinity(0, {args.cpu})  # the journalctl child inherits it
    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(30))
    result = asyncio.run(through_reader(directory, args.entries))
    per_million = 1e6 / args.entries
    total = result["agent_cpu"] + result["child_cpu"]
    if args.json:
        print(json.dumps({**result, "entries": args.entries, "cpu": args.cpu}))
        return 0
    cores = f"one core (cpu {args.cpu})" if args.cpu >= 0 else "all cores"
    print(f"journald source, {args.entries} entries, {cores}:")
    print(f"  entries/s            {args.entries / result['seconds']:>10,.0f}")
    print(f"  CPU-s per M entries  {total * per_million:>10.2f} total")
    print(f"    agent (parse+encode) {result['agent_cpu'] * per_million:>8.2f}")
    print(f"    journalctl child     {result['child_cpu'] * per_million:>8.2f}")
    print(f"  NDJSON bytes/entry   {result['bytes'] / args.entries:>10.0f}")
    if args.bindings:
        bound = through_bindings(directory, args.entries)
        if bound is None:
            print("  cysystemd: not installed")
        else:
            print("cysystemd bindings, same files, same core, read + event dict + dumps:")
            print(f"  entries/s            {args.entries / bound['seconds']:>10,.0f}")
            print(f"  CPU-s per M entries  {bound['agent_cpu'] * per_million:>10.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
