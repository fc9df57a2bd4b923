"""Agent configs built from dicts and rendered as TOML, instead of f-strings patched by regex.

`agent_config()` is the one base every scenario starts from; a test says only what differs,
as a dict deep-merged over it (`merged`). `render_toml` covers the shapes agent configs use:
scalars, lists, `[table]`s, `[[array]]`s of tables and inline tables nested in them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

API_KEY = "test-key-0123456789"
CONNECTION = "logs"

Doc = dict[str, Any]


def agent_config(data_dir: Path, url: str, log_dir: Path) -> Doc:
    """One "app" source over `log_dir/*.log`, quick scans, batches and retries, JSON logs;
    the key comes from the environment (`TEST_POLARIS_KEY`), as operators are told to do."""
    return {
        "data_dir": str(data_dir),
        "shutdown_timeout": "5s",
        "polaris": {
            "url": url,
            "project_id": "test-project",
            "connection": CONNECTION,
            "api_key": "${TEST_POLARIS_KEY}",
        },
        "sources": [{"name": "app", "include": [f"{log_dir}/*.log"], "scan_interval": "200ms"}],
        "batch": {"max_wait": "100ms"},
        "sender": {"retry_initial": "50ms", "retry_max": "500ms"},
        "log": {"level": "info", "format": "json"},
    }


def merged(base: Mapping[str, Any], changes: Mapping[str, Any]) -> Doc:
    """`base` with `changes` laid over it: tables merge key by key, anything else replaces.

    Two keys are shorthands: `source` merges into the first source ("app") and
    `extra_sources` appends sources after it."""
    out: Doc = {key: _copy(value) for key, value in base.items()}
    for key, value in changes.items():
        if key == "source":
            out["sources"][0] = merged(out["sources"][0], value)
        elif key == "extra_sources":
            out["sources"] = [*out["sources"], *(_copy(s) for s in value)]
        elif isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merged(out[key], value)
        else:
            out[key] = _copy(value)
    return out


def _copy(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_copy(v) for v in value]
    return value


def render_toml(doc: Mapping[str, Any]) -> str:
    """TOML text for `doc`: top-level scalars first (TOML requires it), then its tables."""
    lines: list[str] = []
    tables: list[tuple[str, Mapping[str, Any]]] = []
    for key, value in doc.items():
        if isinstance(value, Mapping):
            tables.append((f"[{_key(key)}]", value))
        elif _is_table_array(value):
            tables.extend((f"[[{_key(key)}]]", item) for item in value)
        else:
            lines.append(f"{_key(key)} = {_value(value)}")
    for header, table in tables:
        lines.append(header)
        lines.extend(f"{_key(k)} = {_value(v)}" for k, v in table.items())
    return "\n".join(lines) + "\n"


def _is_table_array(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, Mapping) for v in value)


def _key(key: str) -> str:
    bare = key.replace("_", "").replace("-", "").isalnum() and key.isascii()
    return key if bare else json.dumps(key)


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str | Path):
        return json.dumps(str(value))  # JSON's escapes are a subset of TOML's basic strings
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{_key(k)} = {_value(v)}" for k, v in value.items()) + " }"
    if isinstance(value, Sequence):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    raise TypeError(f"no TOML for {value!r}")
