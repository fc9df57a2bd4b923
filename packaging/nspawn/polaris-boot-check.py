#!/usr/bin/python3
"""Heavy check, inside a container booted with `systemd-nspawn --boot` (packaging/check-heavy.sh).

Asserts what only a real systemd can show about polaris-agent.service, installed from the .deb:
READY=1 (Type=notify), the service identity, shipping from a root:adm 0640 file under the
unit's sandbox, StateDirectory, watchdog pings, reload (RELOADING=1 then READY=1; a bad config
refused), a clean stop (STOPPING=1, exit 0) and a restart that resumes from the checkpoints.
Last, the journald source (issue 17): journal-writer.service logs numbered lines through the
real journald, the agent (in group systemd-journal) ships them and is restarted while the
writer goes on, and every numbered line must reach the dev-server at least once (SQL).

PID 1 runs at LogLevel=debug, so every sd_notify datagram shows up in the journal as
"Got notification message from PID N (READY=1, STATUS=...)". Results go to the console and to
/root/polaris-check.results as PASS/FAIL lines; the container powers off afterwards.
Standard library only: this runs on the container's /usr/bin/python3.
"""

from __future__ import annotations

import base64
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
# systemd 252 (Debian 12): "... from PID 77 (READY=1, STATUS=x)"; 257 (Debian 13): "... from PID 77:
# READY=1, STATUS=x".
NOTIFY = re.compile(r"Got notification message from PID (\d+)(?: \((.*)\)|: (.*))")
WRITER = "journal-writer.service"
WRITER_LINE = re.compile(r"journal-writer seq=(\d+)")
JOURNAL_SOURCE = "journal"
DEFAULTS = "/etc/default/polaris-agent"
ADMIN_STATUS_URL = "http://127.0.0.1:8686/status"

results: list[str] = []


def record(ok: bool, name: str, detail: str) -> bool:
    line = f"{'PASS' if ok else 'FAIL'} {name}: {detail}"
    results.append(line)
    print(line, flush=True)
    return ok


def run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=False)


def show(*props: str, unit: str = UNIT) -> dict[str, str]:
    out = run("systemctl", "show", unit, *(f"--property={p}" for p in props)).stdout
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
    return [m.group(2) or m.group(3) for line in unit_journal(after) if (m := NOTIFY.search(line))]


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


def environment_file(path: str = DEFAULTS) -> dict[str, str]:
    with open(path, encoding="utf-8") as handle:
        pairs = (line.strip().split("=", 1) for line in handle if "=" in line)
        return {key: value for key, value in pairs}


