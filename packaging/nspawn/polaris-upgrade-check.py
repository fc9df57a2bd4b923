#!/usr/bin/python3
"""Upgrade check, inside a container booted with `systemd-nspawn --boot`
(packaging/check-upgrade.sh): version N of the .deb is installed and running; this installs
N+1 over it with `dpkg -i`, as an operator or unattended-upgrades would, and asserts what an
upgrade must keep and do:

- the maintainer scripts succeed (dpkg exits 0, the package ends `install ok installed` at
  the new version, `dpkg --audit` finds nothing half-configured);
- the edited conffile (/etc/polaris-agent/config.toml) and /etc/default/polaris-agent (the
  key) are the operator's, byte for byte;
- the state in data_dir survives: the checkpoint, and the spool the agent wrote while
  Polaris was failing (the files are still there after the upgrade, then replayed);
- the service was restarted onto the new version (a new main PID and invocation) and is
  running; it resumes from its checkpoint (nothing read again from the start), delivers
  the spool once Polaris answers, and ships lines written after the upgrade.

Results go to the console and to /root/polaris-upgrade.results as PASS/FAIL lines; the unit
powers the container off afterwards. Standard library only (the container's python3).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

UNIT = "polaris-agent.service"
RESULTS = Path("/root/polaris-upgrade.results")
LOG_FILE = Path("/var/log/polaris-check/app.log")
STATE = Path("/var/lib/polaris-agent")
CHECKPOINTS = STATE / "checkpoints.json"
SPOOL = STATE / "spool"
NEW_DEB = "/root/polaris-agent-new.deb"  # not /tmp: nspawn mounts a tmpfs there
KEPT = ("/etc/polaris-agent/config.toml", "/etc/default/polaris-agent")
DEV = "http://127.0.0.1:8080/_dev"
CONNECTION = "upgrade_check"
LINES = int(os.environ.get("CHECK_LINES", "500"))
DURING_OUTAGE = 60  # lines written while Polaris fails: they go to the spool
AFTER_UPGRADE = 40  # lines written once the new version runs

results: list[str] = []


def record(ok: bool, name: str, detail: str) -> bool:
    line = f"{'PASS' if ok else 'FAIL'} {name}: {detail}"
    results.append(line)
    print(line, flush=True)
    return ok


def run(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    return subprocess.run(
        args,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        stdin=subprocess.DEVNULL,
        env=env,
    )


def show(*props: str) -> dict[str, str]:
    out = run("systemctl", "show", UNIT, *(f"--property={p}" for p in props)).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def wait_for(predicate: Callable[[], bool], timeout: float, step: float = 0.25) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return predicate()


def dev(method: str, path: str, body: dict[str, object] | None = None) -> dict[str, object]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        f"{DEV}/{path}", data=data, method=method, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        text = response.read()
    return json.loads(text) if text else {}


def shipped() -> int:
    try:
        lines = dev("GET", "stats").get("lines", {})
    except OSError:
        return -1
    return int(lines.get(CONNECTION, 0)) if isinstance(lines, dict) else -1


def active() -> bool:
    props = show("ActiveState", "SubState")
    return (props.get("ActiveState"), props.get("SubState")) == ("active", "running")


def checkpoint() -> int:
    """The saved offset of the log file (-1 when none)."""
    try:
        files = json.loads(CHECKPOINTS.read_bytes())["files"]
    except (OSError, ValueError, KeyError):
        return -1
    return max((int(f["offset"]) for f in files if f.get("path") == str(LOG_FILE)), default=-1)


def spool_files() -> set[str]:
    try:
        return {p.name for p in SPOOL.iterdir() if p.is_file()}
    except OSError:
        return set()


def digest(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


def append_lines(start: int, count: int) -> None:
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    with LOG_FILE.open("a", encoding="utf-8") as out:
        for n in range(start, start + count):
            out.write(json.dumps({"event_time": now, "n": n, "message": f"line {n}"}) + "\n")


def package() -> str:
    return run("dpkg-query", "-W", "-f=${Version} ${Status}", "polaris-agent").stdout.strip()


def journal_tail(lines: int = 20) -> str:
    out = run("journalctl", "-u", UNIT, "-o", "cat", "--no-pager", "-n", str(lines)).stdout
    return " | ".join(out.splitlines())


def upgrade() -> None:
    new_version = run("dpkg-deb", "-f", NEW_DEB, "Version").stdout.strip()
    old_version = package()
    if not record(
        wait_for(lambda: active() and shipped() >= LINES, 90),
        "version N runs and ships",
        f"{old_version}; {shipped()}/{LINES} lines at the dev-server",
    ):
        print(journal_tail(), flush=True)
        return
    size = LOG_FILE.stat().st_size
    record(wait_for(lambda: checkpoint() == size, 30), "checkpoint", f"{checkpoint()}/{size}")

    # Polaris fails: what is written now is spooled (spool.after is 1 s in this config).
    dev("POST", "faults", {"action": "fail_for", "status": 503, "seconds": 3600})
    append_lines(LINES, DURING_OUTAGE)
    size = LOG_FILE.stat().st_size
    spooled = wait_for(lambda: bool(spool_files()) and checkpoint() == size, 60)
    before_spool = spool_files()
    record(
        spooled,
        "spool before the upgrade",
        f"{len(before_spool)} file(s); checkpoint {checkpoint()}/{size}",
    )
    before = show("MainPID", "InvocationID")
    kept = {path: digest(path) for path in KEPT}
    offset_before = checkpoint()

    dpkg = run("dpkg", "-i", NEW_DEB)
    output = (dpkg.stdout + dpkg.stderr).strip().replace("\n", " | ")
    record(dpkg.returncode == 0, "dpkg -i N+1 over N", f"rc={dpkg.returncode}: {output[-600:]}")
    record(
        "not running yet" not in output,
        "postinst restart",
        "deb-systemd-invoke restart succeeded (no 'not running yet')",
    )
    status = package()
    record(
        status == f"{new_version} install ok installed",
        "package state",
        f"{old_version} -> {status} (expected {new_version})",
    )
    audit = run("dpkg", "--audit").stdout.strip()
    record(audit == "", "dpkg --audit", audit or "nothing half-installed or unconfigured")

    # The restart: a new main process of the new version, running.
    record(wait_for(active, 60), "active after the upgrade", show("ActiveState")["ActiveState"])
    after = show("MainPID", "InvocationID")
    record(
        after["MainPID"] != before["MainPID"] and after["InvocationID"] != before["InvocationID"],
        "restarted by the upgrade",
        f"MainPID {before['MainPID']} -> {after['MainPID']}",
    )
    version = run("/usr/bin/polaris-agent", "--version").stdout.strip()
    record(bool(version), "new version runs", version)

    # What is the operator's: the edited config and the key file, byte for byte.
    changed = [path for path, value in kept.items() if digest(path) != value]
    record(not changed, "config kept", f"changed: {changed}" if changed else ", ".join(KEPT))
    record(
        checkpoint() >= offset_before,
        "checkpoint kept",
        f"{checkpoint()} after, {offset_before} before",
    )
    left = spool_files()
    record(
        before_spool <= left,
        "spool kept",
        f"{len(before_spool & left)}/{len(before_spool)} spooled file(s) still there",
    )

    # Polaris answers again: the spool is delivered, and nothing was read again from the start.
    dev("DELETE", "faults")
    total = LINES + DURING_OUTAGE
    record(
        wait_for(lambda: shipped() >= total and not spool_files(), 120),
        "spool delivered after the upgrade",
        f"{shipped()}/{total} lines, {len(spool_files())} spool file(s) left",
    )
    append_lines(total, AFTER_UPGRADE)
    total += AFTER_UPGRADE
    record(
        wait_for(lambda: shipped() >= total, 60),
        "the new version tails",
        f"{shipped()}/{total} lines",
    )
    record(
        shipped() < total + LINES,
        "resumed from the checkpoint",
        f"{shipped()} lines for {total} written (a start from 0 would add {LINES})",
    )


def main() -> int:
    try:
        upgrade()
    except Exception as exc:  # a crash of the check is a failure, said, not a hang
        record(False, "upgrade check", f"{type(exc).__name__}: {exc}")
    if any(line.startswith("FAIL") for line in results):
        print(journal_tail(40), flush=True)
    RESULTS.write_text("\n".join(results) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
