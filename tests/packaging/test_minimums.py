"""Reproducible installs (issue 15): the locks agree with pyproject.toml, and the declared
minimums of the runtime dependencies work.

The lock checks read files only. `make lock` writes the locks: requirements/runtime.lock (the
image and the .deb install with `-c` it) and requirements/dev.lock (the venv of `make`/CI).

The minimum checks build a venv of their own holding every runtime dependency at the minimum
pyproject.toml declares, install the agent into it, and run its `check` and a `run --once`
against the dev-server over loopback, both with `api.listen` set: prometheus-client 0.20-0.22,
once allowed by `>=0.20`, crashed there on an ImportError. They take the wheels from uv's cache
when it has them, else from PyPI, and skip, saying so, when they can do neither.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import tomllib
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from agent.devserver import DevServer
from tests.support.config import API_KEY, agent_config, render_toml
from tests.support.endpoint import dev_server, log_dir
from tests.support.lines import Ledger, ledger

__all__ = ["dev_server", "ledger", "log_dir"]

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = ROOT / "pyproject.toml"
RUNTIME_LOCK = ROOT / "requirements" / "runtime.lock"
DEV_LOCK = ROOT / "requirements" / "dev.lock"
UV = Path(sys.executable).parent / "uv"
FIX = "run `make lock` and commit requirements/"

# Where the locks are installed: the .deb's Pythons (Debian 12: 3.11, Ubuntu 24.04: 3.12,
# Debian 13: 3.13), the image's, CI's; on both architectures.
TARGETS = [
    {
        "python_version": python,
        "python_full_version": f"{python}.0",
        "platform_machine": machine,
        "sys_platform": "linux",
        "platform_system": "Linux",
        "os_name": "posix",
        "implementation_name": "cpython",
        "platform_python_implementation": "CPython",
    }
    for python in ("3.11", "3.12", "3.13")
    for machine in ("x86_64", "aarch64")
]
TARGET_IDS = [f"py{t['python_version']}-{t['platform_machine']}" for t in TARGETS]


def declared(*extras: str) -> list[Requirement]:
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    found = [Requirement(d) for d in project["dependencies"]]
    for extra in extras:
        found += [Requirement(d) for d in project["optional-dependencies"][extra]]
    return found


def lock_lines(lock: Path) -> list[str]:
    return [
        line.strip()
        for line in lock.read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]


def pins(lock: Path, target: dict[str, str]) -> dict[str, Version]:
    """What `pip install -c lock` pins on `target`: name -> version."""
    found: dict[str, Version] = {}
    for line in lock_lines(lock):
        req = Requirement(line)
        if req.marker is not None and not req.marker.evaluate(target):
            continue
        (spec,) = req.specifier
        assert spec.operator == "==", f"{lock.name}: {line!r} is not a pin"
        name = canonicalize_name(req.name)
        assert name not in found, f"{lock.name}: {name} pinned twice on {target}"
        found[name] = Version(spec.version)
    return found


def minimums() -> dict[str, str]:
    """Each runtime dependency's declared minimum (its `>=`)."""
    found: dict[str, str] = {}
    for req in declared():
        lows = [s.version for s in req.specifier if s.operator == ">="]
        assert len(lows) == 1, f"{req}: declare one lower bound (>=), tested here"
        found[canonicalize_name(req.name)] = lows[0]
    return found


# --- the locks against pyproject.toml (no network) --------------------------------------------


def test_every_runtime_dependency_declares_a_lower_bound() -> None:
    assert set(minimums()) == {canonicalize_name(r.name) for r in declared()}


@pytest.mark.parametrize("target", TARGETS, ids=TARGET_IDS)
@pytest.mark.parametrize(
    ("lock", "extras"), [(RUNTIME_LOCK, ()), (DEV_LOCK, ("dev",))], ids=["runtime", "dev"]
)
def test_the_lock_pins_each_declared_dependency_within_its_bound(
    lock: Path, extras: tuple[str, ...], target: dict[str, str]
) -> None:
    pinned = pins(lock, target)
    for req in declared(*extras):
        if req.marker is not None and not req.marker.evaluate(target):
            continue
        name = canonicalize_name(req.name)
        assert name in pinned, f"{lock.name} pins no {name} ({req}): {FIX}"
        assert req.specifier.contains(pinned[name], prereleases=True), (
            f"{lock.name} pins {name}=={pinned[name]}, pyproject.toml says {req}: {FIX}"
        )


@pytest.mark.parametrize("target", TARGETS, ids=TARGET_IDS)
def test_the_dev_lock_holds_the_runtime_locks_pins(target: dict[str, str]) -> None:
    """CI tests the versions the image and the .deb ship."""
    runtime, dev = pins(RUNTIME_LOCK, target), pins(DEV_LOCK, target)
    differ = {name: (v, dev.get(name)) for name, v in runtime.items() if dev.get(name) != v}
    assert not differ, f"runtime.lock vs dev.lock: {differ}: {FIX}"


@pytest.mark.parametrize("lock", [RUNTIME_LOCK, DEV_LOCK], ids=["runtime", "dev"])
def test_the_lock_names_no_index_and_no_local_file(lock: Path) -> None:
    """Plain `name==version` lines: no --index-url/--find-links/-e of the machine that wrote it
    (pip-compile copies pip's config in), no file: or URL requirements."""
    for line in lock_lines(lock):
        assert not line.startswith("-"), f"{lock.name}: {line!r}"
        assert "://" not in line and "file:" not in line and " @ " not in line, line


