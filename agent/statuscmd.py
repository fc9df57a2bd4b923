"""`polaris-agent status`: what the agent has made safe, read from its files, and what the
running agent says about itself, for a person. A command, not a stage: it reads `state`'s
files and asks `ops`' admin endpoint."""

from __future__ import annotations

import os
import sys
import urllib.request
from pathlib import Path
from typing import TextIO

import orjson

from agent.config import Config
from agent.state.checkpoint import CheckpointStore
from agent.state.files import UnsafeState
from agent.state.layout import checkpoint_path, dead_letter_dir, spool_dir


def print_status(config: Config) -> int:
    try:
        records = CheckpointStore(checkpoint_path(config.data_dir)).load()
    except UnsafeState as exc:
        print(f"data_dir: {exc}", file=sys.stderr)
        return 1
    out = sys.stdout
    _print_live(config, out)
    out.write(f"data_dir: {config.data_dir}\n")
    out.write(f"files: {len(records)}\n")
    for record in sorted(records, key=lambda r: r.path):
        size = _size(record.path)
        lag = "gone" if size is None else f"{max(size - record.offset, 0)} bytes behind"
        out.write(f"  {record.path}  offset={record.offset}  ({lag})\n")
    out.write(f"dead letters: {_count_lines(dead_letter_dir(config.data_dir))}\n")
    spooled = list(spool_dir(config.data_dir).glob("*.spool"))
    spooled_bytes = sum(_size(str(p)) or 0 for p in spooled)
    out.write(f"spool: {len(spooled)} files, {spooled_bytes} bytes waiting for Polaris\n")
    return 0


def _print_live(config: Config, out: TextIO) -> None:
    """What the running agent says about itself, from the admin endpoint's `/status` (the
    same snapshot `/metrics` and `/readyz` read), when `api.listen` makes it reachable."""
    from agent.config.listen import ListenAddress
    from agent.ops.admin import AdminServer

    listen = config.api.listen
    address = ListenAddress.parse(listen) if listen else None
    if address is None or address.port == 0:
        out.write("agent: not asked (set api.listen to see the running agent's state)\n")
        return
    host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(address.host, address.host)
    try:
        url = AdminServer(host, address.port).url
        with urllib.request.urlopen(f"{url}/status", timeout=3) as answer:
            live = orjson.loads(answer.read())
    except (OSError, ValueError) as exc:
        out.write(f"agent: not reachable at {listen} ({exc})\n")
        return
    state = "ready" if live["ready"] else "NOT READY: " + ", ".join(live["reasons"])
    out.write(f"agent: {state}, up {live['uptime_seconds']:.0f} s\n")
    out.write(
        f"  sent {live['events_sent']} events ({live['bytes_sent']} bytes),"
        f" queue {live['queue_bytes']} bytes, in flight {live['in_flight_batches']} batches,"
        f" spool {live['spool_files']} files\n"
    )
    for source in live["sources"]:
        out.write(
            f"  source {source['name']}: {source['lines_read']} lines read,"
            f" {source['checkpoint_lag_bytes']} bytes not yet safe,"
            f" {source['open_files']} open files\n"
        )


def _size(path: str) -> int | None:
    try:
        return os.stat(path).st_size
    except OSError:
        return None


def _count_lines(directory: Path) -> int:
    if not directory.is_dir():
        return 0
    total = 0
    for file in directory.glob("*.ndjson"):
        if file.is_symlink():  # not the agent's: never read through a link in data_dir
            continue
        with file.open("rb") as handle:
            total += sum(chunk.count(b"\n") for chunk in iter(lambda: handle.read(1 << 16), b""))
    return total
