#!/usr/bin/env bash
# Upgrade check (`bash packaging/check-upgrade.sh` as root; a few minutes, not part of
# `make test`): the .deb of version N installed and running, then N+1 installed over it inside
# the booted system.
#   1. two .debs: N (Debian revision 1) and N+1 (revision 2), built by packaging/build-deb.sh
#      from the same wheel, or N from an older commit with OLD_REF=<git ref> (the agent, its
#      unit and its maintainer scripts all from that commit, built by its own build-deb.sh)
#   2. a copy of the cached Debian 12 root with systemd (made by `make package-check`,
#      .cache/packaging/sysroot-base): `dpkg -i` of N in a chroot (postinst exits 0), the
#      operator's edits (packaging/nspawn/upgrade-config.toml as config.toml, the key in
#      /etc/default/polaris-agent), a dev-server unit, 500 lines in a root:adm 0640 log file
#   3. `systemd-nspawn --boot`: polaris-upgrade-check.service (packaging/nspawn/
#      polaris-upgrade-check.py) waits until N shipped the lines, makes the dev-server fail so
#      that new lines are spooled, runs `dpkg -i` of N+1 and asserts: dpkg exits 0 (prerm,
#      postinst), the package is at N+1 and configured, the service was restarted and runs,
#      config, key, checkpoint and spool were kept, the spool is delivered once Polaris answers,
#      nothing is read again from the start, the new version ships new lines
# Prints PASS/FAIL lines; exits 1 if anything failed. Needs root and the cached root.
# Env: OLD_REF (N from that commit; default: the working tree, like N+1), PREBUILT_OLD_DEB and
# PREBUILT_NEW_DEB (use these .debs), KEEP=1 keeps the root.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=$ROOT/.cache/packaging
OUT=${PACKAGE_UPGRADE_OUT:-$CACHE/upgrade}
PIP=${PIP:-$ROOT/.venv/bin/pip}
VENV_PY=$ROOT/.venv/bin/python
NSPAWN=$ROOT/packaging/nspawn
SYSROOT=$OUT/sysroot
LINES=500

failures=0
pass() { echo "PASS $*"; }
fail() { echo "FAIL $*"; failures=$((failures + 1)); }
section() { echo; echo "== $* (t=${SECONDS}s)"; }
finish() {
    echo
    if [ "$failures" -eq 0 ]; then
        echo "package-upgrade-check: all passed in ${SECONDS}s (logs in $OUT)"
    else
        echo "package-upgrade-check: $failures FAILED in ${SECONDS}s (logs in $OUT)"
    fi
    [ "${KEEP:-0}" = 1 ] || rm -rf "$SYSROOT" "$OUT/src-old"
    exit $((failures > 0))
}

if [ "$(id -u)" -ne 0 ]; then
    echo "SKIP upgrade check: chroot and systemd-nspawn need root (uid $(id -u))"
    exit 0
fi
for tool in systemd-nspawn dpkg-deb git; do
    command -v "$tool" >/dev/null || { fail "tools: $tool not found"; finish; }
done
if [ ! -e "$CACHE/sysroot-base.ok" ]; then
    fail "root: no $CACHE/sysroot-base (run \`make package-check\` once to make it)"
    finish
fi
mkdir -p "$OUT"

# --- 1. the two packages --------------------------------------------------------------------
wheel_from() { # SOURCE-DIR DEST-DIR -> the wheel's path
    rm -rf "$2" && mkdir -p "$2"
    "$PIP" wheel --quiet --no-deps -w "$2" "$1" >"$2.log" 2>&1 || { cat "$2.log" >&2; return 1; }
    ls "$2"/polaris_agent-*.whl
}

build_debs() {
    section "two versions of the .deb"
    if [ -n "${PREBUILT_OLD_DEB:-}" ] && [ -n "${PREBUILT_NEW_DEB:-}" ]; then
        OLD_DEB=$PREBUILT_OLD_DEB NEW_DEB=$PREBUILT_NEW_DEB
    else
        local new_wheel old_wheel old_build started=$SECONDS
        new_wheel=$(wheel_from "$ROOT" "$OUT/wheel-new") || { fail "wheel (working tree)"; finish; }
        old_wheel=$new_wheel
        # N is packaged by its own build-deb.sh, unit and maintainer scripts: an older agent
        # under today's unit is not a version that ever existed (its CLI may lack a flag).
        old_build=$ROOT/packaging/build-deb.sh
        if [ -n "${OLD_REF:-}" ]; then
            rm -rf "$OUT/src-old" && mkdir -p "$OUT/src-old"
            git -C "$ROOT" archive "$OLD_REF" | tar -x -C "$OUT/src-old"
            old_wheel=$(wheel_from "$OUT/src-old" "$OUT/wheel-old") || { fail "wheel ($OLD_REF)"; finish; }
            old_build=$OUT/src-old/packaging/build-deb.sh
            [ -f "$old_build" ] || { fail "deb N: $OLD_REF has no packaging/build-deb.sh"; finish; }
        fi
        rm -rf "$OUT/dist-old" "$OUT/dist-new"
        # From its own tree: an old build-deb.sh's smoke test runs `python -m agent` in the
        # current directory.
        if ! (cd "$(dirname "$old_build")/.." && DIST=$OUT/dist-old DEB_REVISION=1 PIP=$PIP \
            bash "$old_build" "$old_wheel") >"$OUT/build-old.log" 2>&1; then
            tail -20 "$OUT/build-old.log"
            fail "deb N: build-deb.sh failed ($OUT/build-old.log)"
            finish
        fi
        if ! DIST=$OUT/dist-new DEB_REVISION=2 bash "$ROOT/packaging/build-deb.sh" "$new_wheel" \
            >"$OUT/build-new.log" 2>&1; then
            tail -20 "$OUT/build-new.log"
            fail "deb N+1: build-deb.sh failed ($OUT/build-new.log)"
            finish
        fi
        OLD_DEB=$(ls "$OUT"/dist-old/polaris-agent_*.deb)
        NEW_DEB=$(ls "$OUT"/dist-new/polaris-agent_*.deb)
        echo "built in $((SECONDS - started))s${OLD_REF:+ (N from $OLD_REF)}"
    fi
    local old new
    old=$(dpkg-deb -f "$OLD_DEB" Version)
    new=$(dpkg-deb -f "$NEW_DEB" Version)
    if dpkg --compare-versions "$new" gt "$old"; then
        pass "packages: N = $old, N+1 = $new ($(basename "$OLD_DEB"), $(basename "$NEW_DEB"))"
    else
        fail "packages: $new is not newer than $old"
        finish
    fi
}

