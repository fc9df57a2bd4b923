"""Hostile and careless configs (issue 12): each is refused (exit 78, the key named, the key
never echoed, no traceback) or warned about by both `check` and `run`.

Refused: what would leak the key, send events to another path, spin the CPU, drop every line,
or crash later. Warned about: what works but is risky or likely a mistake (an admin endpoint
on all interfaces, a glob that matches nothing yet, an explicitly allowed plaintext URL).
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest

from agent.cli import EXIT_CONFIG, main

KEY = "pok_Hostile0Key0Zq8sLw3X"
CREDENTIALS = "alice:s3cr3tPassw0rd"


@dataclass(frozen=True, slots=True)
class Outcome:
    code: int
    out: str
    err: str


def config_text(
    tmp_path: Path,
    *,
    top: str = "",
    url: str = "https://example.us-east-1.aws.api.imply.io",
    project_id: str = "12375ffx",
    connection: str = "demo_connection",
    polaris: str = "",
    include: str | None = None,
    source: str = "",
    tail: str = "",
) -> str:
    logs = tmp_path / "logs"
    logs.mkdir(exist_ok=True)
    (logs / "app.log").touch()
    if include is None:
        include = f'["{logs}/*.log"]'
    if "data_dir" not in top:
        top = f'data_dir = "{tmp_path / "data"}"\n{top}'
    return f"""{top}
[polaris]
url = "{url}"
project_id = "{project_id}"
connection = "{connection}"
api_key = "${{POLARIS_API_KEY}}"
{polaris}

[[sources]]
name = "app"
include = {include}
{source}
{tail}
"""


def write(tmp_path: Path, text: str | bytes) -> Path:
    path = tmp_path / "agent.toml"
    if isinstance(text, str):
        text = text.encode()
    path.write_bytes(text)
    path.chmod(0o600)
    return path


def check(
    path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    key: str = KEY,
    extra: tuple[str, ...] = (),
) -> Outcome:
    """`polaris-agent check` in-process, through the CLI's own entry point."""
    monkeypatch.setenv("POLARIS_API_KEY", key)
    code = main(["check", "--config", str(path), *extra])
    out, err = capsys.readouterr()
    return Outcome(code, out, err)


def assert_refused(outcome: Outcome, key: str, *secrets: str) -> None:
    assert outcome.code == EXIT_CONFIG == 78, outcome.err
    assert f"  - {key}: " in outcome.err, outcome.err
    assert outcome.out == ""
    assert "Traceback" not in outcome.err
    for secret in (KEY, *secrets):
        assert secret not in outcome.err


# -- refused ---------------------------------------------------------------------------

