#!/usr/bin/python3
"""Heavy check, inside a container booted with `systemd-nspawn --boot` (packaging/check-heavy.sh).

Asserts what only a real systemd can show about polaris-agent.service, installed from the .deb:
READY=1 (Type=notify), the service identity, shipping from a root:adm 0640 file under the
unit's sandbox, StateDirectory, watchdog pings, reload (RELOADING=1 then READY=1; a bad config
refused), a clean stop (STOPPING=1, exit 0) and a restart that resumes from the checkpoints.

PID 1 runs at LogLevel=debug, so every sd_notify datagram shows up in the journal as
"Got notification message from PID N (READY=1, STATUS=...)". Results go to the console and to
/root/polaris-check.results as PASS/FAIL lines; the container powers off afterwards.
Standard library only: this runs on the container's /usr/bin/python3.
"""

from __future__ import annotations

import grp
import json
import os
import pwd
import re
import stat
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime

UNIT = "polaris-agent.service"
RESULTS = "/root/polaris-check.results"
LOG_FILE = "/var/log/polaris-check/app.log"
CONFIG = "/etc/polaris-agent/config.toml"
STATS_URL = "http://127.0.0.1:8080/_dev/stats"
CONNECTION = "heavy_check"
LINES = int(os.environ.get("CHECK_LINES", "500"))
NOTIFY = re.compile(r"Got notification message from PID (\d+) \((.*)\)")

results: list[str] = []


def record(ok: bool, name: str, detail: str) -> bool:
    line = f"{'PASS' if ok else 'FAIL'} {name}: {detail}"
    results.append(line)
    print(line, flush=True)
    return ok


def run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=False)


def show(*props: str) -> dict[str, str]:
    out = run("systemctl", "show", UNIT, *(f"--property={p}" for p in props)).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def cursor() -> str:
    out = run("journalctl", "--show-cursor", "-n", "0", "--quiet").stdout
    match = re.search(r"-- cursor: (.*)", out)
    return match.group(1).strip() if match else ""


def unit_journal(after: str = "") -> list[str]:
    args = ["journalctl", "-u", UNIT, "-o", "cat", "--no-pager"]
    if after:
        args += ["--after-cursor", after]
    return run(*args).stdout.splitlines()


def notifications(after: str = "") -> list[str]:
    """The sd_notify messages PID 1 received from the unit, in order, e.g. 'READY=1, STATUS=x'."""
    return [m.group(2) for line in unit_journal(after) if (m := NOTIFY.search(line))]


def has(messages: list[str], field: str) -> bool:
    return any(field in m.split(", ") for m in messages)


def wait_for(predicate: Callable[[], bool], timeout: float, step: float = 0.25) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return predicate()


def shipped() -> int:
    try:
        with urllib.request.urlopen(STATS_URL, timeout=2) as response:
            stats = json.load(response)
    except OSError:
        return -1
    return int(stats.get("lines", {}).get(CONNECTION, 0))


def active() -> bool:
    props = show("ActiveState", "SubState")
    return (props.get("ActiveState"), props.get("SubState")) == ("active", "running")


def tail_journal(after: str = "", lines: int = 15) -> str:
    return " | ".join(line for line in unit_journal(after)[-lines:] if "notification" not in line)


def check_ready() -> bool:
    props = show("ActiveState", "SubState", "Result", "Type", "StatusText", "MainPID")
    messages = notifications()
    ok = active() and props.get("Type") == "notify" and has(messages, "READY=1")
    detail = (
        f"Type={props.get('Type')} ActiveState={props.get('ActiveState')}"
        f" SubState={props.get('SubState')} Result={props.get('Result')}"
        f" READY=1 seen={has(messages, 'READY=1')} StatusText={props.get('StatusText')!r}"
    )
    if not ok:
        detail += f"; journal: {tail_journal()}"
    return record(ok, "ready", detail)


def check_status_text() -> bool:
    text = show("StatusText").get("StatusText", "")
    statuses = [m for m in notifications() if "STATUS=" in m]
    return record(bool(text), "status", f"StatusText={text!r}, {len(statuses)} STATUS= messages")


def check_identity() -> bool:
    pid = show("MainPID").get("MainPID", "0")
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as handle:
            fields = dict(line.split(":", 1) for line in handle if ":" in line)
    except OSError as exc:
        return record(False, "identity", f"no main process ({exc})")
    uid = int(fields["Uid"].split()[0])
    groups = {int(g) for g in fields["Groups"].split()}
    wanted = {grp.getgrnam("adm").gr_gid, grp.getgrnam("systemd-journal").gr_gid}
    user = pwd.getpwuid(uid).pw_name
    ok = user == "polaris-agent" and wanted <= groups and uid != 0
    names = sorted(grp.getgrgid(g).gr_name for g in groups)
    return record(ok, "identity", f"uid={uid}({user}) groups={','.join(names)}")


def check_shipping(expected: int, name: str) -> bool:
    started = time.monotonic()
    ok = wait_for(lambda: shipped() >= expected, timeout=30)
    count = shipped()
    ok = ok and count == expected
    return record(
        ok,
        name,
        f"{count}/{expected} lines at the dev-server after {time.monotonic() - started:.1f}s"
        f" (source {LOG_FILE}, root:adm 0640)",
    )


def check_state_dir() -> bool:
    path = "/var/lib/polaris-agent"
    try:
        info = os.stat(path)
        entries = sorted(os.listdir(path))
    except OSError as exc:
        return record(False, "state-dir", str(exc))
    owner = pwd.getpwuid(info.st_uid).pw_name
    mode = stat.S_IMODE(info.st_mode)
    ok = owner == "polaris-agent" and mode == 0o700 and bool(entries)
    return record(ok, "state-dir", f"{path} {owner} {mode:04o}, holds {entries}")


