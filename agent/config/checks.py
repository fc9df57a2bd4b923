"""What works but is risky, said by both ``check`` and ``run``; and redaction for ``check``."""

from __future__ import annotations

import glob
import re
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from agent.config.listen import ListenAddress
from agent.config.loading import read_raw
from agent.config.models import Config, SourceConfig, job_windows
from agent.config.polaris import loopback
from agent.config.problems import REDACTED, ConfigError, ConfigWarning
from agent.parse.backtracking import ADVICE, may_backtrack_badly

_SECRET_NAME = re.compile(r"(?i)pass|secret|token|api[_-]?key|auth|credential|private")
_NOT_SECRET = frozenset({"token_url"})  # polaris.oauth's: an address, shown (credentials aside)
SHORT_LINE_BYTES = 1024
"""``max_line_bytes`` below 1 KiB is accepted with a warning: most lines will not fit."""


def config_warnings(config: Config) -> list[ConfigWarning]:
    """Settings that work but are risky, or globs that match nothing (yet)."""
    warnings: list[ConfigWarning] = []
    polaris = config.polaris
    if not polaris.tls_verify:
        warnings.append(
            ConfigWarning("polaris.tls_verify", "false: TLS certificates will NOT be verified")
        )
    if polaris.url.startswith("http://") and not loopback(polaris.host):
        warnings.append(
            ConfigWarning(
                "polaris.allow_insecure_http",
                f"true: the API key and the events go to {polaris.host} unencrypted",
            )
        )
    if config.api.listen:
        warnings.extend(_listen_warnings(config.api.listen))
    for index, source in enumerate(config.sources):
        warnings.extend(_source_warnings(f"sources[{index}]", source))
        warnings.extend(_wider_than_job(f"sources[{index}]", source, config))
    return warnings


def _wider_than_job(key: str, source: SourceConfig, config: Config) -> Iterator[ConfigWarning]:
    """A window wider than the job's rejection period lets through events Polaris drops."""
    job = job_windows(config.job)
    for window, period in (
        ("late_window", "late_message_rejection_period"),
        ("early_window", "early_message_rejection_period"),
    ):
        limit = job.get(window)
        if limit is not None and getattr(source, window) > limit:
            yield ConfigWarning(
                f"{key}.{window}",
                f"wider than job.{period}: events between the two are sent, and the job"
                " rejects them (they are neither stored nor dead-lettered);"
                f" leave {window} unset to follow the job",
            )


def _listen_warnings(listen: str) -> Iterator[ConfigWarning]:
    host = ListenAddress.parse(listen).host
    if not loopback(host):
        yield ConfigWarning(
            "api.listen",
            f"{listen} is reachable from other machines, and /metrics and /status have no"
            " authentication; bind 127.0.0.1 unless a Kubernetes probe needs otherwise",
        )


def _source_warnings(key: str, source: SourceConfig) -> Iterator[ConfigWarning]:
    for index, pattern in enumerate(source.include):
        if next(glob.iglob(pattern, recursive=True), None) is None:
            yield ConfigWarning(
                f"{key}.include[{index}]",
                f"{pattern} matches no file this user can see (yet): nothing to ship",
            )
    if source.max_line_bytes < SHORT_LINE_BYTES:
        yield ConfigWarning(
            f"{key}.max_line_bytes",
            f"{source.max_line_bytes} bytes: longer lines are dead-lettered, not shipped",
        )
    yield from _pattern_warnings(key, source)


def _pattern_warnings(key: str, source: SourceConfig) -> Iterator[ConfigWarning]:
    """A user pattern a line can make take exponential time (`agent.parse.backtracking`)."""
    patterns = {
        "parser.pattern": getattr(source.parser, "pattern", None),
        "multiline.start_pattern": getattr(source.multiline, "start_pattern", None),
    }
    for name, pattern in patterns.items():
        if isinstance(pattern, str) and may_backtrack_badly(pattern):
            yield ConfigWarning(f"{key}.{name}", ADVICE)


def file_warnings(path: Path) -> list[ConfigWarning]:
    """Warnings about the file itself: a literal API key that other users can read."""
    try:
        mode = path.stat().st_mode
        raw = read_raw(path)
    except (OSError, ValueError, ConfigError):
        return []  # load_config reports why the file cannot be used
    polaris = raw.get("polaris")
    polaris = polaris if isinstance(polaris, dict) else {}
    oauth = polaris.get("oauth")
    oauth = oauth if isinstance(oauth, dict) else {}
    found = [
        (key, name, variable)
        for key, name, variable, value in (
            ("polaris.api_key", "api_key", "POLARIS_API_KEY", polaris.get("api_key")),
            (
                "polaris.oauth.client_secret",
                "client_secret",
                "POLARIS_CLIENT_SECRET",
                oauth.get("client_secret"),
            ),
        )
        if isinstance(value, str) and holds_literal_secret(value)
    ]
    if not mode & (stat.S_IRGRP | stat.S_IROTH):
        return []
    return [
        ConfigWarning(
            key,
            f"{path} holds a literal {'key' if name == 'api_key' else 'secret'} and is"
            f" readable by group/others (mode {stat.S_IMODE(mode):04o}): run"
            f' `chmod 600 {path}`, or better, set {name} = "${{{variable}}}" and keep'
            " it in the environment",
        )
        for key, name, variable in found
    ]


def startup_warnings(path: Path, config: Config) -> list[ConfigWarning]:
    """Everything ``check`` warns about, for ``run`` to log at start."""
    return [*file_warnings(path), *config_warnings(config)]


_REFERENCE = re.compile(r"\$\{[A-Za-z_][A-Za-z0-9_]*(?::-)?\}")
"""``${VAR}`` without a default: the value comes from the environment, not the file."""


def holds_literal_secret(value: str) -> bool:
    """True unless the value is made only of ``${VAR}`` references (no literal text, no
    ``${VAR:-default}`` whose default would itself be a key written in the file)."""
    return bool(_REFERENCE.sub("", value).strip())


def redact(value: Any, secrets: frozenset[str]) -> Any:
    """``value`` (a dumped config) with secret-looking strings replaced by REDACTED: under a
    key named like a password or token, or a URL with credentials; the API key is replaced
    wherever it occurs."""
    if isinstance(value, dict):
        return {
            k: REDACTED
            if isinstance(v, str) and _SECRET_NAME.search(k) and k not in _NOT_SECRET
            else redact(v, secrets)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [redact(v, secrets) for v in value]
    if isinstance(value, str):
        if re.search(r"://[^/@\s]*@", value):
            return REDACTED
        for secret in secrets:
            value = value.replace(secret, REDACTED) if secret else value
    return value