REFUSED: list[tuple[str, dict[str, str], str]] = [
    ("plaintext_to_remote", {"url": "http://example.us-east-1.aws.api.imply.io"}, "polaris.url"),
    ("credentials_in_url", {"url": f"https://{CREDENTIALS}@example.imply.io"}, "polaris.url"),
    ("user_in_url", {"url": "https://alice@example.imply.io"}, "polaris.url"),
    ("query_in_url", {"url": "https://example.imply.io/?x=1"}, "polaris.url"),
    ("fragment_in_url", {"url": "https://example.imply.io#frag"}, "polaris.url"),
    ("dot_dot_in_url_path", {"url": "https://example.imply.io/a/../b"}, "polaris.url"),
    ("bad_port", {"url": "https://example.imply.io:99999"}, "polaris.url"),
    ("encoded_dot_dot_in_url", {"url": "https://example.imply.io/%2E%2e/b"}, "polaris.url"),
    ("source_connection_dot_dot", {"source": 'connection = ".."'}, "sources[0].connection"),
    ("bad_ipv6", {"url": "https://[::1/x"}, "polaris.url"),
    ("slash_in_project", {"project_id": "abc/../other"}, "polaris.project_id"),
    ("dot_dot_project", {"project_id": ".."}, "polaris.project_id"),
    ("query_in_project", {"project_id": "p?x=1"}, "polaris.project_id"),
    ("dot_dot_connection", {"connection": ".."}, "polaris.connection"),
    ("relative_data_dir", {"top": 'data_dir = "state/data"'}, "data_dir"),
    ("empty_data_dir", {"top": 'data_dir = ""'}, "data_dir"),
    ("nul_in_data_dir", {"top": 'data_dir = "/tmp/a\\u0000b"'}, "data_dir"),
    ("zero_checkpoint_interval", {"top": "checkpoint_interval = 0"}, "checkpoint_interval"),
    ("zero_scan_interval", {"source": "scan_interval = 0"}, "sources[0].scan_interval"),
    ("tiny_scan_interval", {"source": 'scan_interval = "1ms"'}, "sources[0].scan_interval"),
    ("zero_retry_initial", {"tail": "[sender]\nretry_initial = 0"}, "sender.retry_initial"),
    (
        "retry_max_below_initial",
        {"tail": '[sender]\nretry_initial = "10s"\nretry_max = "1s"'},
        "sender.retry_max",
    ),
    ("zero_max_line_bytes", {"source": "max_line_bytes = 0"}, "sources[0].max_line_bytes"),
    ("unclosed_bracket_glob", {"include": '["/var/log/[.log"]'}, "sources[0].include[0]"),
    ("unclosed_bracket_exclude", {"source": 'exclude = ["[x"]'}, "sources[0].exclude[0]"),
    ("nul_in_glob", {"include": '["/var/log/\\u0000.log"]'}, "sources[0].include[0]"),
    ("huge_duration", {"source": f'scan_interval = "{"9" * 400}s"'}, "sources[0].scan_interval"),
    ("huge_int_duration", {"top": f"checkpoint_interval = {'9' * 400}"}, "checkpoint_interval"),
    ("huge_size", {"tail": f'[spool]\nmax_size = "{"9" * 400}GB"'}, "spool.max_size"),
    (
        "huge_integer",
        {"source": "max_open_files = 99999999999999999999"},
        "sources[0].max_open_files",
    ),
    ("nan_field", {"source": "fields = { x = nan }"}, "sources[0].fields.x"),
    ("huge_int_field", {"source": "fields = { x = 99999999999999999999 }"}, "sources[0].fields.x"),
    ("tiny_request_timeout", {"polaris": "request_timeout = 0"}, "polaris.request_timeout"),
    # a name the agent writes into each event, also a static field's: a crash or a key twice
    ("static_time", {"source": 'fields = { timestamp = "x" }'}, "sources[0].fields.timestamp"),
    (
        "static_own_time_field",
        {"source": 'time_field = "ts"\nfields = { ts = 1 }'},
        "sources[0].fields.ts",
    ),
    ("id_is_the_time", {"source": 'event_id = "timestamp"'}, "sources[0].event_id"),
    (
        "static_id",
        {"source": 'event_id = true\nfields = { event_id = "x" }'},
        "sources[0].fields.event_id",
    ),
    (
        "static_message_of_text",
        {"source": 'format = "text"\nfields = { message = "x" }'},
        "sources[0].fields.message",
    ),
]


@pytest.mark.parametrize(("edits", "key"), [c[1:] for c in REFUSED], ids=[c[0] for c in REFUSED])
def test_hostile_values_are_refused_naming_the_key(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    edits: dict[str, str],
    key: str,
) -> None:
    outcome = check(write(tmp_path, config_text(tmp_path, **edits)), capsys, monkeypatch)
    assert_refused(outcome, key, CREDENTIALS, "s3cr3tPassw0rd")


@pytest.mark.parametrize(
    "api_key",
    ["", ":pok_abc", "pok:abc", "pök_€uro", "pok_abc\n", " pok_abc", "pok\x7fabc", "pok abc"],
    ids=["empty", "leading_colon", "colon", "non_latin1", "newline", "space", "del", "inner_space"],
)
def test_unusable_api_keys_are_refused_without_printing_them(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    api_key: str,
) -> None:
    outcome = check(write(tmp_path, config_text(tmp_path)), capsys, monkeypatch, key=api_key)
    assert_refused(outcome, "polaris.api_key")
    if api_key.strip():
        assert api_key.strip() not in outcome.err


def test_data_dir_that_is_a_file_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    occupied = tmp_path / "occupied"
    occupied.write_text("not a directory")
    for data_dir in (occupied, occupied / "below"):
        text = config_text(tmp_path, top=f'data_dir = "{data_dir}"')
        outcome = check(write(tmp_path, text), capsys, monkeypatch)
        assert_refused(outcome, "data_dir")
        assert "not a directory" in outcome.err


