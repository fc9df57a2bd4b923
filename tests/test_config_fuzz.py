"""`check` against random mutations of a valid config (issue 12): whatever the file says, the
answer is a config that passes (exit 0) or a list of problems (exit 78), never a traceback,
and the API key never appears in what is printed.

Mutations: delete a key, replace a value by one of another type or a hostile one (huge,
negative, zero, nan, inf, control characters, path tricks, `${VAR}`s, deep nesting), add an
unknown key; and byte-level damage to the TOML text. In-process through `agent.cli.main` for
speed; two runs of the real `python -m agent check` below.
"""

from __future__ import annotations

import copy
import math
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.cli import main

KEY = "pok_FuzzKey0Yq2Lm8Rt4Wv"
EXAMPLES = 250

# One directory for the whole module: hypothesis runs many examples per test function.
_WORK = Path(tempfile.mkdtemp(prefix="config-fuzz-"))
(_WORK / "logs").mkdir()
(_WORK / "logs" / "app.log").touch()


def valid_config() -> dict[str, Any]:
    """Every section and most keys, so that mutations reach every validator."""
    return {
        "data_dir": str(_WORK / "data"),
        "shutdown_timeout": "10s",
        "checkpoint_interval": "250ms",
        "polaris": {
            "url": "https://example.us-east-1.aws.api.imply.io",
            "project_id": "12375ffx",
            "connection": "demo_connection",
            "api_key": "${POLARIS_API_KEY}",
            "tls_verify": True,
            "request_timeout": "30s",
        },
        "sources": [
            {
                "name": "app",
                "include": [str(_WORK / "logs" / "*.log")],
                "exclude": ["*.gz"],
                "format": "json",
                "fields": {"service": "checkout", "shard": 3},
                "time_field": "event_time",
                "max_line_bytes": "64KiB",
                "scan_interval": "1s",
                "max_open_files": 64,
                "close_inactive": "5m",
            },
            {
                "name": "web",
                "include": [str(_WORK / "logs" / "*.log")],
                "format": "text",
                "parser": {"type": "regex", "pattern": r"^(?P<level>\w+) (?P<msg>.*)$"},
                "time": {"format": "iso8601", "timezone": "Europe/Berlin"},
                "multiline": {"start_pattern": r"^\d{4}-", "flush_timeout": "1s"},
                "kubernetes": {"format": "cri", "partial_max_bytes": "256KiB"},
                "charset": "latin-1",
                "event_id": True,
                "late_window": "30d",
            },
        ],
        "batch": {"max_bytes": 1_000_000, "max_wait": "500ms"},
        "queue": {"max_bytes": "1MiB"},
        "sender": {"workers": 4, "compression": "gzip", "retry_initial": "200ms"},
        "spool": {"enabled": True, "after": "30s", "max_size": "1GiB", "when_full": "block"},
        "api": {"listen": "127.0.0.1:0"},
        "log": {"level": "info", "format": "json"},
        "job": {
            "table": "app_logs",
            "input_schema": [{"name": "event_time", "data_type": "string"}],
            "mappings": [{"column": "__time", "expression": 'TIME_PARSE("event_time")'}],
            "late_message_rejection_period": "P30D",
        },
    }


# -- a TOML writer for any value (only inline tables: mutations may put a table anywhere) --


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return toml_string(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    assert isinstance(value, dict)
    return "{" + ", ".join(f"{toml_string(k)} = {toml_value(v)}" for k, v in value.items()) + "}"


def toml_string(text: str) -> str:
    out = []
    for char in text:
        if char in '"\\' or ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\u{ord(char):04X}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def toml_document(config: dict[str, Any]) -> str:
    return "".join(f"{toml_string(k)} = {toml_value(v)}\n" for k, v in config.items())


# -- mutations --------------------------------------------------------------------------

Path_ = tuple[str | int, ...]


def paths(value: Any, prefix: Path_ = ()) -> Iterator[Path_]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield (*prefix, key)
            yield from paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield (*prefix, index)
            yield from paths(item, (*prefix, index))


def parent_of(config: dict[str, Any], path: Path_) -> Any:
    node: Any = config
    for part in path[:-1]:
        node = node[part]
    return node


def nested(depth: int) -> Any:
    value: Any = 1
    for level in range(depth):
        value = [value] if level % 2 else {"n": value}
    return value


text_chars = st.characters(blacklist_categories=("Cs",))  # TOML cannot hold surrogates
hostile_strings = st.sampled_from(
    [
        "",
        " ",
        "0",
        "-1s",
        "0ms",
        "1ms",
        "nan",
        "inf",
        "1e309",
        "9" * 400 + "s",
        "9" * 400 + "GB",
        "..",
        "../../etc",
        "a/b",
        "/",
        "[.log",
        "/var/log/[.log",
        "*",
        "/**/*.nope",
        "http://example.com",
        "https://user:pw@example.com",
        "https://example.com/?q#f",
        "https://[::1",
        "0.0.0.0:8686",
        "[::]:0",
        ":",
        "${POLARIS_API_KEY}",
        "x${POLARIS_API_KEY}y",
        "${UNSET_FUZZ_VAR}",
        "${UNSET_FUZZ_VAR:-5s}",
        "$$",
        "\x00",
        "\x1b[31m",
        "é€😀",
        "\u202e",
        "utf-16",
        "idna",
        "rot13",
        "Europe/../../etc/passwd",
        "(?P<x>",
        "%Q%",
        "P",
        "PT",
    ]
)
values = st.recursive(
    st.one_of(
        st.booleans(),
        st.integers(),
        st.sampled_from([0, -1, 1, 2**63, -(2**63) - 1, 10**30, 10**400, 1023, 1024, 1_000_001]),
        st.floats(allow_nan=True, allow_infinity=True),
        hostile_strings,
        st.text(text_chars, max_size=40),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(text_chars, max_size=8), inner)
    ),
    max_leaves=8,
) | st.integers(1, 40).map(nested)


