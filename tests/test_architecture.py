"""The import rules of ARCHITECTURE.md, as data, checked against every module in agent/.

Each module's imports are read with `ast` (nothing is imported to check them), including
imports inside functions and under `if TYPE_CHECKING:`: a layer is crossed by a type too.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "agent"

FOUNDATION = frozenset(
    {"agent", "agent.records", "agent.snapshots", "agent.schema", "agent.ops.events"}
)
"""Values and the event API every layer may use; they import nothing else of the agent."""

STAGES = (
    "agent.tail",
    "agent.journal",
    "agent.kube",
    "agent.encode",
    "agent.batch",
    "agent.ship",
    "agent.state",
)
WIRING = (
    "agent.runtime",
    "agent.delivery",
    "agent.readers",
    "agent.reload",
    "agent.once",
    "agent.report",
)
COMMANDS = (
    "agent.cli",
    "agent.checkcmd",
    "agent.envcheck",
    "agent.statuscmd",
    "agent.deadlettercmd",
    "agent.demo",
    "agent.__main__",
)

ALLOWED: dict[str, tuple[str, ...]] = {
    # unit (a package or a module) -> what it may import besides itself and FOUNDATION
    "agent.parse": (),
    "agent.config": ("agent.parse",),
    "agent.state": (),
    "agent.encode": ("agent.config", "agent.parse"),
    "agent.tail": ("agent.config", "agent.parse", "agent.encode", "agent.state"),
    "agent.journal": ("agent.config", "agent.parse", "agent.encode", "agent.state"),
    "agent.kube": ("agent.config", "agent.parse"),
    "agent.batch": ("agent.config",),
    "agent.ship": ("agent.config", "agent.state"),
    "agent.polaris": ("agent.config", "agent.ship"),
    "agent.ops": ("agent.config",),
    "agent.devserver": (),
    **{module: (*STAGES, "agent.parse", "agent.config", "agent.ops", *WIRING) for module in WIRING},
    **{module: ("agent",) for module in COMMANDS},  # anything (agent.devserver: see below)
}

LAZY_DEVSERVER_IMPORTERS = frozenset({"agent.cli", "agent.demo"})
"""The only modules that may import agent.devserver, and only inside a function."""

BROKEN_BY_WORK_IN_PROGRESS: dict[str, str] = {}
"""unit -> why its rule is still broken (marked xfail, strict: it fails once it holds)."""


@dataclass(frozen=True, slots=True)
class Import:
    importer: str
    target: str
    line: int
    lazy: bool  # inside a function: loaded only when that function runs


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path, name: str | None = None) -> Iterator[Import]:
    """Every import of agent modules in `path` (named `name`, by default its module name)."""
    name = name or module_name(path)
    is_package = path.name == "__init__.py"
    tree = ast.parse(path.read_text(), str(path))
    for node, lazy in _walk(tree, lazy=False):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "agent":
                    yield Import(name, alias.name, node.lineno, lazy)
        elif isinstance(node, ast.ImportFrom):
            target = _absolute(node, name, is_package)
            if target.split(".")[0] != "agent":
                continue
            yield Import(name, target, node.lineno, lazy)
            for alias in node.names:  # `from agent.ops import admin` imports agent.ops.admin
                if _is_module(f"{target}.{alias.name}"):
                    yield Import(name, f"{target}.{alias.name}", node.lineno, lazy)


def _is_module(dotted: str) -> bool:
    path = ROOT.joinpath(*dotted.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def _walk(node: ast.AST, *, lazy: bool) -> Iterator[tuple[ast.AST, bool]]:
    for child in ast.iter_child_nodes(node):
        inner = lazy or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
        yield child, inner
        yield from _walk(child, lazy=inner)


def _absolute(node: ast.ImportFrom, importer: str, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    base = importer.split(".")
    if not is_package:
        base = base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def unit_of(module: str) -> str | None:
    """The longest rule key `module` belongs to; None for foundation modules."""
    if module in FOUNDATION:
        return None
    matches = [key for key in ALLOWED if module == key or module.startswith(key + ".")]
    return max(matches, key=len) if matches else module


def within(module: str, allowed: tuple[str, ...]) -> bool:
    return any(module == a or module.startswith(a + ".") for a in allowed)


def all_imports() -> list[Import]:
    return [found for path in sorted(PACKAGE.rglob("*.py")) for found in imports_of(path)]


def violations(unit: str) -> list[str]:
    allowed = (unit, *ALLOWED[unit])
    found = []
    for imp in all_imports():
        if unit_of(imp.importer) != unit or imp.target in FOUNDATION:
            continue
        if imp.target.startswith("agent.devserver") and unit != "agent.devserver":
            continue  # its own rule, below
        if not within(imp.target, allowed):
            found.append(f"{imp.importer}:{imp.line} imports {imp.target}")
    return found


def _rule(unit: str) -> object:
    reason = BROKEN_BY_WORK_IN_PROGRESS.get(unit)
    marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
    return pytest.param(unit, id=unit, marks=marks)


def test_every_module_falls_under_a_rule() -> None:
    unruled = sorted(
        {module_name(p) for p in PACKAGE.rglob("*.py")}
        - FOUNDATION
        - {m for m in (module_name(p) for p in PACKAGE.rglob("*.py")) if unit_of(m) in ALLOWED}
    )
    assert unruled == [], "add these to ALLOWED (and to ARCHITECTURE.md)"


def test_the_foundation_imports_nothing_else_of_the_agent() -> None:
    crossing = [
        f"{imp.importer}:{imp.line} imports {imp.target}"
        for imp in all_imports()
        if imp.importer in FOUNDATION and imp.target not in FOUNDATION
    ]
    assert crossing == []


@pytest.mark.parametrize("unit", [_rule(unit) for unit in ALLOWED])
def test_imports_follow_the_layering(unit: str) -> None:
    assert violations(unit) == []


def test_only_the_dev_server_subcommand_imports_the_dev_server() -> None:
    crossing = [
        f"{imp.importer}:{imp.line} imports {imp.target}" + ("" if imp.lazy else " at module level")
        for imp in all_imports()
        if imp.target.startswith("agent.devserver")
        and not imp.importer.startswith("agent.devserver")
        and not (imp.lazy and imp.importer in LAZY_DEVSERVER_IMPORTERS)
    ]
    assert crossing == []


def test_the_run_path_does_not_load_the_dev_server() -> None:
    """What `polaris-agent run` imports, in a fresh interpreter."""
    probe = (
        "import sys, agent.cli, agent.runtime\n"
        "loaded = sorted(m for m in sys.modules if m.startswith('agent.devserver'))\n"
        "assert not loaded, loaded\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr


def test_a_forbidden_import_is_caught(tmp_path: Path) -> None:
    """The checker itself: a stage importing ops, and a relative import, are seen."""
    module = tmp_path / "probe.py"
    module.write_text(
        "from agent.ops.snapshot import AgentSnapshot\n"
        "def later():\n    from agent.devserver import cli\n"
    )
    found = list(imports_of(module, "agent.ship.probe"))

    assert [(i.target, i.lazy) for i in found] == [
        ("agent.ops.snapshot", False),
        ("agent.devserver", True),
        ("agent.devserver.cli", True),
    ]
    assert not within("agent.ops.snapshot", ("agent.ship", *ALLOWED["agent.ship"]))