@pytest.mark.parametrize("content", [None, "not a certificate\n", "dir"])
def test_missing_or_bogus_ca_file_is_refused(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    content: str | None,
) -> None:
    ca = tmp_path / "ca.pem"
    if content == "dir":
        ca.mkdir()
    elif content is not None:
        ca.write_text(content)
    text = config_text(tmp_path, polaris=f'tls_ca_file = "{ca}"')
    assert_refused(check(write(tmp_path, text), capsys, monkeypatch), "polaris.tls_ca_file")


def test_a_non_utf8_config_file_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    raw = config_text(tmp_path).encode().replace(b"demo_connection", b"demo\xff\xfe")
    outcome = check(write(tmp_path, raw), capsys, monkeypatch)
    assert outcome.code == 78 and "not UTF-8" in outcome.err and "line 6" in outcome.err
    assert "Traceback" not in outcome.err


@pytest.mark.parametrize(
    "nested",
    [
        "x = " + "[" * 5000 + "]" * 5000,
        "x = " + "{a = " * 5000 + "1" + "}" * 5000,
        "[" + ".".join(["a"] * 5000) + "]\nb = 1",
        "x" + ".y" * 5000 + " = 1",
    ],
    ids=["arrays", "inline_tables", "table_header", "dotted_key"],
)
def test_toml_nested_5000_deep_is_a_clear_error(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    nested: str,
) -> None:
    outcome = check(write(tmp_path, config_text(tmp_path, top=nested)), capsys, monkeypatch)
    assert outcome.code == 78, outcome.err
    assert "nested" in outcome.err and "Traceback" not in outcome.err


