"""Fast checks of the packaging artifacts (issue 5): systemd unit, Dockerfile, Kubernetes
manifests, Debian package metadata. The heavy ones (nspawn boot, chroot install, image build)
are in `make package-check` (packaging/check-heavy.sh).

A test skips only when its tool cannot run here, and says why.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "systemd" / "polaris-agent.service"
DEFAULTS = ROOT / "systemd" / "polaris-agent.default"
DOCKERFILE = ROOT / "packaging" / "Dockerfile"
SIDECAR = ROOT / "packaging" / "k8s" / "sidecar.yaml"
DAEMONSET = ROOT / "packaging" / "k8s" / "daemonset.yaml"
DEB = ROOT / "packaging" / "deb"
VENV_BIN = Path(sys.executable).parent
PREFIX = "/opt/polaris-agent/bin/polaris-agent"
CONFIG = "/etc/polaris-agent/config.toml"
# The oldest Kubernetes with native sidecars on by default, and the newest bundled schema.
K8S_VERSIONS = ("1.29.0", "1.37.0")


def tool(name: str, *, venv: bool) -> str:
    path = VENV_BIN / name if venv else shutil.which(name)
    if path is None or not Path(path).exists():
        where = f"in {VENV_BIN} (`make venv` installs it)" if venv else "on PATH"
        pytest.skip(f"{name} is not installed {where}")
    return str(path)


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=60, env=env, check=False)


def unit_settings(path: Path) -> dict[str, list[str]]:
    """Key -> values of a unit file (repeated keys keep every value; continuations joined)."""
    settings: dict[str, list[str]] = {}
    text = re.sub(r"\\\n\s*", " ", path.read_text(encoding="utf-8"))
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";", "[")):
            continue
        key, _, value = line.partition("=")
        settings.setdefault(key.strip(), []).append(value.strip())
    return settings


def drain_seconds(config: str) -> int:
    """`shutdown_timeout` of a config written as whole seconds ("10s")."""
    match = re.search(r'^shutdown_timeout = "(\d+)s"', config, re.MULTILINE)
    assert match is not None, "the config states its shutdown_timeout"
    return int(match.group(1))


def manifests(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]


def only(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = [doc for doc in docs if doc["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


# --- systemd -----------------------------------------------------------------------------


@pytest.fixture
def runnable_unit(tmp_path: Path) -> Path:
    """The unit with ExecStart/ExecStartPre/ExecReload pointed at this venv's console script,
    so that `systemd-analyze verify` can check that the commands exist."""
    script = VENV_BIN / "polaris-agent"
    if not script.exists():
        pytest.skip(f"{script} is missing (`make venv` installs the package)")
    unit = tmp_path / "polaris-agent.service"
    unit.write_text(UNIT.read_text(encoding="utf-8").replace(PREFIX, str(script)))
    return unit


def test_systemd_analyze_verify_prints_nothing(runnable_unit: Path) -> None:
    # systemd-analyze exits 0 on unknown keys and unparsable values, printing them on stderr:
    # any output at all is a failure.
    analyze = tool("systemd-analyze", venv=False)
    result = run(analyze, "verify", "--man=no", str(runnable_unit))
    assert result.returncode == 0, result.stderr
    assert result.stdout + result.stderr == ""


def test_systemd_analyze_verify_catches_a_bad_key(runnable_unit: Path) -> None:
    # The check above could not fail if verify said nothing about anything.
    analyze = tool("systemd-analyze", venv=False)
    runnable_unit.write_text(
        runnable_unit.read_text(encoding="utf-8").replace(
            "Type=notify", "Type=notify-reload\nBogusDirective=1"
        )
    )
    result = run(analyze, "verify", "--man=no", str(runnable_unit))
    assert "BogusDirective" in result.stderr
    assert "notify-reload" in result.stderr


def test_systemd_security_exposure_at_most_2() -> None:
    analyze = tool("systemd-analyze", venv=False)
    result = run(analyze, "security", "--offline=true", "--threshold=20", str(UNIT))
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr
    score = re.search(r"Overall exposure level for \S+: ([\d.]+)", result.stdout)
    assert score is not None, result.stdout[-500:]
    assert float(score.group(1)) <= 2.0


def test_systemd_unit_shape() -> None:
    unit = unit_settings(UNIT)
    assert unit["Type"] == ["notify"]
    assert unit["ExecStartPre"] == [f"{PREFIX} check --quiet --config {CONFIG}"]
    assert unit["ExecStart"] == [f"{PREFIX} run --config {CONFIG}"]
    # The config is validated before the SIGHUP reaches the agent.
    assert unit["ExecReload"] == [
        f"{PREFIX} check --quiet --config {CONFIG}",
        "kill -HUP $MAINPID",
    ]
    assert unit["StateDirectory"] == ["polaris-agent"]
    assert unit["User"] == ["polaris-agent"]
    assert set(unit["SupplementaryGroups"][0].split()) == {"adm", "systemd-journal"}
    assert unit["EnvironmentFile"] == ["-/etc/default/polaris-agent"]
    assert "WatchdogSec" in unit
    assert unit["WantedBy"] == ["multi-user.target"]
    assert unit["ProtectSystem"] == ["strict"]
    assert unit["ReadOnlyPaths"] == ["/var/log"]
    # PrivateUsers= would map the adm group away (no reading /var/log/syslog).
    assert "PrivateUsers" not in unit


def test_timeout_stop_covers_the_drain() -> None:
    def seconds(value: str) -> float:
        match = re.fullmatch(r"(\d+)s?", value)
        assert match, value
        return float(match.group(1))

    unit = unit_settings(UNIT)
    drain = drain_seconds((DEB / "config.toml").read_text(encoding="utf-8"))
    assert seconds(unit["TimeoutStopSec"][0]) > drain


def test_environment_file_example_sets_nothing_by_default() -> None:
    lines = DEFAULTS.read_text(encoding="utf-8").splitlines()
    assert not [line for line in lines if line.strip() and not line.startswith("#")]
    assert any(line.startswith("#POLARIS_API_KEY=") for line in lines)


# --- Dockerfile --------------------------------------------------------------------------


def test_hadolint_accepts_the_dockerfile() -> None:
    hadolint = tool("hadolint", venv=True)
    result = run(hadolint, "--no-color", str(DOCKERFILE))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == ""


def test_hadolint_rejects_a_bad_dockerfile(tmp_path: Path) -> None:
    hadolint = tool("hadolint", venv=True)
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM debian:latest\nRUN apt-get install curl\nCMD python -m agent\n")
    result = run(hadolint, "--no-color", str(bad))
    assert result.returncode != 0
    assert "DL3007" in result.stdout


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text(encoding="utf-8"))
    pairs = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            instruction, _, rest = line.partition(" ")
            pairs.append((instruction.upper(), rest.strip()))
    return pairs


def test_dockerfile_shape() -> None:
    instructions = dockerfile_instructions()
    froms = [rest for name, rest in instructions if name == "FROM"]
    assert len(froms) >= 2, "multi-stage: a build stage and a final stage"
    final = instructions[max(i for i, (name, _) in enumerate(instructions) if name == "FROM") :]
    final_by_name: dict[str, list[str]] = {}
    for name, rest in final:
        final_by_name.setdefault(name, []).append(rest)
    # A numeric non-root user, so Kubernetes runAsNonRoot can verify it.
    (user,) = final_by_name["USER"]
    uid = user.split(":")[0]
    assert uid.isdigit() and int(uid) != 0
    assert json.loads(final_by_name["ENTRYPOINT"][-1]) == ["tini", "--", "polaris-agent"]
    assert json.loads(final_by_name["CMD"][-1]) == ["run", "--config", CONFIG]
    assert any("/healthz" in check for check in final_by_name["HEALTHCHECK"])
    assert json.loads(final_by_name["VOLUME"][-1]) == ["/var/lib/polaris-agent"]
    assert any(rest.startswith("--from=build /opt/polaris-agent") for rest in final_by_name["COPY"])


# --- Kubernetes ----------------------------------------------------------------------------


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("manifest", [SIDECAR, DAEMONSET], ids=["sidecar", "daemonset"])
def test_kubernetes_validate_strict(manifest: Path, version: str) -> None:
    validate = tool("kubernetes-validate", venv=True)
    result = run(validate, "--strict", "-k", version, str(manifest))
    assert result.returncode == 0, result.stdout + result.stderr
    passed = re.findall(r"passed for resource (\S+)", result.stdout)
    assert len(passed) == len(manifests(manifest)), result.stdout
    assert "WARN" not in result.stdout + result.stderr


def test_kubernetes_validate_rejects_a_misspelled_field(tmp_path: Path) -> None:
    validate = tool("kubernetes-validate", venv=True)
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        SIDECAR.read_text(encoding="utf-8").replace(
            "terminationGracePeriodSeconds:", "terminationGracePeriodSecond:"
        )
    )
    result = run(validate, "--strict", "-k", K8S_VERSIONS[0], str(bad))
    assert result.returncode != 0
    assert "terminationGracePeriodSecond" in result.stdout + result.stderr


def agent_container(pod: dict[str, Any], where: str) -> dict[str, Any]:
    (container,) = [c for c in pod[where] if c["name"] == "polaris-agent"]
    return container


def assert_hardened(container: dict[str, Any]) -> None:
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    assert "add" not in security["capabilities"]
    assert security["seccompProfile"]["type"] == "RuntimeDefault"
    assert container["resources"]["limits"]["memory"]
    assert container["resources"]["requests"]["cpu"]


def assert_probes_on_named_port(container: dict[str, Any]) -> None:
    (port,) = [p for p in container["ports"] if p["name"] == "admin"]
    assert port["containerPort"] == 8686
    probes = [key for key in container if key.endswith("Probe")]
    assert {"startupProbe", "livenessProbe"} <= set(probes)
    for key in probes:
        assert container[key]["httpGet"]["port"] == "admin", key
        assert container[key]["httpGet"]["path"] in {"/healthz", "/readyz"}


def assert_key_from_secret(container: dict[str, Any], docs: list[dict[str, Any]]) -> None:
    env = {e["name"]: e for e in container["env"]}
    ref = env["POLARIS_API_KEY"]["valueFrom"]["secretKeyRef"]
    secret = only(docs, "Secret")
    assert ref["name"] == secret["metadata"]["name"]
    assert ref["key"] in secret["stringData"]


def assert_config_checks(docs: list[dict[str, Any]], tmp_path: Path, env: dict[str, str]) -> None:
    """The agent itself accepts the ConfigMap's config.toml."""
    script = VENV_BIN / "polaris-agent"
    if not script.exists():
        pytest.skip(f"{script} is missing (`make venv` installs the package)")
    config = tmp_path / "config.toml"
    config.write_text(only(docs, "ConfigMap")["data"]["config.toml"])
    result = run(str(script), "check", "--config", str(config), env={**os.environ, **env})
    assert result.returncode == 0, result.stderr


