"""`polaris-agent check`: validate a config, say what it will do in a few lines, and warn;
with `--environment`, check this machine and the endpoint too, in the style of `vector validate`.

Validation problems are raised as :class:`agent.config.ConfigError` (the CLI prints every one
with its key path and exits 78, EX_CONFIG). The warnings do not fail the check: they flag
configs that work but are unsafe or likely mistakes (SPEC "Security"); `run` logs the same
ones at start (:func:`agent.config.startup_warnings`).

Output: a short summary on stdout (default); nothing but problems and warnings with `--quiet`
(what the systemd unit runs as ExecStartPre and ExecReload, so the journal gets no config
dump per start); the whole resolved config as JSON, secrets redacted, with `--print`.

`--environment` (exit 1 when something fails): every include glob matches a file, `data_dir`
is writable, and Polaris answers and accepts the key. The endpoint check is one GET of each
configured connection (`GET /v1/projects/{id}/connections/{name}`): read-only and sends no
event (a zero-event POST to the Events API is not documented as harmless). 200 means the key
is accepted and the connection exists; 401 a refused key; 404 a missing connection (`setup`
creates it); 403 a key that works but may not read connections (sending needs only the
Events API), said as a warning.
"""

from __future__ import annotations

import sys
from pathlib import Path

import orjson

from agent.config import (
    Config,
    ConfigError,
    Problem,
    config_warnings,
    file_warnings,
    holds_literal_secret,
    load_config,
    redact,
)
from agent.state.files import UnsafeState, check_private_dir
from agent.state.layout import dead_letter_dir, spool_dir

__all__ = ["check_main", "file_warnings", "holds_literal_secret", "render_redacted"]


EXIT_OK = 0
EXIT_ENVIRONMENT = 1


def check_main(
    path: Path, *, quiet: bool = False, full: bool = False, environment: bool = False
) -> int:
    """Warn, validate (raising ConfigError), say what the config does; return the exit code."""
    for warning in file_warnings(path):  # said even when the config is refused
        print(f"warning: {warning}", file=sys.stderr)
    config = load_config(path)
    if problems := state_problems(config.data_dir) + journal_problems(config):
        raise ConfigError(str(path), problems)
    warnings = config_warnings(config)
    if environment:  # an unmatched glob is a failure below, not a warning here
        warnings = [w for w in warnings if not _is_glob_warning(w.key)]
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if full:
        _write_utf8(render_redacted(config))
        print(f"config ok: {path}", file=sys.stderr)
    elif not quiet:
        _write_utf8(summary(path, config))
    if not environment:
        return EXIT_OK
    from agent.envcheck import check_environment

    failed = False
    for finding in check_environment(config):
        failed = failed or finding.failed
        if finding.failed or finding.warning or not quiet:
            stream = sys.stderr if (finding.failed or finding.warning) else sys.stdout
            print(finding.line(), file=stream)
    return EXIT_ENVIRONMENT if failed else EXIT_OK


def journal_problems(config: Config) -> list[Problem]:
    """A journald source on a host without journalctl. The journal's modules are imported
    only for a config that has such a source: a file-only check does not load them."""
    if not any(source.type == "journald" for source in config.sources):
        return []
    from agent.journal.runner import journalctl_problems

    return journalctl_problems(config)


def _is_glob_warning(key: str) -> bool:
    return key.startswith("sources[") and ".include[" in key


def summary(path: Path, config: Config) -> str:
    """A few lines: what will be read, where it goes, where state lives."""
    from agent.encode.times import describe_files  # here: `check --quiet` reads no lines

    lines = [f"config ok: {path}"]
    for source in config.sources:
        what = ", ".join(source.include) if source.include else getattr(source, "type", "")
        connection = source.connection or config.polaris.connection
        lines.append(f"  source {source.name}: {what} -> connection {connection}")
        if (time_from := describe_files(source)) is not None:
            lines.append(f"    event time: {time_from}")
    lines.append(f"  polaris: {config.polaris.url} project {config.polaris.project_id}")
    spool = f"spool up to {config.spool.max_size} bytes" if config.spool.enabled else "no spool"
    lines.append(f"  data_dir: {config.data_dir} ({spool})")
    if config.api.listen:
        lines.append(f"  admin endpoint: http://{config.api.listen}")
    lines.append("  (check --print shows the whole resolved config, secrets redacted)")
    return "\n".join(lines) + "\n"


def state_problems(data_dir: Path) -> list[Problem]:
    """What `run` would refuse about the state directories that exist already (it creates
    missing ones 0700): said by `check` too, so ExecStartPre fails before the start does."""
    if not data_dir.exists():
        return []
    problems = []
    for directory in (data_dir, spool_dir(data_dir), dead_letter_dir(data_dir)):
        if directory is not data_dir and not (directory.exists() or directory.is_symlink()):
            continue
        try:
            check_private_dir(directory, follow=directory is data_dir)
        except UnsafeState as exc:
            problems.append(Problem("data_dir", str(exc)))
    return problems


def render_redacted(config: Config) -> str:
    """The resolved config as indented JSON; secrets (``SecretStr``) show as ``**********``, as
    does any value named like a password or token, or equal to the API key or client secret."""
    secrets = frozenset(config.polaris.secrets)
    dumped = redact(config.model_dump(mode="json"), secrets)
    return orjson.dumps(dumped, option=orjson.OPT_INDENT_2).decode() + "\n"


def _write_utf8(text: str) -> None:
    """Bytes to stdout: a non-ASCII value must not fail `check` under a Latin-1 locale."""
    binary = getattr(sys.stdout, "buffer", None)
    if binary is None:
        sys.stdout.write(text)
        return
    sys.stdout.flush()
    binary.write(text.encode())
    binary.flush()
