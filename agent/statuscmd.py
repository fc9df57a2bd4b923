"""`polaris-agent status`: what the agent has made safe, read from its files, and what the
running agent says about itself, for a person (or with `--json`, a program). A command, not a
stage: it reads `state`'s files and asks `ops`' admin endpoint.

Exit codes: 0 when the agent answers and is ready (or when `api.listen` is not set, so there
is no one to ask: the files are shown and nothing is claimed about the process); 1 when it
does not answer, or answers not ready, or `data_dir` cannot be read safely.

It needs no secret: the config is read with the API key and OAuth secret left unresolved, so
`status` works in a shell that does not hold them.
"""

from __future__ import annotations

import http.client
import os
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any, TypeGuard

import orjson

from agent.config import Config, ConfigError, host_problems, parse_config, read_raw
from agent.state.checkpoint import CheckpointStore
from agent.state.deadletter import count_records
from agent.state.files import UnsafeState
from agent.state.layout import checkpoint_path, dead_letter_dir, spool_dir

EXIT_OK = 0
EXIT_NOT_READY = 1
_PLACEHOLDER = "unresolved-secret"
_SECRET_KEYS = ("api_key", "client_secret")
_SOURCE_KEYS = ("name", "lines_read", "checkpoint_lag_bytes", "open_files")
ASK_SECONDS = 3.0
"""How long `status` waits for the running agent's answer, all of it."""
MAX_ANSWER_BYTES = 4 << 20
"""The largest answer taken (the agent's /status is a few KiB, more with many sources)."""


def load_without_secrets(path: Path) -> Config:
    """The config at `path`, validated as `run` would, except that its secrets (polaris's
    `api_key`, the OAuth `client_secret`) are not read: a placeholder stands in for them, so
    that an unset `${POLARIS_API_KEY}` is no problem here. Raises ConfigError otherwise."""
    raw = read_raw(path)
    _blank_secrets(raw.get("polaris"))
    config = parse_config(raw, str(path), os.environ)
    if problems := host_problems(config):
        raise ConfigError(str(path), problems)
    return config


def _blank_secrets(table: object) -> None:
    if not isinstance(table, dict):
        return
    for key, value in table.items():
        if key in _SECRET_KEYS and isinstance(value, str):
            table[key] = _PLACEHOLDER
        elif isinstance(value, dict):
            _blank_secrets(value)


def print_status(config: Config, *, as_json: bool = False) -> int:
    try:
        records = CheckpointStore(checkpoint_path(config.data_dir)).load()
    except UnsafeState as exc:
        print(f"data_dir: {exc}", file=sys.stderr)
        return EXIT_NOT_READY
    live, problem = _ask_agent(config)
    files = []
    for record in sorted(records, key=lambda r: r.path):
        size = _size(record.path)
        behind = None if size is None else max(size - record.offset, 0)
        files.append({"path": record.path, "offset": record.offset, "bytes_behind": behind})
    spooled = list(spool_dir(config.data_dir).glob("*.spool"))
    document: dict[str, Any] = {
        "agent": live if live is not None else {"reachable": False, "problem": problem},
        "data_dir": str(config.data_dir),
        "files": files,
        "dead_letters": _count_lines(dead_letter_dir(config.data_dir)),
        "spool": {"files": len(spooled), "bytes": sum(_size(str(p)) or 0 for p in spooled)},
    }
    code = _exit_code(config, live)
    if as_json:
        sys.stdout.buffer.write(orjson.dumps(document, option=orjson.OPT_INDENT_2) + b"\n")
        return code
    _print_text(config, document, live, problem)
    return code


def _exit_code(config: Config, live: dict[str, Any] | None) -> int:
    if not config.api.listen:
        return EXIT_OK  # no one to ask: said in the output, not failed on
    return EXIT_OK if live is not None and live.get("ready") else EXIT_NOT_READY