# --- 2. N installed in a copy of the systemd root, with the operator's edits ---------------
in_root() { chroot "$SYSROOT" "$@"; }

install_old() {
    section "dpkg -i N in a chroot (Debian 12)"
    rm -rf "$SYSROOT"
    cp -a "$CACHE/sysroot-base" "$SYSROOT"
    cp "$OLD_DEB" "$SYSROOT/tmp/polaris-agent.deb"
    cp "$NEW_DEB" "$SYSROOT/root/polaris-agent-new.deb" # the booted root has a tmpfs on /tmp
    if in_root dpkg -i /tmp/polaris-agent.deb </dev/null >"$OUT/dpkg-install-old.log" 2>&1; then
        pass "install N: dpkg -i $(basename "$OLD_DEB") (postinst exit 0)"
    else
        cat "$OUT/dpkg-install-old.log"
        fail "install N: dpkg -i failed"
        finish
    fi
    install -m 0640 -g "$(in_root getent group polaris-agent | cut -d: -f3)" \
        "$NSPAWN/upgrade-config.toml" "$SYSROOT/etc/polaris-agent/config.toml"
    printf 'POLARIS_API_KEY=upgrade-check-key\nPOLARIS_PROJECT_ID=upgrade-check-project\n' \
        >"$SYSROOT/etc/default/polaris-agent"
    install -d "$SYSROOT/etc/systemd/system/polaris-agent.service.d" \
        "$SYSROOT/etc/systemd/system.conf.d" "$SYSROOT/var/log/journal" "$SYSROOT/usr/local/sbin"
    install -m 0644 "$NSPAWN/heavy-check.conf" "$SYSROOT/etc/systemd/system/polaris-agent.service.d/"
    # nspawn's boot id into the unit's sandbox, as check-heavy.sh does (boot-id.conf says why).
    if ! grep -q '^ProcSubset=pid' "$SYSROOT/lib/systemd/system/polaris-agent.service" \
        && [ "$(in_root systemctl --version | awk 'NR == 1 {print $2}')" -lt 257 ]; then
        install -m 0644 "$NSPAWN/boot-id.conf" "$SYSROOT/etc/systemd/system/polaris-agent.service.d/"
    fi
    install -m 0644 "$NSPAWN/polaris-dev.service" "$NSPAWN/polaris-upgrade-check.service" \
        "$SYSROOT/etc/systemd/system/"
    install -m 0755 "$NSPAWN/polaris-dev-setup" "$SYSROOT/usr/local/sbin/polaris-dev-setup"
    install -m 0755 "$NSPAWN/polaris-upgrade-check.py" "$SYSROOT/usr/local/sbin/polaris-upgrade-check"
    in_root systemctl enable polaris-dev.service polaris-upgrade-check.service >/dev/null 2>&1
    install -d -m 0750 -g adm "$SYSROOT/var/log/polaris-check"
    "$VENV_PY" - "$SYSROOT/var/log/polaris-check/app.log" "$LINES" <<'PY'
import json, sys
from datetime import UTC, datetime
now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
with open(sys.argv[1], "w", encoding="utf-8") as out:
    for i in range(int(sys.argv[2])):
        out.write(json.dumps({"event_time": now, "n": i, "message": f"line {i}"}) + "\n")
PY
    chown root:adm "$SYSROOT/var/log/polaris-check/app.log"
    chmod 0640 "$SYSROOT/var/log/polaris-check/app.log"
    rm -f "$SYSROOT/root/polaris-upgrade.results"
}

# --- 3. boot, upgrade inside ----------------------------------------------------------------
boot_and_upgrade() {
    section "systemd-nspawn --boot: dpkg -i N+1 over the running N"
    local started=$SECONDS rc=0
    timeout 600 systemd-nspawn --register=no --keep-unit --quiet -D "$SYSROOT" --boot \
        >"$OUT/nspawn.log" 2>&1 </dev/null || rc=$?
    journalctl -D "$SYSROOT/var/log/journal" -u polaris-agent.service -u polaris-dev.service \
        -u polaris-upgrade-check.service -o short-monotonic --no-pager >"$OUT/journal.txt" 2>&1 \
        || true
    if [ ! -s "$SYSROOT/root/polaris-upgrade.results" ]; then
        tail -30 "$OUT/nspawn.log"
        fail "boot: no results after $((SECONDS - started))s (nspawn rc=$rc; $OUT/nspawn.log)"
        return
    fi
    pass "boot: $(in_root systemctl --version | head -1) booted and powered off" \
        "(nspawn rc=$rc, $((SECONDS - started))s)"
    local line
    while IFS= read -r line; do
        case $line in
            PASS*) pass "${line#PASS }" ;;
            *) fail "${line#FAIL }" ;;
        esac
    done <"$SYSROOT/root/polaris-upgrade.results"
}

build_debs
install_old
boot_and_upgrade
finish