def check_watchdog() -> bool:
    before = show("WatchdogUSec", "WatchdogTimestampMonotonic", "MainPID", "NRestarts")
    mark = cursor()
    time.sleep(6)
    after = show("WatchdogTimestampMonotonic", "MainPID", "NRestarts")
    pings = [m for m in notifications(mark) if "WATCHDOG=1" in m.split(", ")]
    advanced = int(after.get("WatchdogTimestampMonotonic", "0") or 0) > int(
        before.get("WatchdogTimestampMonotonic", "0") or 0
    )
    ok = (
        before.get("WatchdogUSec") == "3s"
        and len(pings) >= 2
        and advanced
        and after.get("MainPID") == before.get("MainPID") != "0"
        and after.get("NRestarts") == "0"
        and active()
    )
    return record(
        ok,
        "watchdog",
        f"WatchdogUSec={before.get('WatchdogUSec')}, {len(pings)} WATCHDOG=1 in 6s,"
        f" last ping advanced={advanced}, NRestarts={after.get('NRestarts')}",
    )


def check_reload() -> bool:
    pid = show("MainPID").get("MainPID")
    mark = cursor()
    started = time.monotonic()
    proc = run("systemctl", "reload", UNIT, timeout=60)
    took = time.monotonic() - started
    time.sleep(0.5)
    messages = notifications(mark)
    reloading = next((i for i, m in enumerate(messages) if has([m], "RELOADING=1")), None)
    ready_after = reloading is not None and has(messages[reloading:], "READY=1")
    monotonic = reloading is not None and "MONOTONIC_USEC=" in messages[reloading]
    same_pid = show("MainPID").get("MainPID") == pid
    ok = proc.returncode == 0 and ready_after and monotonic and same_pid and active()
    return record(
        ok,
        "reload",
        f"systemctl reload rc={proc.returncode} in {took:.1f}s, RELOADING=1 (+MONOTONIC_USEC)"
        f" then READY=1: {ready_after and monotonic}, MainPID unchanged: {same_pid}"
        + ("" if ok else f"; {proc.stderr.strip()}; journal: {tail_journal(mark)}"),
    )


def check_bad_reload() -> bool:
    pid = show("MainPID").get("MainPID")
    with open(CONFIG, encoding="utf-8") as handle:
        good = handle.read()
    mark = cursor()
    try:
        with open(CONFIG, "a", encoding="utf-8") as handle:
            handle.write("\nnot_a_key = 1\n")
        proc = run("systemctl", "reload", UNIT, timeout=60)
    finally:
        with open(CONFIG, "w", encoding="utf-8") as handle:
            handle.write(good)
    time.sleep(0.5)
    sent_hup = has(notifications(mark), "RELOADING=1")
    same_pid = show("MainPID").get("MainPID") == pid
    ok = proc.returncode != 0 and not sent_hup and same_pid and active()
    return record(
        ok,
        "reload-bad-config",
        f"systemctl reload rc={proc.returncode} (ExecReload check refused the config),"
        f" no RELOADING=1: {not sent_hup}, still running with the same MainPID: {same_pid}",
    )


def check_security() -> bool:
    out = run("systemd-analyze", "security", UNIT).stdout.strip().splitlines()
    last = out[-1] if out else ""
    match = re.search(r"exposure level for \S+: ([\d.]+)", last)
    score = float(match.group(1)) if match else 99.0
    return record(score <= 2.0, "security-online", last or "no output")


def check_stop(name: str) -> bool:
    mark = cursor()
    started = time.monotonic()
    proc = run("systemctl", "stop", UNIT, timeout=90)
    took = time.monotonic() - started
    props = show("ActiveState", "Result", "ExecMainCode", "ExecMainStatus")
    journal = unit_journal(mark)
    stopping = has(notifications(mark), "STOPPING=1")
    deactivated = any("Deactivated successfully" in line for line in journal)
    ok = (
        proc.returncode == 0
        and props.get("ActiveState") == "inactive"
        and props.get("Result") == "success"
        and props.get("ExecMainStatus") == "0"
        and stopping
        and deactivated
    )
    return record(
        ok,
        name,
        f"systemctl stop rc={proc.returncode} in {took:.1f}s, STOPPING=1 seen: {stopping},"
        f" ExecMainStatus={props.get('ExecMainStatus')} Result={props.get('Result')},"
        f" 'Deactivated successfully': {deactivated}",
    )


def check_restart_resumes() -> bool:
    proc = run("systemctl", "start", UNIT, timeout=60)
    started = proc.returncode == 0 and active()
    if not record(started, "restart", f"systemctl start rc={proc.returncode}"):
        return False
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    with open(LOG_FILE, "a", encoding="utf-8") as handle:
        for i in range(100):
            handle.write(json.dumps({"event_time": now, "n": LINES + i, "message": "more"}) + "\n")
    ok = check_shipping(LINES + 100, "resume-from-checkpoints")
    return check_stop("stop-after-restart") and ok


def main() -> int:
    checks: list[Callable[[], bool]] = [
        check_ready,
        check_status_text,
        check_identity,
        lambda: check_shipping(LINES, "ship"),
        check_state_dir,
        check_watchdog,
        check_reload,
        check_bad_reload,
        check_security,
        lambda: check_stop("stop"),
        check_restart_resumes,
    ]
    for check in checks:
        try:
            check()
        except Exception as exc:  # one broken check must not hide the others
            record(False, getattr(check, "__name__", "check"), f"{type(exc).__name__}: {exc}")
    with open(RESULTS, "w", encoding="utf-8") as handle:
        handle.write("\n".join(results) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
