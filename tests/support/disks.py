"""A full disk for real: every free byte of a (small tmpfs) filesystem taken by one file."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path


def fill(directory: Path) -> Path:
    """Take every free byte of `directory`'s filesystem; the file that does it (unlink it
    to make room again)."""
    filler = directory / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        with contextlib.suppress(OSError):
            while True:
                os.write(fd, b"\0" * 4096)
    finally:
        os.close(fd)
    return filler
