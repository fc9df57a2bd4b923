"""Reading a config file: bounded TOML, ``${VAR}`` interpolation, validation, and the problems
this machine finds (a data_dir that cannot be a directory, a CA file that cannot be loaded)."""

from __future__ import annotations

import os
import re
import stat
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import (
    ValidationError,
)

from agent.config.models import Config
from agent.config.problems import _AT, REDACTED, ConfigError, Problem, key_path
from agent.schema import is_utf8

_INTERPOLATION = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_VALIDATOR_STEP = re.compile(r"^[a-z][a-z_-]*\[")
"""pydantic's own steps in an error's location (``function-after[...]``), not config keys."""
MAX_CONFIG_BYTES = 1 << 20
"""A config file larger than 1 MiB is refused unread (``check -c /dev/zero`` must end)."""
MAX_NESTING = 16
"""Tables and arrays nested deeper than this are refused; the deepest real key has depth 4."""


def load_config(path: Path, environ: Mapping[str, str] | None = None) -> Config:
    """Read, interpolate and validate ``path``; raise :class:`ConfigError` listing every problem."""
    raw = read_raw(path)
    config = parse_config(raw, str(path), os.environ if environ is None else environ)
    problems = host_problems(config)
    if problems:
        raise ConfigError(str(path), problems)
    return config


def read_raw(path: Path) -> dict[str, Any]:
    """The TOML table in ``path``, or ConfigError: unreadable, larger than MAX_CONFIG_BYTES,
    not UTF-8, not TOML, or nested deeper than MAX_NESTING."""
    source = str(path)
    try:
        with path.open("rb") as file:
            data = file.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise ConfigError(source, [Problem("", f"cannot read: {exc.strerror}")]) from None
    except ValueError:  # a NUL in the path
        raise ConfigError(source, [Problem("", "cannot read: invalid file name")]) from None
    if len(data) > MAX_CONFIG_BYTES:
        problem = f"larger than {MAX_CONFIG_BYTES} bytes: not a config file"
        raise ConfigError(source, [Problem("", problem)])
    try:
        text = data.decode("utf-8").removeprefix("\ufeff")  # an editor's byte-order mark
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        problem = f"not UTF-8 text: invalid byte at line {line}"
        raise ConfigError(source, [Problem("", problem)]) from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(source, [Problem("", f"not valid TOML: {exc}")]) from None
    except RecursionError:  # tomllib recurses per nested array or inline table
        raise ConfigError(source, [Problem("", _TOO_DEEP)]) from None
    too_deep = _deeper_than(raw, MAX_NESTING)
    if too_deep is not None:
        raise ConfigError(source, [Problem(too_deep, _TOO_DEEP)])
    return raw


_TOO_DEEP = f"nested too deeply (tables and arrays at most {MAX_NESTING} levels)"


def _deeper_than(raw: dict[str, Any], limit: int) -> str | None:
    """The path of the first value nested deeper than ``limit``; iterative, so that the check
    itself cannot exhaust the stack (dotted keys nest without tomllib recursing)."""
    stack: list[tuple[Any, tuple[str | int, ...]]] = [(raw, ())]
    while stack:
        value, path = stack.pop()
        if len(path) > limit:
            return key_path(path[:limit])
        if isinstance(value, dict):
            stack.extend((v, (*path, k)) for k, v in value.items())
        elif isinstance(value, list):
            stack.extend((v, (*path, i)) for i, v in enumerate(value))
    return None


def parse_config(raw: dict[str, Any], source: str, environ: Mapping[str, str]) -> Config:
    problems: list[Problem] = []
    resolved = _interpolate(raw, (), environ, problems)
    secrets = _secrets(resolved)
    try:
        config = Config.model_validate(resolved)
    except ValidationError as exc:
        # A key whose ${VAR} is unset is reported once, for the variable, not again for the
        # empty string that stood in for it.
        unresolved = {p.path for p in problems}
        validation = (p for error in exc.errors() for p in _problems(error))
        problems.extend(p for p in validation if p.path not in unresolved)
        raise ConfigError(source, _scrubbed(problems, secrets)) from None
    if problems:
        raise ConfigError(source, _scrubbed(problems, secrets))
    return config


