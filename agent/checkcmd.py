"""`polaris-agent check`: validate a config, print it resolved with secrets redacted, and warn.

Validation problems are raised as :class:`agent.config.ConfigError` (the CLI prints every one
with its key path and exits 2). The warnings here do not fail the check: they flag configs
that work but are unsafe (SPEC "Security").
"""

from __future__ import annotations

import re
import stat
import sys
import tomllib
from pathlib import Path

import orjson

from agent.config import Config, load_config

_REFERENCE = re.compile(r"\$\{[A-Za-z_][A-Za-z0-9_]*(?::-)?\}")
"""``${VAR}`` without a default: the value comes from the environment, not the file."""


def check_main(path: Path) -> int:
    """Warn, validate (raising ConfigError), print the resolved config; return the exit code."""
    for warning in file_warnings(path):
        print(f"warning: {warning}", file=sys.stderr)
    config = load_config(path)
    for warning in config_warnings(config):
        print(f"warning: {warning}", file=sys.stderr)
    sys.stdout.write(render_redacted(config))
    print(f"config ok: {path}", file=sys.stderr)
    return 0


def render_redacted(config: Config) -> str:
    """The resolved config as indented JSON; secrets (``SecretStr``) show as ``**********``."""
    return orjson.dumps(config.model_dump(mode="json"), option=orjson.OPT_INDENT_2).decode() + "\n"


def file_warnings(path: Path) -> list[str]:
    """Warnings about the file itself: a literal API key that other users can read."""
    try:
        mode = path.stat().st_mode
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return []  # load_config reports why the file cannot be used
    polaris = raw.get("polaris")
    api_key = polaris.get("api_key") if isinstance(polaris, dict) else None
    if not isinstance(api_key, str) or not holds_literal_secret(api_key):
        return []
    if not mode & (stat.S_IRGRP | stat.S_IROTH):
        return []
    return [
        f"{path} holds a literal polaris.api_key and is readable by group/others"
        f" (mode {stat.S_IMODE(mode):04o}): run `chmod 600 {path}`, or better,"
        ' set api_key = "${POLARIS_API_KEY}" and keep the key in the environment'
    ]


def config_warnings(config: Config) -> list[str]:
    """Warnings about valid but unsafe settings."""
    if not config.polaris.tls_verify:
        return ["polaris.tls_verify = false: TLS certificates will NOT be verified"]
    return []


def holds_literal_secret(value: str) -> bool:
    """True unless the value is made only of ``${VAR}`` references (no literal text, no
    ``${VAR:-default}`` whose default would itself be a key written in the file)."""
    return bool(_REFERENCE.sub("", value).strip())
