"""The .deb's design, checked in seconds (issue 15). The package itself is built, linted and
installed on Debian 12, Debian 13 and Ubuntu 24.04 by `make package-check`
(packaging/check-heavy.sh), which takes minutes.

One package serves python3 3.11, 3.12 and 3.13: /opt/polaris-agent is a virtualenv whose
`bin/python` is the system's python3, holding lib/python3.X/site-packages for each of them.
The interpreter that runs picks its own; the first test shows that with real interpreters.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / "packaging" / "build-deb.sh"
DEB = ROOT / "packaging" / "deb"
PYENV = Path.home() / ".pyenv" / "versions"


def build_script() -> str:
    return BUILD.read_text(encoding="utf-8")


def default_pythons() -> list[str]:
    match = re.search(r"^DEB_PYTHONS=\$\{DEB_PYTHONS:-([\d. ]+)\}$", build_script(), re.M)
    assert match is not None, "build-deb.sh states its default DEB_PYTHONS"
    return match.group(1).split()


def pyvenv_cfg() -> str:
    """The pyvenv.cfg build-deb.sh writes, as text."""
    match = re.search(r"printf '(home = [^']*)' >\"\$stage\$PREFIX/pyvenv.cfg\"", build_script())
    assert match is not None, "build-deb.sh writes pyvenv.cfg itself"
    return match.group(1).replace("\\n", "\n")


def interpreter(version: str) -> Path | None:
    """A real CPython `version` here (not a pyenv shim, which would exec another binary):
    the system's, else pyenv's."""
    system = Path(f"/usr/bin/python{version}")
    candidates = [system] if system.exists() else []
    candidates += sorted(PYENV.glob(f"{version}.*/bin/python{version}"))
    return candidates[0].resolve() if candidates else None


def test_one_venv_tree_serves_each_python_it_holds(tmp_path: Path) -> None:
    """The layout build-deb.sh stages, with each target Python found here as the 'system'
    python3: the venv's module path is its own version's site-packages, nothing of the host's."""
    found = {v: interpreter(v) for v in default_pythons()}
    usable = {v: p for v, p in found.items() if p is not None}
    if not usable:
        pytest.skip(f"none of CPython {' '.join(found)} is installed here")
    for version, python in usable.items():
        venv = tmp_path / version
        for other in default_pythons():
            site = venv / "lib" / f"python{other}" / "site-packages"
            site.mkdir(parents=True)
            (site / "which_tree.py").write_text(f"TREE = {other!r}\n")
        (venv / "bin").mkdir()
        (venv / "bin" / "python").symlink_to(python)
        # build-deb.sh's pyvenv.cfg, with this interpreter's directory as the system's /usr/bin.
        cfg = pyvenv_cfg()
        assert cfg.startswith("home = /usr/bin\n")
        (venv / "pyvenv.cfg").write_text(cfg.replace("/usr/bin", str(python.parent), 1))
        probe = (
            "import sys, which_tree; "
            "print(which_tree.TREE, sys.prefix, any('site-packages' in p and not "
            "p.startswith(sys.prefix) for p in sys.path))"
        )
        result = subprocess.run(
            [str(venv / "bin" / "python"), "-c", probe],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        tree, prefix, host_site = result.stdout.split()
        assert (tree, prefix, host_site) == (version, str(venv), "False"), version


def test_the_package_depends_on_exactly_the_pythons_it_holds() -> None:
    control = (DEB / "control.in").read_text(encoding="utf-8")
    match = re.search(r"python3 \(>= ([\d.]+)\), python3 \(<< ([\d.]+)\)", control)
    assert match is not None, control
    low, high = (tuple(int(p) for p in v.split(".")) for v in match.groups())
    versions = sorted(tuple(int(p) for p in v.split(".")) for v in default_pythons())
    # Debian 12, Ubuntu 24.04, Debian 13.
    assert versions == [(3, 11), (3, 12), (3, 13)]
    assert low == versions[0]
    assert high == (3, versions[-1][1] + 1)  # nothing the package holds no modules for


def test_build_deb_needs_no_checkout_venv_and_pins_through_the_lock() -> None:
    script = build_script()
    assert ".venv" not in script, "a fresh checkout has no .venv"
    assert '"$BUILD_PYTHON" -m venv "$work/tools"' in script
    assert "LOCK=${LOCK:-$ROOT/requirements/runtime.lock}" in script
    assert 'constraints=(-c "$LOCK")' in script
    assert "--only-binary=:all:" in script
    # What goes into the package comes from the index, not this machine's pip config.
    assert "PIP_CONFIG_FILE=/dev/null" in script
    assert "unset PIP_FIND_LINKS" in script


def test_md5sums_and_no_activate_scripts_or_byte_code() -> None:
    script = build_script()
    assert '>"$stage/DEBIAN/md5sums"' in script
    assert "xargs -0 md5sum" in script
    # The venv is written by hand (no `python -m venv`, so no bin/activate*), checked anyway.
    assert "-m venv --without-pip" not in script
    assert "-name 'activate*'" in script
    # Byte code: compiled by postinst for the running python3, removed by prerm and redone by
    # python3's runtime hook when a dist-upgrade changes python3.
    postinst = (DEB / "postinst").read_text(encoding="utf-8")
    assert 'python3 -m compileall -q "/opt/polaris-agent/lib/python$py/site-packages"' in postinst
    for hook in ("prerm", "rtupdate"):
        assert "-name __pycache__ -exec rm -rf" in (DEB / hook).read_text(encoding="utf-8")
    assert "/usr/share/python3/runtime.d/polaris-agent.rtupdate" in script
    postrm = (DEB / "postrm").read_text(encoding="utf-8")
    assert 'if [ "$1" = remove ]; then\n    rm -rf /opt/polaris-agent' in postrm


def test_maintainer_scripts_and_hook_are_valid_sh() -> None:
    sh = shutil.which("sh")
    if sh is None:
        pytest.skip("no sh on PATH")
    for name in ("postinst", "prerm", "postrm", "rtupdate"):
        path = DEB / name
        assert path.stat().st_mode & 0o111, f"{name} is not executable"
        result = subprocess.run([sh, "-n", str(path)], capture_output=True, text=True, check=False)
        assert result.returncode == 0, f"{name}: {result.stderr}"


def test_every_lintian_override_says_why() -> None:
    lines = (DEB / "lintian-overrides").read_text(encoding="utf-8").splitlines()
    overrides = [i for i, line in enumerate(lines) if line and not line.startswith("#")]
    assert overrides
    for i in overrides:
        assert lines[i].startswith("polaris-agent: "), lines[i]
        above = i - 1
        while above in overrides:  # a group of overrides shares the comment above it
            above -= 1
        assert above >= 0 and len(lines[above].strip("# ")) > 10, f"no reason for {lines[i]}"
