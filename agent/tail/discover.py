"""Which files a source covers right now: include globs minus exclude globs."""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass, field
from fnmatch import fnmatch

from agent.config import SourceConfig

_GLOB_CHARS = frozenset("*?[")


COMPRESSED = (".gz", ".bz2", ".xz", ".zst", ".zip", ".lz4", ".tgz")
"""Rotated archives: read as text they are garbage, so they are skipped unless an include
pattern itself ends in the extension (`*.log.gz` reads `a.log.gz`; `app.log*` skips it)."""


@dataclass(frozen=True, slots=True)
class Found:
    """What one scan of a source's globs found."""

    files: list[str]  # regular files (symlinks resolved), in a stable order
    dangling: list[str] = field(default_factory=list)  # symlinks whose target does not exist


def discover(source: SourceConfig) -> Found:
    """Paths of regular files matching the source now, and links that lead nowhere."""
    found: set[str] = set()
    dangling: set[str] = set()
    for pattern in source.include:
        skip_compressed = not pattern.endswith(COMPRESSED)
        for path in glob.iglob(pattern, recursive=True):
            if _excluded(path, source.exclude) or (skip_compressed and path.endswith(COMPRESSED)):
                continue
            try:
                if os.path.isfile(path):  # follows symlinks, as in /var/log/containers
                    found.add(path)
                elif os.path.islink(path) and not os.path.exists(path):
                    dangling.add(path)
            except OSError:
                continue
    return Found(sorted(found), sorted(dangling))


def covers(source: SourceConfig, path: str) -> bool:
    """Whether `path` is (or was) one of the source's files, by its patterns alone: for a
    checkpoint whose file has gone, to know which source it belonged to.

    `fnmatch` lets `*` cross directories, and a `/**/` may stand for none, as in `glob`.
    """
    patterns = [*source.include, *(p.replace("/**/", "/") for p in source.include)]
    return any(fnmatch(path, p) for p in patterns) and not _excluded(path, source.exclude)


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
