"""`polaris-agent status`: what the agent has made safe, read from its files, for a person."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from agent.config import Config
from agent.state.checkpoint import CheckpointStore


def checkpoint_path(data_dir: Path) -> Path:
    return data_dir / "checkpoints.json"


def dead_letter_dir(data_dir: Path) -> Path:
    return data_dir / "dead-letter"


def spool_dir(data_dir: Path) -> Path:
    return data_dir / "spool"


def print_status(config: Config) -> int:
    records = CheckpointStore(checkpoint_path(config.data_dir)).load()
    out = sys.stdout
    out.write(f"data_dir: {config.data_dir}\n")
    out.write(f"files: {len(records)}\n")
    for record in sorted(records, key=lambda r: r.path):
        size = _size(record.path)
        lag = "gone" if size is None else f"{max(size - record.offset, 0)} bytes behind"
        out.write(f"  {record.path}  offset={record.offset}  ({lag})\n")
    out.write(f"dead letters: {_count_lines(dead_letter_dir(config.data_dir))}\n")
    return 0


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
        with file.open("rb") as handle:
            total += sum(chunk.count(b"\n") for chunk in iter(lambda: handle.read(1 << 16), b""))
    return total
