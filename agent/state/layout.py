"""Where the agent keeps its state inside `data_dir`: one place for the names, read by the
runtime, `check` and `status`."""

from __future__ import annotations

from pathlib import Path


def checkpoint_path(data_dir: Path) -> Path:
    return data_dir / "checkpoints.json"


def dead_letter_dir(data_dir: Path) -> Path:
    return data_dir / "dead-letter"


def spool_dir(data_dir: Path) -> Path:
    return data_dir / "spool"
