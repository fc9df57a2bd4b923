"""Every config key the model accepts is in the README's configuration table, so the reference
cannot drift from the code: add a key without documenting it and this fails, naming it."""

from __future__ import annotations

import re
import types
import typing
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from agent.config import Config

README = Path(__file__).resolve().parent.parent / "README.md"


def model_keys(model: type[BaseModel], prefix: str = "") -> set[str]:
    keys: set[str] = set()
    for name, field in model.model_fields.items():
        nested, is_list = _nested_model(field.annotation)
        if nested is None:
            keys.add(prefix + name)
        else:
            keys |= model_keys(nested, f"{prefix}{name}{'[]' if is_list else ''}.")
    return keys


def _nested_model(annotation: Any) -> tuple[type[BaseModel] | None, bool]:
    origin = typing.get_origin(annotation)
    if origin in (list, tuple):
        inner, _ = _nested_model(typing.get_args(annotation)[0])
        return inner, True
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            found, is_list = _nested_model(arg)
            if found is not None:
                return found, is_list
        return None, False
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation, False
    return None, False


def documented_keys(readme: str) -> set[str]:
    """Keys named in the first column of the table: `a.b`, then bare names share its prefix."""
    keys: set[str] = set()
    for row in re.findall(r"^\| (`[^|]+) \|", readme, flags=re.M):
        prefix = ""
        for token in re.findall(r"`([^`]+)`", row):
            if "." in token:
                prefix = token.rsplit(".", 1)[0] + "."
                keys.add(token)
            else:
                keys.add(prefix + token)
    return keys


def test_every_config_key_is_in_the_readme_table() -> None:
    readme = README.read_text()
    documented = documented_keys(readme)
    job_row = re.search(r"^\| `job\.\*` \|.*$", readme, flags=re.M)
    assert job_row is not None
    documented |= {f"job.{name}" for name in re.findall(r"`(\w+)`", job_row.group(0))}

    missing = sorted(
        key
        for key in model_keys(Config)
        if key not in documented and not any(key.startswith(d + "[].") for d in documented)
    )

    assert missing == [], f"config keys missing from README's table: {missing}"


def test_the_check_can_fail() -> None:
    assert "sources[].scan_interval" in model_keys(Config)
    assert "sources[].scan_interval" not in documented_keys("| `sources[].name` | x | y |\n")