def _ask_agent(config: Config) -> tuple[dict[str, Any] | None, str]:
    """What the running agent says about itself, from the admin endpoint's `/status` (the
    same snapshot `/metrics` and `/readyz` read); (None, why) when it cannot be asked."""
    from agent.config.listen import ListenAddress
    from agent.ops.admin import AdminServer

    listen = config.api.listen
    address = ListenAddress.parse(listen) if listen else None
    if address is None or address.port == 0:
        return None, "not asked (set api.listen to see the running agent's state)"
    host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(address.host, address.host)
    try:
        url = AdminServer(host, address.port).url
        with urllib.request.urlopen(f"{url}/status", timeout=ASK_SECONDS) as answer:
            live = orjson.loads(_read_answer(answer))
    except (OSError, ValueError) as exc:
        return None, f"not reachable at {listen} ({exc})"
    if not _looks_like_status(live):
        return None, f"not an agent's answer at {listen}"
    live["reachable"] = True
    return live, ""


def _read_answer(answer: http.client.HTTPResponse) -> bytes:
    """The body, up to `MAX_ANSWER_BYTES` and within `ASK_SECONDS` in all: whatever listens
    at `api.listen` may not be the agent, and an endless body (fast: memory without bound;
    a byte a second: each read within its socket timeout) held `status` forever."""
    deadline = time.monotonic() + ASK_SECONDS
    chunks: list[bytes] = []
    size = 0
    while chunk := answer.read1(1 << 16):
        size += len(chunk)
        if size > MAX_ANSWER_BYTES:
            raise ValueError(f"answer larger than {MAX_ANSWER_BYTES} bytes")
        if time.monotonic() > deadline:
            raise TimeoutError(f"answer not complete within {ASK_SECONDS:g} s")
        chunks.append(chunk)
    return b"".join(chunks)


def _looks_like_status(live: object) -> TypeGuard[dict[str, Any]]:
    """The shapes `_print_text` relies on, as the agent's `/status` writes them."""
    if not isinstance(live, dict):
        return False
    reasons, sources = live.get("reasons", []), live.get("sources", [])
    return (
        isinstance(live.get("ready"), bool)
        and isinstance(reasons, list)
        and all(isinstance(r, str) for r in reasons)
        and type(live.get("uptime_seconds", 0)) in (int, float)
        and isinstance(sources, list)
        and all(_looks_like_source(source) for source in sources)
    )


def _looks_like_source(source: object) -> bool:
    return (
        isinstance(source, dict)
        and all(key in source for key in _SOURCE_KEYS)
        and isinstance(source.get("journal", {}), dict)
    )


def _print_text(
    config: Config, document: dict[str, Any], live: dict[str, Any] | None, problem: str
) -> None:
    out = sys.stdout
    if live is None:
        out.write(f"agent: {problem}\n")
    else:
        state = "ready" if live.get("ready") else "NOT READY: " + ", ".join(live.get("reasons", []))
        out.write(f"agent: {state}, up {live.get('uptime_seconds', 0):.0f} s\n")
        out.write(
            f"  sent {live.get('events_sent')} events ({live.get('bytes_sent')} bytes),"
            f" queue {live.get('queue_bytes')} bytes,"
            f" in flight {live.get('in_flight_batches')} batches,"
            f" spool {live.get('spool_files')} files\n"
        )
        for source in live.get("sources", []):
            out.write(
                f"  source {source['name']}: {source['lines_read']} lines read,"
                f" {source['checkpoint_lag_bytes']} bytes not yet safe,"
                f" {source['open_files']} open files\n"
            )
            if journal := source.get("journal"):  # a journald source
                out.write(f"    journal: {', '.join(f'{k} {v}' for k, v in journal.items())}\n")
    out.write(f"data_dir: {config.data_dir}\n")
    out.write(f"files: {len(document['files'])}\n")
    for file in document["files"]:
        behind = file["bytes_behind"]
        lag = "gone" if behind is None else f"{behind} bytes behind"
        out.write(f"  {file['path']}  offset={file['offset']}  ({lag})\n")
    out.write(f"dead letters: {document['dead_letters']}\n")
    spool = document["spool"]
    out.write(f"spool: {spool['files']} files, {spool['bytes']} bytes waiting for Polaris\n")


def _size(path: str) -> int | None:
    try:
        return os.stat(path).st_size
    except OSError:
        return None


def _count_lines(directory: Path) -> int:
    """Records in the agent's own dead-letter files: never through a link, never opening a
    FIFO (which blocked `status` forever) or a directory (a traceback)."""
    return count_records(directory)