@st.composite
def mutated(draw: st.DrawFn) -> dict[str, Any]:
    config = valid_config()
    for _ in range(draw(st.integers(1, 4))):
        where = list(paths(config))
        if not where:
            break
        path = draw(st.sampled_from(where))
        parent = parent_of(config, path)
        action = draw(st.sampled_from(["delete", "replace", "replace", "add"]))
        if action == "delete":
            del parent[path[-1]]
        elif action == "replace":
            parent[path[-1]] = draw(values)
        elif isinstance(parent, dict):
            parent[draw(st.text(text_chars, min_size=1, max_size=12))] = draw(values)
        else:
            parent.append(draw(values))
    return config


def run_check(text: bytes, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    path = _WORK / "agent.toml"
    path.write_bytes(text)
    path.chmod(0o600)
    code = main(["check", "--config", str(path)])  # anything but a return is a failure
    out, err = capsys.readouterr()
    return code, out + err


def assert_clear(code: int, output: str) -> None:
    assert code in (0, 78), output
    assert "Traceback" not in output
    assert KEY not in output
    if code == 78:
        assert "invalid config" in output and "  - " in output


# -- the fuzz ---------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POLARIS_API_KEY", KEY)
    monkeypatch.delenv("UNSET_FUZZ_VAR", raising=False)


def test_the_unmutated_config_passes(capsys: pytest.CaptureFixture[str]) -> None:
    code, output = run_check(toml_document(valid_config()).encode(), capsys)
    assert code == 0, output


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(config=mutated())
def test_any_mutated_config_is_accepted_or_refused_clearly(
    config: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    code, output = run_check(toml_document(config).encode(), capsys)
    assert_clear(code, output)


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    edits=st.lists(
        st.tuples(st.integers(0, 10_000), st.integers(0, 8), st.binary(max_size=8)),
        min_size=1,
        max_size=4,
    )
)
def test_damaged_toml_bytes_are_refused_clearly(
    edits: list[tuple[int, int, bytes]], capsys: pytest.CaptureFixture[str]
) -> None:
    data = bytearray(toml_document(valid_config()).encode())
    for at, cut, insert in edits:
        at %= len(data) + 1
        data[at : at + cut] = insert
    code, output = run_check(bytes(data), capsys)
    assert_clear(code, output)


def test_a_copy_of_the_config_is_not_changed_by_mutating() -> None:
    """The strategies mutate a fresh config each time (a shared one would drift)."""
    first = valid_config()
    second = copy.deepcopy(first)
    del first["polaris"]
    assert "polaris" in second and "polaris" in valid_config()


# -- the real command ------------------------------------------------------------------


@pytest.mark.parametrize(
    "damage",
    [
        lambda c: c["polaris"].update(url="https://u:p@h", api_key=":${POLARIS_API_KEY}"),
        lambda c: c.update(checkpoint_interval=float("nan"), data_dir=nested(30)),
    ],
    ids=["credentials_and_bad_key", "nan_and_deep"],
)
def test_the_real_cli_answers_78_without_a_traceback(damage: Any, tmp_path: Path) -> None:
    config = valid_config()
    damage(config)
    path = tmp_path / "agent.toml"
    path.write_text(toml_document(config))
    result = subprocess.run(
        [sys.executable, "-m", "agent", "check", "--config", str(path)],
        capture_output=True,
        text=True,
        env={**os.environ, "POLARIS_API_KEY": KEY},
        timeout=60,
        check=False,
    )
    assert result.returncode == 78, result.stderr
    assert "Traceback" not in result.stderr and KEY not in result.stdout + result.stderr
    assert "  - " in result.stderr
