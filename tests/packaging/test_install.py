"""What an install gets (issue 15): the unit's documentation and descriptor limit, a declared
dependency minimum that works, and reload instructions that find the process."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "systemd" / "polaris-agent.service"


def unit_values(key: str) -> list[str]:
    return [
        line.split("=", 1)[1]
        for line in UNIT.read_text().splitlines()
        if line.startswith(f"{key}=")
    ]


def test_the_unit_documents_itself_and_allows_enough_descriptors() -> None:
    docs = " ".join(unit_values("Documentation"))
    assert "troubleshooting.md" in docs
    build = (ROOT / "packaging" / "build-deb.sh").read_text()
    for uri in docs.split():
        if uri.startswith("file:/usr/share/doc/polaris-agent/"):
            assert uri.rsplit("/", 1)[1] in build, f"{uri} is not installed by build-deb.sh"
    (limit,) = unit_values("LimitNOFILE")
    assert int(limit) >= 4 * 512 + 1024  # several sources at the default max_open_files


def test_prometheus_client_minimum_has_what_the_exporter_imports() -> None:
    """0.20-0.22 lack CONTENT_TYPE_PLAIN_0_0_4: `check` crashed with api.listen set."""
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    (bound,) = [d for d in deps if d.startswith("prometheus-client")]
    minimum = tuple(int(p) for p in re.findall(r">=([\d.]+)", bound)[0].split("."))
    assert minimum >= (0, 23, 1)


def test_the_readme_reloads_through_systemd_not_pidof() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "pidof polaris-agent" not in readme
    assert "systemctl reload polaris-agent" in readme