def test_sidecar_manifest(tmp_path: Path) -> None:
    docs = manifests(SIDECAR)
    pod = only(docs, "Deployment")["spec"]["template"]["spec"]
    agent = agent_container(pod, "initContainers")
    assert agent["restartPolicy"] == "Always"  # native sidecar
    assert_hardened(agent)
    assert_probes_on_named_port(agent)
    assert_key_from_secret(agent, docs)
    assert agent["securityContext"]["runAsNonRoot"] is True
    assert agent["securityContext"]["runAsUser"] != 0
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert agent["lifecycle"]["preStop"]
    # The shared log volume is an emptyDir the app writes and the agent only reads.
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m for m in agent["volumeMounts"]}
    logs = mounts["/var/log/app"]
    assert "emptyDir" in volumes[logs["name"]] and logs["readOnly"] is True
    (app,) = pod["containers"]
    assert any(m["name"] == logs["name"] for m in app["volumeMounts"])
    assert "emptyDir" in volumes[mounts["/var/lib/polaris-agent"]["name"]]
    assert "configMap" in volumes[mounts["/etc/polaris-agent"]["name"]]
    # Grace covers the preStop pause plus the drain (shutdown_timeout) with room for the app.
    config = only(docs, "ConfigMap")["data"]["config.toml"]
    drain = drain_seconds(config)
    pause = int(agent["lifecycle"]["preStop"]["exec"]["command"][-1])
    assert pod["terminationGracePeriodSeconds"] > drain + pause
    assert_config_checks(
        docs,
        tmp_path,
        {"POLARIS_API_KEY": "k", "POLARIS_PROJECT_ID": "p", "POD_NAME": "x", "POD_NAMESPACE": "y"},
    )


