"""`polaris-agent check`: validate a config, print it resolved with secrets redacted, and warn.

Validation problems are raised as :class:`agent.config.ConfigError` (the CLI prints every one
with its key path and exits 78, EX_CONFIG). The warnings do not fail the check: they flag
configs that work but are unsafe or likely mistakes (SPEC "Security"); `run` logs the same
ones at start (:func:`agent.config.startup_warnings`).
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


def check_main(path: Path) -> int:
    """Warn, validate (raising ConfigError), print the resolved config; return the exit code."""
    for warning in file_warnings(path):  # said even when the config is refused
        print(f"warning: {warning}", file=sys.stderr)
    config = load_config(path)
    if problems := state_problems(config.data_dir):
        raise ConfigError(str(path), problems)
    for warning in config_warnings(config):
        print(f"warning: {warning}", file=sys.stderr)
    _write_utf8(render_redacted(config))
    print(f"config ok: {path}", file=sys.stderr)
    return 0


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
    does any value named like a password or token, or equal to the API key."""
    secrets = frozenset({config.polaris.api_key.get_secret_value()})
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