def _secrets(resolved: Any) -> list[str]:
    """The resolved API key and OAuth client secret, wherever they ended up, must not be
    quoted by any message."""
    polaris = resolved.get("polaris") if isinstance(resolved, dict) else None
    key = polaris.get("api_key") if isinstance(polaris, dict) else None
    oauth = polaris.get("oauth") if isinstance(polaris, dict) else None
    secret = oauth.get("client_secret") if isinstance(oauth, dict) else None
    return [s for s in (key, secret) if isinstance(s, str) and len(s) >= 4]


def _scrubbed(problems: list[Problem], secrets: list[str]) -> list[Problem]:
    def scrub(text: str) -> str:
        for secret in secrets:
            text = text.replace(secret, REDACTED)
        return text

    return [Problem(scrub(p.path), scrub(p.message)) for p in problems]


def host_problems(config: Config) -> list[Problem]:
    """What this machine says against a valid config: a data_dir that cannot be a directory,
    a CA file that cannot be loaded. Kept out of the models so that tests and tools can build
    a Config for another machine."""
    problems = []
    data_dir = _not_a_directory(config.data_dir)
    if data_dir is not None:
        problems.append(Problem("data_dir", data_dir))
    if config.polaris.tls_ca_file is not None:
        ca = _ca_problem(config.polaris.tls_ca_file)
        if ca is not None:
            problems.append(Problem("polaris.tls_ca_file", ca))
    return problems


def _not_a_directory(path: Path) -> str | None:
    """Why ``path`` cannot be (made) a directory: it, or its nearest existing ancestor, is
    something else."""
    for candidate in (path, *path.parents):
        try:
            mode = candidate.stat().st_mode
        except (FileNotFoundError, NotADirectoryError):  # the ancestor that is not says so
            continue
        except OSError as exc:
            return f"cannot use {candidate}: {exc.strerror}"
        if stat.S_ISDIR(mode):
            return None
        return f"{candidate} exists and is not a directory"
    return None


def _ca_problem(path: Path) -> str | None:
    import ssl  # here: only a config naming a CA file pays for it before `run` imports aiohttp

    try:
        ssl.create_default_context(cafile=str(path))
    except ssl.SSLError as exc:  # before OSError: it is one
        return f"{path} holds no usable PEM certificate ({exc.reason or 'unreadable'})"
    except OSError as exc:
        return f"cannot read {path}: {exc.strerror}"
    return None


def _interpolate(
    value: Any, path: tuple[str | int, ...], environ: Mapping[str, str], problems: list[Problem]
) -> Any:
    if isinstance(value, dict):
        return {k: _interpolate(v, (*path, k), environ, problems) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v, (*path, i), environ, problems) for i, v in enumerate(value)]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, default = match.group(1), match.group(2)
        if name in environ:
            if not is_utf8(environ[name]):
                problems.append(
                    Problem(key_path(path), f"environment variable {name} is not UTF-8 text")
                )
                return ""
            return environ[name]
        if default is not None:
            return default
        problems.append(Problem(key_path(path), f"environment variable {name} is not set"))
        return ""

    return _INTERPOLATION.sub(substitute, value)


def _problems(error: Any) -> list[Problem]:
    loc = tuple(p for p in error["loc"] if not (isinstance(p, str) and _VALIDATOR_STEP.match(p)))
    kind = error["type"]
    if kind == "extra_forbidden":
        return [Problem(key_path(loc), "unknown key")]
    if kind == "missing":
        return [Problem(key_path(loc), "required key is missing")]
    message = str(error["msg"]).removeprefix("Value error, ")
    if not message.startswith(_AT):
        return [Problem(key_path(loc), message)]
    base = key_path(loc)
    problems = []
    for line in message.split("\n"):
        sub, _, why = line.removeprefix(_AT).partition("\t")
        problems.append(Problem(f"{base}.{sub}" if base else sub, why))
    return problems