def test_daemonset_manifest(tmp_path: Path) -> None:
    docs = manifests(DAEMONSET)
    daemonset = only(docs, "DaemonSet")
    pod = daemonset["spec"]["template"]["spec"]
    agent = agent_container(pod, "containers")
    assert_hardened(agent)
    assert_probes_on_named_port(agent)
    assert_key_from_secret(agent, docs)
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m for m in agent["volumeMounts"]}
    varlog = mounts["/var/log"]
    assert volumes[varlog["name"]]["hostPath"]["path"] == "/var/log"
    assert varlog["readOnly"] is True
    # Checkpoints on the node survive pod restarts and upgrades.
    data = volumes[mounts["/var/lib/polaris-agent"]["name"]]
    assert data["hostPath"]["path"] == "/var/lib/polaris-agent"
    assert {"operator": "Exists"} in pod["tolerations"]
    assert pod["serviceAccountName"] == only(docs, "ServiceAccount")["metadata"]["name"]
    # The token reads pod labels (issue 15); its ClusterRole may only get/list/watch pods and
    # namespaces (tests/kube/test_kube_manifest.py).
    assert pod["automountServiceAccountToken"] is True
    # One agent per node at a time: never two writers of the same checkpoints.
    assert daemonset["spec"]["updateStrategy"]["rollingUpdate"]["maxSurge"] == 0
    config = only(docs, "ConfigMap")["data"]["config.toml"]
    drain = drain_seconds(config)
    assert pod["terminationGracePeriodSeconds"] > drain
    assert_config_checks(
        docs, tmp_path, {"POLARIS_API_KEY": "k", "POLARIS_PROJECT_ID": "p", "NODE_NAME": "n"}
    )


