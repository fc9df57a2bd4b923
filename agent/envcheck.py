"""`check --environment`: what this machine and the endpoint say against a valid config.

Each finding is one line, `ok`, `warning` or `FAILED`, with what was checked: every include
glob matches a file, `data_dir` is writable (a file is created and removed in it, or its
nearest existing parent is writable when it does not exist yet), and Polaris answers and
accepts the key (one GET of each configured connection: see `agent.checkcmd`).
"""

from __future__ import annotations

import asyncio
import glob
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from agent.config import Config
from agent.polaris import errors
from agent.polaris.api import PolarisApi


@dataclass(frozen=True, slots=True)
class Finding:
    what: str
    message: str
    failed: bool = False
    warning: bool = False

    def line(self) -> str:
        mark = "FAILED " if self.failed else "warning" if self.warning else "ok     "
        return f"{mark} {self.what}: {self.message}"


def check_environment(config: Config) -> list[Finding]:
    findings = [*_globs(config), _data_dir(config.data_dir)]
    findings.extend(asyncio.run(_endpoint(config)))
    return findings


def _globs(config: Config) -> Iterator[Finding]:
    for source in config.sources:
        for pattern in source.include:
            matched = sum(1 for _ in _limited(glob.iglob(pattern, recursive=True), 10_000))
            what = f"source {source.name} include {pattern}"
            if matched:
                more = "+" if matched >= 10_000 else ""
                yield Finding(what, f"matches {matched}{more} file(s)")
            else:
                yield Finding(what, "matches no file this user can see", failed=True)


def _limited(items: Iterator[str], limit: int) -> Iterator[str]:
    for index, item in enumerate(items):
        if index >= limit:
            return
        yield item


def _data_dir(data_dir: Path) -> Finding:
    what = f"data_dir {data_dir}"
    if data_dir.is_dir():
        try:
            with tempfile.NamedTemporaryFile(dir=data_dir, prefix=".check-"):
                pass
        except OSError as exc:
            return Finding(what, f"not writable by this user: {exc.strerror}", failed=True)
        return Finding(what, "writable")
    parent = next((p for p in data_dir.parents if p.exists()), None)
    if parent is not None and os.access(parent, os.W_OK | os.X_OK):
        return Finding(what, f"does not exist yet; `run` creates it in {parent}")
    return Finding(what, f"does not exist and {parent} is not writable", failed=True)


async def _endpoint(config: Config) -> list[Finding]:
    polaris = config.polaris
    names = sorted({polaris.connection, *(s.connection for s in config.sources if s.connection)})
    findings = []
    try:
        async with PolarisApi.open(polaris) as api:
            for name in names:
                findings.append(await _connection(api, polaris.url, name))
                if findings[-1].failed and "key" in findings[-1].message:
                    break  # a refused key is refused for every connection
    except errors.PolarisApiError as exc:
        findings.append(Finding(f"polaris {polaris.url}", str(exc), failed=True))
    return findings


async def _connection(api: PolarisApi, url: str, name: str) -> Finding:
    what = f"polaris {url} connection {name}"
    try:
        found = await api.get_connection(name)
    except errors.AuthenticationFailed:
        return Finding(what, "the key is refused (401): check polaris.api_key", failed=True)
    except errors.PermissionDenied:
        return Finding(
            what,
            "the key is accepted but may not read connections (403); sending needs only the"
            " Events API, so this may be fine: the connection's existence is not confirmed",
            warning=True,
        )
    except errors.Unreachable:
        raise
    except errors.PolarisApiError as exc:
        return Finding(what, str(exc), failed=True)
    if found is None:
        return Finding(what, "does not exist (404): `polaris-agent setup` creates it", failed=True)
    return Finding(what, "reachable, key accepted, connection exists")