def test_the_venv_and_the_image_install_with_the_locks() -> None:
    makefile = (ROOT / "Makefile").read_text()
    stamp_recipe = makefile.split("$(STAMP):", 1)[1].split("\n\n", 1)[0]
    assert "-c requirements/dev.lock -e '.[dev]'" in stamp_recipe
    assert "requirements/dev.lock" in stamp_recipe.splitlines()[0]  # a new lock reinstalls
    dockerfile = (ROOT / "packaging" / "Dockerfile").read_text()
    assert "COPY requirements/runtime.lock" in dockerfile
    assert "-c /src/requirements/runtime.lock" in dockerfile
    ignore = (ROOT / "packaging" / "Dockerfile.dockerignore").read_text().splitlines()
    assert "!requirements/runtime.lock" in ignore


# --- the declared minimums, installed and run (uv's cache, else PyPI) -------------------------


def uv(*args: str | Path, pypi: bool = False) -> None:
    """Run uv offline (its cache) and, when that cannot do it, online; skip when PyPI is
    unreachable (a machine without network and a cold cache)."""
    command = [str(UV), *map(str, args)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    offline = subprocess.run([*command, "--offline"], capture_output=True, text=True, env=env)
    if offline.returncode == 0 or not pypi:
        assert offline.returncode == 0, offline.stderr
        return
    index = next(
        (os.environ[k] for k in ("UV_DEFAULT_INDEX", "UV_INDEX_URL") if os.environ.get(k)),
        "https://pypi.org/simple/",
    )
    try:
        urllib.request.urlopen(index, timeout=10).close()
    except OSError as exc:
        pytest.skip(f"needs PyPI for wheels not in uv's cache ({index}: {exc})")
    online = subprocess.run(command, capture_output=True, text=True, env=env)
    assert online.returncode == 0, online.stderr


@pytest.mark.parametrize("target", TARGETS, ids=TARGET_IDS)
def test_the_runtime_lock_installs_from_wheels(target: dict[str, str]) -> None:
    """Every pin has a wheel for each target (no compiler needed on a Debian/Ubuntu build
    host): Debian 12's glibc 2.36 is the oldest."""
    platform = f"{target['platform_machine']}-manylinux_2_36"
    uv(
        *("pip", "compile", "--quiet", "--no-header", "--no-deps", "--only-binary", ":all:"),
        *("--python-version", target["python_version"], "--python-platform", platform),
        *("-c", RUNTIME_LOCK, RUNTIME_LOCK),
        pypi=True,
    )


@pytest.fixture(scope="module")
def minimum_venv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A venv with the agent and each runtime dependency at its declared minimum."""
    home = tmp_path_factory.mktemp("minimums")
    src = home / "src"  # a copy: setuptools writes build/ and *.egg-info into the source tree
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    shutil.copytree(ROOT / "agent", src / "agent", ignore=shutil.ignore_patterns("__pycache__"))
    constraints = home / "minimums.txt"
    constraints.write_text("".join(f"{n}=={v}\n" for n, v in minimums().items()))
    venv = home / "venv"
    uv("venv", "--quiet", "--python", sys.executable, venv)
    python = venv / "bin" / "python"
    uv("pip", "install", "--quiet", "--python", python, "-c", constraints, src, pypi=True)
    yield venv


def agent_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return {**env, "TEST_POLARIS_KEY": API_KEY}


def test_the_minimum_venv_holds_the_declared_minimums(minimum_venv: Path) -> None:
    python = minimum_venv / "bin" / "python"
    probe = "import agent, importlib.metadata as m, sys; print(agent.__file__)"
    names = sorted(minimums())
    probe += "; print(*(m.version(n) for n in sys.argv[1:]))"
    out = subprocess.run(
        [python, "-c", probe, *names], capture_output=True, text=True, check=True, cwd="/"
    ).stdout.split("\n")
    assert out[0].startswith(str(minimum_venv)), f"the agent comes from {out[0]}"
    installed = dict(zip(names, map(Version, out[1].split()), strict=True))
    assert installed == {n: Version(v) for n, v in minimums().items()}


def test_check_passes_at_the_minimums(minimum_venv: Path, tmp_path: Path, log_dir: Path) -> None:
    config = tmp_path / "agent.toml"
    doc = agent_config(tmp_path / "data", "http://127.0.0.1:9", log_dir)
    config.write_text(render_toml({**doc, "api": {"listen": "127.0.0.1:0"}}))
    result = subprocess.run(
        [minimum_venv / "bin" / "polaris-agent", "check", "--config", config],
        capture_output=True,
        text=True,
        env=agent_env(),
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "config ok" in result.stdout


async def test_run_once_delivers_at_the_minimums(
    minimum_venv: Path, tmp_path: Path, dev_server: DevServer, log_dir: Path, ledger: Ledger
) -> None:
    ledger.append(log_dir / "app.log", 50)
    config = tmp_path / "agent.toml"
    doc = agent_config(tmp_path / "data", dev_server.url, log_dir)
    config.write_text(render_toml({**doc, "api": {"listen": "127.0.0.1:0"}}))
    stderr = tmp_path / "agent.stderr"
    with stderr.open("wb") as err:
        agent = await asyncio.create_subprocess_exec(
            minimum_venv / "bin" / "polaris-agent",
            *("run", "--once", "--config", str(config)),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=err,
            env=agent_env(),
            cwd=tmp_path,
        )
        try:
            async with asyncio.timeout(60):
                code = await agent.wait()
        finally:
            if agent.returncode is None:
                agent.kill()
    output = stderr.read_bytes()
    assert code == 0, output.decode(errors="replace")[-3000:]
    events = [orjson.loads(line)["event"] for line in output.splitlines() if line.startswith(b"{")]
    assert "admin_listening" in events  # the exporter (prometheus-client) was imported
    assert not ledger.missing(), f"{sum(ledger.missing().values())} lines not delivered"