# --- Debian package ------------------------------------------------------------------------


def test_deb_marks_the_config_as_conffile() -> None:
    conffiles = (DEB / "conffiles").read_text(encoding="utf-8").split()
    assert CONFIG in conffiles
    assert "/etc/default/polaris-agent" in conffiles
    build = (ROOT / "packaging" / "build-deb.sh").read_text(encoding="utf-8")
    # Every conffile is installed by the build script (dpkg-deb refuses missing conffiles).
    assert '"$stage/etc/polaris-agent/config.toml"' in build
    assert '"$stage/etc/default/polaris-agent"' in build


def test_deb_maintainer_scripts() -> None:
    postinst = (DEB / "postinst").read_text(encoding="utf-8")
    assert re.search(r"adduser --system --group\b", postinst)
    assert "for group in adm systemd-journal" in postinst
    assert 'deb-systemd-helper enable "$UNIT"' in postinst
    postrm = (DEB / "postrm").read_text(encoding="utf-8")
    purge = postrm[postrm.index('if [ "$1" = purge ]') :]
    assert "rm -rf /var/lib/polaris-agent" in purge
    assert "deb-systemd-helper purge" in purge
    control = (DEB / "control.in").read_text(encoding="utf-8")
    # Debian 12, Ubuntu 24.04 and Debian 13's python3 (issue 15; tests/packaging/test_deb.py).
    assert "python3 (>= 3.11), python3 (<< 3.14)" in control
    sh = tool("sh", venv=False)
    for script in ("postinst", "prerm", "postrm"):
        path = DEB / script
        assert os.access(path, os.X_OK), f"{script} is not executable"
        assert "\nset -e\n" in path.read_text(encoding="utf-8"), f"{script} lacks set -e"
        result = run(sh, "-n", str(path))
        assert result.returncode == 0, f"{script}: {result.stderr}"


def test_deb_builds_the_venv_on_the_target_python() -> None:
    build = (ROOT / "packaging" / "build-deb.sh").read_text(encoding="utf-8")
    # The venv's interpreter is the target system's python3, whichever version it is.
    assert 'ln -s /usr/bin/python3 "$stage$PREFIX/bin/python"' in build
    assert "PREFIX=/opt/polaris-agent" in build