def shipped_journal_lines() -> list[int]:
    """The numbers of journal-writer's lines in the dev-server's table, one per row (a line
    sent twice appears twice). The query waits until the job ingested what was pushed."""
    env = environment_file()
    project = env["POLARIS_PROJECT_ID"]
    sql = f"SELECT message FROM \"{CONNECTION}\" WHERE message LIKE 'journal-writer seq=%'"
    request = urllib.request.Request(
        f"http://127.0.0.1:8080/v1/projects/{project}/query/sql",
        data=json.dumps({"query": sql}).encode(),
        headers={
            "Content-Type": "application/json",
            "Authorization": "Basic "
            + base64.b64encode(f"{env['POLARIS_API_KEY']}:".encode()).decode(),
        },
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        rows = json.load(response)
    return [int(m.group(1)) for row in rows if (m := WRITER_LINE.fullmatch(row["message"] or ""))]


def written_so_far() -> int:
    """The last number journal-writer logged, as the journal holds it (0: nothing yet)."""
    out = run("journalctl", "-u", WRITER, "-o", "cat", "--no-pager").stdout.splitlines()
    numbers = [int(m.group(1)) for line in out if (m := WRITER_LINE.fullmatch(line))]
    return max(numbers, default=0)


def journal_source_status() -> dict[str, object]:
    try:
        with urllib.request.urlopen(ADMIN_STATUS_URL, timeout=5) as response:
            document = json.load(response)
    except OSError as exc:
        return {"status_error": str(exc)}
    for source in document.get("sources", []):
        if source.get("name") == JOURNAL_SOURCE:
            return dict(source.get("journal") or {})
    return {}


def journal_events(after: str, limit: int = 6) -> str:
    """The agent's own log lines about its journald source (journal_child_stderr,
    journal_child_exited, journal_cursor_missing...), the last `limit` distinct ones."""
    found: list[str] = []
    for line in unit_journal(after):
        if '"event":"journal_' in line or '"event": "journal_' in line:
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            for key in ("timestamp", "pid", "retry_in"):  # one line per kind, not per child
                entry.pop(key, None)
            text = json.dumps(entry, sort_keys=True)
            if text not in found:
                found.append(text)
    hint = ""
    if any("Failed to get boot id" in text for text in found):
        hint = (
            " -- journalctl --follow reads /proc/sys/kernel/random/boot_id, which the unit's"
            " ProcSubset=pid hides (systemd/polaris-agent.service)"
        )
    return (" | ".join(found[-limit:]) or "none") + hint


def ranges(numbers: list[int]) -> str:
    """[1, 2, 3, 7] -> '1-3,7' (the first 10 runs)."""
    runs: list[str] = []
    for n in sorted(numbers):
        if runs and n == int(runs[-1].rsplit("-", 1)[-1]) + 1:
            runs[-1] = f"{runs[-1].split('-')[0]}-{n}"
        else:
            runs.append(str(n))
    return ",".join(runs[:10]) + (",..." if len(runs) > 10 else "")


def _writer_entries(argv: list[str]) -> tuple[str, dict[int, dict[str, object]]]:
    """journalctl -o json `argv`: the writer's numbered entries by number (stderr if none)."""
    proc = run(*argv, timeout=60)
    found: dict[int, dict[str, object]] = {}
    for line in proc.stdout.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        message = entry.get("MESSAGE")
        if type(message) is str and (m := WRITER_LINE.fullmatch(message)):
            found[int(m.group(1))] = entry
    return proc.stderr.strip()[:300], found


def journald_diagnosis(missing: list[int]) -> str:
    """On a failure only: where the missing lines are and who sees them. The same queries as
    root, as polaris-agent, and as polaris-agent inside the unit's mount namespace (its
    sandbox), by --unit= and by _SYSTEMD_UNIT=, with the fields of the first missing line and
    of the first line that arrived."""
    keep = (
        "_SYSTEMD_UNIT",
        "UNIT",
        "_SYSTEMD_INVOCATION_ID",
        "_PID",
        "_TRANSPORT",
        "_BOOT_ID",
        "SYSLOG_IDENTIFIER",
        "_SYSTEMD_CGROUP",
        "__CURSOR",
        "__REALTIME_TIMESTAMP",
        "_SOURCE_REALTIME_TIMESTAMP",
    )
    agent_pid = show("MainPID").get("MainPID", "0")
    user = ["setpriv", "--reuid=polaris-agent", "--regid=polaris-agent", "--init-groups"]
    sandbox = ["nsenter", "-t", agent_pid, "-m", *user] if agent_pid != "0" else user
    base = ["journalctl", "-o", "json", "--no-pager", "--all"]
    parts: list[str] = []
    first = missing[0]
    probe = [first, missing[-1], missing[-1] + 1]
    for who, prefix in (("root", []), ("user", user), ("sandbox", sandbox)):
        for match in (f"--unit={WRITER}", f"_SYSTEMD_UNIT={WRITER}"):
            err, entries = _writer_entries([*prefix, *base, match])
            numbers = sorted(entries)
            parts.append(
                f"[{who} {match}] {len(numbers)} lines, first {numbers[:1]}, missing ones"
                f" seen {len(set(missing) & set(numbers))}" + (f", stderr {err!r}" if err else "")
            )
            if who == "root" and match.startswith("--unit"):
                for n in probe:
                    if n in entries:
                        fields = {k: entries[n].get(k) for k in keep}
                        parts.append(f"[seq={n}] {json.dumps(fields, sort_keys=True)}")
    for n in (first, missing[-1]):
        err, entries = _writer_entries([*base, f"MESSAGE=journal-writer seq={n}"])
        for entry in entries.values():
            fields = {k: entry.get(k) for k in (*keep, "_COMM", "_EXE", "_CMDLINE")}
            parts.append(f"[root MESSAGE=seq={n}] {json.dumps(fields, sort_keys=True)} {err}")
    listing = run("sh", "-c", "ls -l --time-style=+%T.%N /var/log/journal/* /run/log/journal/*")
    parts.append("[files] " + " ; ".join(listing.stdout.split("\n")[:20]))
    return " || ".join(parts)


def check_journald() -> bool:
    """The journald source against the real journald: a unit logs numbered lines, the agent
    is restarted while it does, and every line arrives at least once."""
    mark = cursor()
    environment = show("Environment", unit=WRITER).get("Environment", "")
    lines = int(m.group(1)) if (m := re.search(r"\bJOURNAL_LINES=(\d+)", environment)) else 0
    proc = run("systemctl", "start", UNIT, timeout=60)
    if not record(
        proc.returncode == 0 and active() and lines > 0,
        "journald-start",
        f"systemctl start rc={proc.returncode}, {WRITER} will log {lines} lines",
    ):
        return False
    # The group that reads the system journal: in the user's groups (postinst) and in the
    # running process's (SupplementaryGroups=), where journalctl inherits it from.
    journal_gid = grp.getgrnam("systemd-journal").gr_gid
    user_groups = run("id", "-nG", "polaris-agent").stdout.split()
    pid = show("MainPID").get("MainPID", "0")
    with open(f"/proc/{pid}/status", encoding="ascii") as handle:
        fields = dict(line.split(":", 1) for line in handle if ":" in line)
    process_groups = {int(g) for g in fields["Groups"].split()}
    record(
        "systemd-journal" in user_groups and journal_gid in process_groups,
        "journald-group",
        f"user polaris-agent in {','.join(user_groups)};"
        f" agent process (pid {pid}) in systemd-journal: {journal_gid in process_groups}",
    )

    started = time.monotonic()
    proc = run("systemctl", "start", WRITER, timeout=30)
    if not record(proc.returncode == 0, "journald-writer", f"systemctl start {WRITER}"):
        return False
    # Restart midway: once a fifth of the lines is at the dev-server, while the writer writes.
    seen: list[int] = []

    def arrived() -> set[int]:
        seen[:] = shipped_journal_lines()
        return set(seen)

    reached = wait_for(lambda: len(arrived()) >= lines // 5, timeout=60, step=0.3)
    before = len(set(seen))
    writing = show("ActiveState", unit=WRITER).get("ActiveState") == "active"
    written_at_restart = written_so_far()
    restart_at = time.monotonic() - started
    proc = run("systemctl", "restart", UNIT, timeout=90)
    back = proc.returncode == 0 and active() and show("MainPID").get("MainPID") != pid
    written_when_back = written_so_far()
    still_writing = show("ActiveState", unit=WRITER).get("ActiveState") == "active"
    midway = reached and writing and back and written_at_restart < lines
    record(
        midway,
        "journald-restart",
        f"systemctl restart rc={proc.returncode} at {restart_at:.1f}s with {before}/{lines} lines"
        f" at the dev-server and the writer at line {written_at_restart}"
        f" (still writing: {writing}); back up with a new MainPID: {back}, writer at line"
        f" {written_when_back} (still writing: {still_writing})"
        + ("" if midway else f"; the agent's journal_* events: {journal_events(mark)}"),
    )

    done = wait_for(
        lambda: show("ActiveState", unit=WRITER).get("ActiveState") != "active",
        timeout=120,
        step=0.5,
    )
    writer = show("Result", "ExecMainStatus", unit=WRITER)
    wanted = set(range(1, lines + 1))
    complete = wait_for(lambda: wanted <= arrived(), timeout=60, step=0.5)
    took = time.monotonic() - started
    distinct = set(seen)
    missing = sorted(wanted - distinct)
    status = journal_source_status()
    ok = (
        complete
        and done
        and writer.get("Result") == "success"
        and written_so_far() == lines
        and not missing
    )
    detail = (
        f"{len(distinct & wanted)}/{lines} numbered lines of {WRITER} (real journald) at the"
        f" dev-server after {took:.1f}s, {len(seen) - len(distinct)} of them sent twice"
        f" (at least once across the restart); writer Result={writer.get('Result')}"
        f" ExecMainStatus={writer.get('ExecMainStatus')}; source {JOURNAL_SOURCE!r}: {status}"
    )
    if missing:
        detail += (
            f"; MISSING {len(missing)}: {ranges(missing)};"
            f" the agent's journal_* events: {journal_events(mark)}"
        )
    record(ok, "journald-ships-across-restart", detail)
    if missing:
        try:
            diagnosis = journald_diagnosis(missing)
        except Exception as exc:  # a diagnosis that fails must not hide the result
            diagnosis = f"{type(exc).__name__}: {exc}"
        print(f"DIAG journald: {diagnosis}", flush=True)
        results.append(f"DIAG journald: {diagnosis}")
    return check_stop("stop-after-journald") and ok


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
        check_journald,  # last: its lines go to the same table as the file checks' lines
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
