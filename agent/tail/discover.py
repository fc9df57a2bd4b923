"""Which files a source covers right now: include globs minus exclude globs."""

from __future__ import annotations

import glob
import os
from fnmatch import fnmatch

from agent.config import SourceConfig

_GLOB_CHARS = frozenset("*?[")


def discover(source: SourceConfig) -> list[str]:
    """Paths of regular files matching the source now, in a stable order."""
    found: set[str] = set()
    for pattern in source.include:
        for path in glob.iglob(pattern, recursive=True):
            if _excluded(path, source.exclude):
                continue
            try:
                if os.path.isfile(path):  # follows symlinks, as in /var/log/containers
                    found.add(path)
            except OSError:
                continue
    return sorted(found)


def _excluded(path: str, patterns: list[str]) -> bool:
    name = os.path.basename(path)
    return any(fnmatch(path, p) or fnmatch(name, p) for p in patterns)


def watch_root(pattern: str) -> str:
    """The deepest directory of `pattern` without glob characters: where to ask for events."""
    parts = pattern.split(os.sep)
    static: list[str] = []
    for part in parts[:-1]:
        if _GLOB_CHARS & set(part):
            break
        static.append(part)
    return os.sep.join(static) or os.sep


def is_recursive(pattern: str) -> bool:
    parent = os.path.dirname(pattern)
    return bool(_GLOB_CHARS & set(parent))