def test_an_oversized_config_file_is_refused_without_reading_it_all(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    text = config_text(tmp_path) + "# " + "x" * (2 << 20) + "\n"
    outcome = check(write(tmp_path, text), capsys, monkeypatch)
    assert outcome.code == 78 and "larger than" in outcome.err


def test_every_problem_is_still_reported_in_one_go(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    text = config_text(
        tmp_path,
        url=f"http://{CREDENTIALS}@example.imply.io/?q#f",
        project_id="../x",
        top="checkpoint_interval = 0",
        source="max_line_bytes = 0",
    )
    outcome = check(write(tmp_path, text), capsys, monkeypatch, key="")
    for key in ("polaris.url", "polaris.project_id", "checkpoint_interval", "polaris.api_key"):
        assert f"  - {key}: " in outcome.err
    assert "sources[0].max_line_bytes" in outcome.err
    assert_refused(outcome, "polaris.url", CREDENTIALS, "s3cr3tPassw0rd")


def test_control_characters_in_unknown_keys_are_escaped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    text = config_text(tmp_path, top='"\\u001b[31mred" = 1')
    outcome = check(write(tmp_path, text), capsys, monkeypatch)
    assert outcome.code == 78 and "\x1b" not in outcome.err and "\\x1b[31mred" in outcome.err


def test_a_key_copied_into_another_setting_is_not_echoed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    text = config_text(tmp_path, source='scan_interval = "${POLARIS_API_KEY}"')
    assert_refused(check(write(tmp_path, text), capsys, monkeypatch), "sources[0].scan_interval")


def test_a_non_utf8_environment_value_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SERVICE", "caf\udce9")  # how os.environ holds the byte 0xE9
    text = config_text(tmp_path, source='fields = { service = "${SERVICE}" }')
    outcome = check(write(tmp_path, text), capsys, monkeypatch)
    assert_refused(outcome, "sources[0].fields.service")
    assert "SERVICE" in outcome.err


@pytest.mark.parametrize("pattern", ["/l/[ab].log", "/l/[!x]*.log", "/l/[]].log", "/l/**/*.log"])
def test_well_formed_globs_are_accepted(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    pattern: str,
) -> None:
    outcome = check(
        write(tmp_path, config_text(tmp_path, include=f'["{pattern}"]')), capsys, monkeypatch
    )
    assert outcome.code == 0, outcome.err


# -- warned about --------------------------------------------------------------------

WARNED: list[tuple[str, dict[str, str], str]] = [
    ("admin_on_all_interfaces", {"tail": '[api]\nlisten = "0.0.0.0:8686"'}, "api.listen"),
    ("admin_on_all_ipv6", {"tail": '[api]\nlisten = "[::]:8686"'}, "api.listen"),
    ("glob_matches_nothing", {"include": '["/nonexistent-h12/*.log"]'}, "sources[0].include[0]"),
    (
        "plaintext_explicitly_allowed",
        {"url": "http://polaris.internal:8080", "polaris": "allow_insecure_http = true"},
        "polaris.allow_insecure_http",
    ),
    ("tiny_max_line_bytes", {"source": "max_line_bytes = 64"}, "sources[0].max_line_bytes"),
]


@pytest.mark.parametrize(("edits", "key"), [c[1:] for c in WARNED], ids=[c[0] for c in WARNED])
def test_risky_values_are_warned_about_by_check(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    edits: dict[str, str],
    key: str,
) -> None:
    outcome = check(write(tmp_path, config_text(tmp_path, **edits)), capsys, monkeypatch)
    assert outcome.code == 0, outcome.err
    assert f"warning: {key}: " in outcome.err
    assert KEY not in outcome.out + outcome.err


def test_loopback_plaintext_and_loopback_admin_draw_no_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for url, listen in [("http://127.0.0.1:8080", "127.0.0.1:0"), ("http://[::1]:1", "[::1]:0")]:
        text = config_text(tmp_path, url=url, tail=f'[api]\nlisten = "{listen}"')
        outcome = check(write(tmp_path, text), capsys, monkeypatch)
        assert outcome.code == 0, outcome.err
        assert "warning" not in outcome.err


def test_check_output_redacts_secret_looking_values(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    text = config_text(
        tmp_path,
        source='fields = { service = "checkout", auth_token = "tok_live_123",'
        ' tenant = "${POLARIS_API_KEY}" }',
    )
    outcome = check(write(tmp_path, text), capsys, monkeypatch, extra=("--print",))
    assert outcome.code == 0, outcome.err
    fields = orjson.loads(outcome.out)["sources"][0]["fields"]
    assert fields == {"service": "checkout", "auth_token": "**********", "tenant": "**********"}


# -- the real CLI, and `run` ----------------------------------------------------------


def _cli(*args: str, key: str = KEY, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agent", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "POLARIS_API_KEY": key},
        timeout=timeout,
        check=False,
    )


def test_setup_and_run_refuse_credentials_in_the_url_without_echoing_them(tmp_path: Path) -> None:
    text = config_text(tmp_path, url=f"https://{CREDENTIALS}@127.0.0.1:1")
    path = write(tmp_path, text)
    for command in ("setup", "run", "check"):
        result = _cli(command, "--config", str(path))
        assert result.returncode == 78, (command, result.stderr)
        assert "polaris.url" in result.stderr and "credentials" in result.stderr
        assert CREDENTIALS not in result.stdout + result.stderr
        assert "s3cr3tPassw0rd" not in result.stdout + result.stderr
        assert "Traceback" not in result.stderr


def test_run_logs_the_same_warnings_as_structured_events(tmp_path: Path) -> None:
    """`run --once` with nothing to ship ends at once; its log names each risky key."""
    text = config_text(
        tmp_path,
        url="http://127.0.0.1:9",
        include='["/nonexistent-h12/*.log"]',
        tail='[api]\nlisten = "0.0.0.0:0"\n[log]\nformat = "json"',
    )
    result = _cli("run", "--once", "--config", str(write(tmp_path, text)))
    assert result.returncode == 0, result.stderr
    events = [orjson.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    warned = {e["key"] for e in events if e["event"] == "config_warning"}
    assert warned == {"api.listen", "sources[0].include[0]"}
    assert all(e["level"] == "warning" for e in events if e["event"] == "config_warning")
    assert KEY not in result.stderr + result.stdout


def test_a_journald_sources_static_field_named_like_its_time_field_is_refused() -> None:
    from pydantic import ValidationError

    from agent.config import SourceConfig

    with pytest.raises(ValidationError, match=r"fields\.timestamp\tis the time field"):
        SourceConfig.model_validate({"name": "j", "type": "journald", "fields": {"timestamp": 1}})
