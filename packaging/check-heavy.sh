#!/usr/bin/env bash
# Heavy packaging checks (`make package-check`): what the fast tests in tests/packaging cannot
# show without building and booting things.
#   1. wheel -> .deb (packaging/build-deb.sh): md5sums, no activate/byte code, lintian with
#      no error and no warning
#   2. a debootstrap'ed Debian 12 root, then a Debian 13 one (cached in .cache/packaging;
#      BOOT_RELEASES="bookworm trixie" by default), `dpkg -i` of the .deb in
#      a chroot: user and groups, conffiles, enabled unit, systemd-analyze verify on the result
#   2b. the same .deb in minbase roots of Debian 12, Debian 13 and Ubuntu 24.04 (python3 3.11,
#      3.13, 3.12): dpkg -i, dpkg -V, byte code, `check`, `setup` + `run --once` against the
#      package's own dev-server, `dpkg --purge` leaving nothing
#   3. systemd booted in that root with `systemd-nspawn --boot`: the unit reaches READY, ships,
#      pings the watchdog, reloads, refuses a bad config, stops cleanly, resumes; then its
#      journald source: journal-writer.service logs numbered lines through the real journald,
#      the agent (group systemd-journal) ships them, is restarted midway, and every line
#      arrives at least once (packaging/nspawn/polaris-boot-check.py runs inside)
#   4. dpkg: reinstall keeps an edited conffile, purge removes user, state and files
#   5. the container image (podman, base made locally from the same debootstrap root): build,
#      non-root user, HEALTHCHECK, a --read-only run that ships and answers /healthz, clean stop
# Prints PASS/FAIL/SKIP lines; exits 1 if anything failed. Needs root (chroot, nspawn, podman)
# and the Debian and Ubuntu mirrors; installs debootstrap, systemd-container, podman and runc
# with apt when they are missing. Env: SKIP_IMAGE=1 skips 5; SKIP_BOOT=1 skips 2-4 (and
# BOOT_RELEASES=bookworm runs them on Debian 12 only);
# PREBUILT_DEB=path uses that .deb instead of building one; KEEP=1 keeps the work directory;
# PACKAGE_REF=HEAD (any git ref) packages the agent from that commit instead of the working
# tree (the packaging files themselves always come from the working tree).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=$ROOT/.cache/packaging
OUT=${PACKAGE_CHECK_OUT:-$CACHE/run}
PIP=${PIP:-$ROOT/.venv/bin/pip}
VENV_PY=$ROOT/.venv/bin/python
LINES=500
MIRROR=${DEBIAN_MIRROR:-$(sed -n 's/^URIs: *\(http[^ ]*debian\)$/\1/p' \
    /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -1)}
MIRROR=${MIRROR:-http://deb.debian.org/debian}

failures=0
pass() { echo "PASS $*"; }
fail() { echo "FAIL $*"; failures=$((failures + 1)); }
skip() { echo "SKIP $*"; }
section() { echo; echo "== $* (t=${SECONDS}s)"; }

finish() {
    echo
    if [ "$failures" -eq 0 ]; then
        echo "package-check: all passed in ${SECONDS}s (logs in $OUT)"
    else
        echo "package-check: $failures FAILED in ${SECONDS}s (logs in $OUT)"
    fi
    exit $((failures > 0))
}

if [ "$(id -u)" -ne 0 ]; then
    skip "all heavy checks: chroot, systemd-nspawn and podman need root (uid $(id -u))"
    exit 0
fi

ensure_tools() {
    local missing=()
    command -v debootstrap >/dev/null || missing+=(debootstrap)
    command -v systemd-nspawn >/dev/null || missing+=(systemd-container)
    command -v lintian >/dev/null || missing+=(lintian)
    if [ "${SKIP_IMAGE:-0}" != 1 ]; then
        command -v podman >/dev/null || missing+=(podman)
        command -v runc >/dev/null || missing+=(runc)
    fi
    if [ ${#missing[@]} -gt 0 ]; then
        echo "installing ${missing[*]} with apt-get"
        if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
            --no-install-recommends "${missing[@]}"; } >"$OUT/apt.log" 2>&1; then
            cat "$OUT/apt.log"
            fail "tools: apt-get install ${missing[*]}"
            finish
        fi
    fi
}

# --- 1. wheel and .deb --------------------------------------------------------------------
build_packages() {
    section "wheel and .deb"
    local started=$SECONDS
    rm -rf "$OUT/dist" && mkdir -p "$OUT/dist"
    if "$PIP" wheel --quiet --no-deps -w "$OUT/dist" "$SRC" >"$OUT/wheel.log" 2>&1; then
        WHEEL=$(ls "$OUT"/dist/polaris_agent-*.whl)
        pass "wheel: $(basename "$WHEEL") ($((SECONDS - started))s)"
    else
        fail "wheel: pip wheel failed (see $OUT/wheel.log)"
        finish
    fi
    started=$SECONDS
    if [ -n "${PREBUILT_DEB:-}" ]; then
        cp "$PREBUILT_DEB" "$OUT/dist/"
        DEB=$OUT/dist/$(basename "$PREBUILT_DEB")
        skip "deb build: PREBUILT_DEB=$PREBUILT_DEB"
    elif DIST=$OUT/dist bash "$ROOT/packaging/build-deb.sh" "$WHEEL" >"$OUT/build-deb.log" 2>&1; then
        DEB=$(ls "$OUT"/dist/polaris-agent_*.deb)
        pass "deb: $(basename "$DEB"), $(du -h "$DEB" | cut -f1), Installed-Size" \
            "$(dpkg-deb -f "$DEB" Installed-Size) KiB ($((SECONDS - started))s;" \
            "$(grep -o 'pinned by [^ ]*\|NOT pinned' "$OUT/build-deb.log" | head -1))"
    else
        cat "$OUT/build-deb.log"
        fail "deb: build-deb.sh failed"
        finish
    fi
    local conffiles
    conffiles=$(dpkg-deb -f "$DEB" Package >/dev/null && dpkg-deb --ctrl-tarfile "$DEB" \
        | tar -xO ./conffiles)
    if grep -qx /etc/polaris-agent/config.toml <<<"$conffiles"; then
        pass "deb conffiles: $(tr '\n' ' ' <<<"$conffiles")"
    else
        fail "deb conffiles: config.toml is not a conffile ($conffiles)"
    fi
    # md5sums: one line per regular file but the conffiles; no venv activate scripts or byte code.
    local sums files junk
    sums=$(dpkg-deb --ctrl-tarfile "$DEB" | tar -xO ./md5sums | wc -l)
    files=$(dpkg-deb --fsys-tarfile "$DEB" | tar -tv | grep -c '^-')
    junk=$(dpkg-deb -c "$DEB" | awk '{print $6}' | grep -E '/activate|\.pyc$|__pycache__' || true)
    if [ "$sums" -eq $((files - $(wc -l <<<"$conffiles"))) ] && [ -z "$junk" ]; then
        pass "deb md5sums: $sums files (all but the conffiles); no activate scripts, no byte code"
    else
        fail "deb md5sums: $sums lines for $files files; shipped: $junk"
    fi
    if command -v lintian >/dev/null; then
        # Errors and warnings fail; each override in packaging/deb/lintian-overrides says why.
        lintian --tag-display-limit 0 "$DEB" >"$OUT/lintian.log" 2>&1 || true
        local errors warnings overridden
        errors=$(grep -c '^E:' "$OUT/lintian.log" || true)
        warnings=$(grep -c '^W:' "$OUT/lintian.log" || true)
        overridden=$(lintian --show-overrides --tag-display-limit 0 "$DEB" 2>/dev/null \
            | awk '/^O:/ {print $3}' | sort | uniq -c | awk '{printf "%s%s x%s", s, $2, $1; s=", "}' \
            || true)
        if [ "$errors" -eq 0 ] && [ "$warnings" -eq 0 ]; then
            pass "lintian $(lintian --version | awk '{print $2}'): 0 errors, 0 warnings (overridden: $overridden)"
        else
            grep -E '^(E|W):' "$OUT/lintian.log" | sort | head -20
            fail "lintian: $errors errors, $warnings warnings ($OUT/lintian.log)"
        fi
    else
        skip "lintian: not installed and apt-get could not install it"
    fi
}

# --- 2. debootstrap root and the chroot install ----------------------------------------------
ensure_rootfs() {
    section "Debian 12 roots (cached in $CACHE)"
    if [ ! -e "$CACHE/rootfs-bookworm.ok" ]; then
        local started=$SECONDS
        rm -rf "$CACHE/rootfs-bookworm" "$CACHE/rootfs-bookworm.tmp"
        debootstrap --variant=minbase --include=python3,python3-venv,tini,ca-certificates \
            bookworm "$CACHE/rootfs-bookworm.tmp" "$MIRROR" >"$CACHE/debootstrap.log" 2>&1 \
            || { tail -20 "$CACHE/debootstrap.log"; fail "debootstrap from $MIRROR"; finish; }
        mv "$CACHE/rootfs-bookworm.tmp" "$CACHE/rootfs-bookworm"
        touch "$CACHE/rootfs-bookworm.ok"
        echo "debootstrap: $((SECONDS - started))s"
    fi
    if [ ! -e "$CACHE/sysroot-base.ok" ]; then
        local started=$SECONDS
        rm -rf "$CACHE/sysroot-base" "$CACHE/sysroot-base.tmp"
        cp -a "$CACHE/rootfs-bookworm" "$CACHE/sysroot-base.tmp"
        cp /etc/resolv.conf "$CACHE/sysroot-base.tmp/etc/resolv.conf"
        chroot "$CACHE/sysroot-base.tmp" sh -c 'apt-get update -qq
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
                systemd systemd-sysv dbus adduser procps && apt-get clean' \
            >"$CACHE/sysroot-base.log" 2>&1 \
            || { tail -20 "$CACHE/sysroot-base.log"; fail "systemd into the root"; finish; }
        mv "$CACHE/sysroot-base.tmp" "$CACHE/sysroot-base"
        touch "$CACHE/sysroot-base.ok"
        echo "systemd root: $((SECONDS - started))s"
    fi
    pass "roots: $CACHE/rootfs-bookworm, $CACHE/sysroot-base"
}

# Sections 2-4 run once per release: BOOT_BASE is the cached root with systemd, BOOT_NAME
# what the lines say (set by the loop at the end).
BOOT_BASE=sysroot-base
BOOT_NAME="Debian 12"
SYSROOT=$OUT/sysroot

# Debian 13's root with systemd (257), made from the minbase root of section 2b, cached.
ensure_sysroot_trixie() {
    [ -e "$CACHE/sysroot-trixie.ok" ] && return 0
    [ -e "$CACHE/rootfs-trixie.ok" ] || return 1
    local started=$SECONDS
    rm -rf "$CACHE/sysroot-trixie" "$CACHE/sysroot-trixie.tmp"
    cp -a "$CACHE/rootfs-trixie" "$CACHE/sysroot-trixie.tmp"
    cp /etc/resolv.conf "$CACHE/sysroot-trixie.tmp/etc/resolv.conf"
    chroot "$CACHE/sysroot-trixie.tmp" sh -c 'apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            systemd systemd-sysv dbus && apt-get clean' >"$CACHE/sysroot-trixie.log" 2>&1 \
        || { tail -20 "$CACHE/sysroot-trixie.log"; return 1; }
    mv "$CACHE/sysroot-trixie.tmp" "$CACHE/sysroot-trixie"
    touch "$CACHE/sysroot-trixie.ok"
    echo "systemd into the Debian 13 root: $((SECONDS - started))s"
}
in_root() { chroot "$SYSROOT" "$@"; }

install_deb() {
    section "dpkg -i in a chroot ($BOOT_NAME)"
    rm -rf "$SYSROOT"
    cp -a "$CACHE/$BOOT_BASE" "$SYSROOT"
    cp "$DEB" "$SYSROOT/tmp/polaris-agent.deb"
    if in_root dpkg -i /tmp/polaris-agent.deb </dev/null >"$OUT/dpkg-install.log" 2>&1; then
        pass "install: dpkg -i $(basename "$DEB") in a fresh $BOOT_NAME root"
    else
        cat "$OUT/dpkg-install.log"
        fail "install: dpkg -i failed"
        return
    fi
    local id
    id=$(in_root id polaris-agent 2>&1 || true)
    if [[ $id == *"(adm)"* && $id == *"(systemd-journal)"* ]] \
        && [ "$(in_root id -u polaris-agent)" -lt 1000 ]; then
        pass "user: $id"
    else
        fail "user: $id"
    fi
    local wants=$SYSROOT/etc/systemd/system/multi-user.target.wants/polaris-agent.service
    if [ -L "$wants" ]; then
        pass "enabled: multi-user.target.wants -> $(readlink "$wants")"
    else
        fail "enabled: no multi-user.target.wants/polaris-agent.service"
    fi
    local conffiles
    # shellcheck disable=SC2016 # ${Conffiles} is dpkg-query's field, not a shell variable
    conffiles=$(in_root dpkg-query -W -f='${Conffiles}' polaris-agent | awk 'NF {print $1}')
    if grep -qx /etc/polaris-agent/config.toml <<<"$conffiles"; then
        pass "dpkg conffiles: $(tr '\n' ' ' <<<"$conffiles")"
    else
        fail "dpkg conffiles: $conffiles"
    fi
    local perms
    perms=$(in_root stat -c '%U:%G %a' /etc/polaris-agent /etc/polaris-agent/config.toml \
        /etc/default/polaris-agent | tr '\n' ' ')
    if [ "$perms" = "root:polaris-agent 750 root:polaris-agent 640 root:root 600 " ]; then
        pass "permissions: /etc/polaris-agent, config.toml, /etc/default/polaris-agent: $perms"
    else
        fail "permissions: $perms"
    fi
    local version
    if version=$(in_root polaris-agent --version 2>&1) \
        && [ "$(readlink "$SYSROOT/opt/polaris-agent/bin/python")" = /usr/bin/python3 ]; then
        pass "venv: /usr/bin/polaris-agent runs on Debian's python3: $version"
    else
        fail "venv: $version"
    fi
    # The root's own systemd-analyze (run in the chroot; no systemd needs to run): the host's
    # 252 would report the newer root's own units (Debian 13's use ImportCredential=). No man
    # pages in these roots: --man=no.
    local verify
    if [ -x "$SYSROOT/usr/bin/systemd-analyze" ]; then
        verify=$(in_root systemd-analyze verify --man=no /lib/systemd/system/polaris-agent.service \
            2>&1) || true
    else
        verify=$(systemd-analyze verify --root="$SYSROOT" polaris-agent.service 2>&1) || true
    fi
    if [ -z "$verify" ]; then
        pass "systemd-analyze verify (installed layout, the root's systemd): no output"
    else
        fail "systemd-analyze verify: $verify"
    fi
}

# --- 2b. the same .deb on Debian 12, Debian 13 and Ubuntu 24.04 (python3 3.11, 3.13, 3.12) ---
# A minbase root per release (cached), `dpkg -i`, then as an operator would: `check`, and
# `setup` + `run --once` against the package's own dev-server (inside the chroot, on loopback),
# `dpkg -V` (md5sums), byte code for that python3 only, and `dpkg --purge` leaving nothing.
ensure_distro_root() { # NAME SUITE MIRROR SCRIPT [debootstrap options...]
    local name=$1 suite=$2 mirror=$3 script=$4
    shift 4
    [ -e "$CACHE/rootfs-$name.ok" ] && return 0
    local started=$SECONDS
    rm -rf "$CACHE/rootfs-$name" "$CACHE/rootfs-$name.tmp"
    # shellcheck disable=SC2086 # $script: no script (empty) or one path
    if debootstrap --variant=minbase --include=python3,adduser,procps,ca-certificates "$@" \
        "$suite" "$CACHE/rootfs-$name.tmp" "$mirror" $script >"$CACHE/debootstrap-$name.log" 2>&1
    then
        mv "$CACHE/rootfs-$name.tmp" "$CACHE/rootfs-$name"
        touch "$CACHE/rootfs-$name.ok"
        echo "debootstrap $suite: $((SECONDS - started))s"
    else
        tail -5 "$CACHE/debootstrap-$name.log"
        return 1
    fi
}

DISTRO_ROOT=
umount_distro() {
    [ -n "$DISTRO_ROOT" ] || return 0
    if [ -n "${DEVSERVER_PID:-}" ]; then
        kill "$DEVSERVER_PID" 2>/dev/null || true
        wait "$DEVSERVER_PID" 2>/dev/null || true
        DEVSERVER_PID=
    fi
    umount "$DISTRO_ROOT/proc" 2>/dev/null || true
    umount "$DISTRO_ROOT/dev" 2>/dev/null || true
}

distro_check() { # CACHED-ROOT NAME DESCRIPTION
    local name=$2 what=$3 root=$OUT/chroot-$2 log=$OUT/distro-$2.log
    rm -rf "$root"
    cp -a "$CACHE/$1" "$root"
    DISTRO_ROOT=$root
    mount -t proc proc "$root/proc"
    mount --bind /dev "$root/dev"
    cp "$DEB" "$root/tmp/polaris-agent.deb"
    local py
    py=$(chroot "$root" python3 -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])')
    if ! chroot "$root" dpkg -i /tmp/polaris-agent.deb </dev/null >"$log" 2>&1; then
        cat "$log"
        fail "$what: dpkg -i (python3 $py)"
        umount_distro
        return
    fi
    local version
    version=$(chroot "$root" polaris-agent --version 2>&1) || true
    pass "$what: dpkg -i, python3 $py, /usr/bin/polaris-agent --version: $version"
    local verify
    verify=$(chroot "$root" dpkg -V polaris-agent 2>&1) || true
    local pyc other
    pyc=$(find "$root/opt/polaris-agent/lib/python${py%.*}" -name '*.pyc' | wc -l)
    other=$(find "$root/opt/polaris-agent/lib" -name '*.pyc' ! -path "*/python${py%.*}/*" | wc -l)
    if [ -z "$verify" ] && [ "$pyc" -gt 0 ] && [ "$other" -eq 0 ]; then
        pass "$what: dpkg -V (md5sums) clean; postinst compiled $pyc .pyc for python${py%.*} only"
    else
        fail "$what: dpkg -V: '$verify'; .pyc for python${py%.*}: $pyc, for others: $other"
    fi
    # python3's runtime hook (what a python3 version change runs): old byte code removed (a
    # stale file planted first), the running version's compiled again.
    local again stale=$root/opt/polaris-agent/lib/python${py%.*}/site-packages/agent/__pycache__
    touch "$stale/stale.cpython-0.pyc"
    chroot "$root" /usr/share/python3/runtime.d/polaris-agent.rtupdate rtupdate \
        "python${py%.*}" "python${py%.*}" >>"$log" 2>&1 || true
    again=$(find "$root/opt/polaris-agent/lib" -name '*.pyc' | wc -l)
    if [ "$again" -eq "$pyc" ] && [ ! -e "$stale/stale.cpython-0.pyc" ]; then
        pass "$what: polaris-agent.rtupdate removed the old byte code, compiled $again .pyc"
    else
        fail "$what: polaris-agent.rtupdate left $again .pyc (postinst made $pyc)"
    fi

    # A dev-server from the package itself, a config, 300 lines.
    local port
    port=$(free_port)
    chroot "$root" polaris-agent dev-server --port "$port" --api-key distro-key \
        >"$OUT/distro-$name-devserver.log" 2>&1 &
    DEVSERVER_PID=$!
    if ! wait_http "http://127.0.0.1:$port/_dev/stats" 20; then
        fail "$what: dev-server from the package did not answer ($OUT/distro-$name-devserver.log)"
        umount_distro
        return
    fi
    mkdir -p "$root/srv/logs"
    "$VENV_PY" - "$root/srv/logs/app.log" 300 <<'PY'
import json, sys
from datetime import UTC, datetime
now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
with open(sys.argv[1], "w", encoding="utf-8") as out:
    for i in range(int(sys.argv[2])):
        out.write(json.dumps({"event_time": now, "n": i, "message": f"line {i}"}) + "\n")
PY
    cat >"$root/srv/config.toml" <<CONFIG
data_dir = "/srv/state"

[polaris]
url = "http://127.0.0.1:$port"
project_id = "\${POLARIS_PROJECT_ID}"
connection = "distro_check"
api_key = "\${POLARIS_API_KEY}"

[[sources]]
name = "app"
include = ["/srv/logs/*.log"]
format = "json"
time_field = "event_time"

[batch]
max_wait = "100ms"

[job]
table = "distro_check"
create_table_if_not_exists = true
read_from_point = "earliest"
input_schema = [{ name = "event_time", data_type = "string" }, { name = "message", data_type = "string" }]
mappings = [{ column = "__time", expression = 'TIME_PARSE("event_time")' }, { column = "message", expression = '"message"' }]
CONFIG
    local env=(env POLARIS_API_KEY=distro-key POLARIS_PROJECT_ID=p)
    if chroot "$root" "${env[@]}" polaris-agent check --config /srv/config.toml \
        >"$OUT/distro-$name-check.log" 2>&1; then
        pass "$what: polaris-agent check: $(head -1 "$OUT/distro-$name-check.log")"
    else
        cat "$OUT/distro-$name-check.log"
        fail "$what: polaris-agent check"
    fi
    if ! chroot "$root" "${env[@]}" polaris-agent setup --config /srv/config.toml \
        >"$OUT/distro-$name-setup.log" 2>&1; then
        cat "$OUT/distro-$name-setup.log"
        fail "$what: polaris-agent setup against the dev-server"
    fi
    local rc=0 count
    chroot "$root" "${env[@]}" polaris-agent run --once --once-timeout 60s \
        --config /srv/config.toml >"$OUT/distro-$name-once.log" 2>&1 || rc=$?
    count=$("$VENV_PY" -c 'import json, sys, urllib.request
with urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/_dev/stats", timeout=5) as r:
    print(json.load(r).get("lines", {}).get("distro_check", 0))' "$port")
    if [ "$rc" -eq 0 ] && [ "$count" = 300 ]; then
        pass "$what: run --once exit 0, 300/300 lines at the dev-server"
    else
        tail -20 "$OUT/distro-$name-once.log"
        fail "$what: run --once exit $rc, $count/300 lines"
    fi
    umount_distro

    # Purge: nothing of the package is left (files, byte code, state, user, config).
    chroot "$root" install -d -o polaris-agent /var/lib/polaris-agent/checkpoints
    if ! chroot "$root" dpkg --purge polaris-agent </dev/null >>"$log" 2>&1; then
        tail -5 "$log"
        fail "$what: dpkg --purge"
        return
    fi
    local left=() path
    chroot "$root" getent passwd polaris-agent >/dev/null && left+=("user polaris-agent")
    chroot "$root" getent group polaris-agent >/dev/null && left+=("group polaris-agent")
    for path in /opt/polaris-agent /var/lib/polaris-agent /etc/polaris-agent \
        /etc/default/polaris-agent /usr/bin/polaris-agent /lib/systemd/system/polaris-agent.service \
        /usr/share/doc/polaris-agent /usr/share/python3/runtime.d/polaris-agent.rtupdate; do
        if [ -e "$root$path" ] || [ -L "$root$path" ]; then left+=("$path"); fi
    done
    if [ ${#left[@]} -eq 0 ]; then
        pass "$what: dpkg --purge leaves nothing (files, byte code, state, config, user)"
    else
        fail "$what: purge left ${left[*]}"
    fi
    [ "${KEEP:-0}" = 1 ] || rm -rf "$root"
}

distros() {
    section "the .deb on Debian 12, Debian 13, Ubuntu 24.04 (chroots)"
    trap umount_distro EXIT
    ensure_distro_root trixie trixie "$MIRROR" "" || fail "debootstrap trixie from $MIRROR"
    # Ubuntu's archive key is not in Debian 12 (no ubuntu-keyring package): the Release file
    # is not verified (--no-check-gpg); this root only runs tests. Debootstrap 1.0.128 has no
    # noble script; Ubuntu's are all the same one (gutsy).
    local ubuntu=${UBUNTU_MIRROR:-http://archive.ubuntu.com/ubuntu}
    ensure_distro_root noble noble "$ubuntu" /usr/share/debootstrap/scripts/gutsy \
        --no-check-gpg --components=main \
        || skip "Ubuntu 24.04: debootstrap noble from $ubuntu failed (unreachable?)"
    # Debian 12: section 2's root (it has adduser and procps, which minbase lacks).
    distro_check sysroot-base bookworm "Debian 12"
    if [ -e "$CACHE/rootfs-trixie.ok" ]; then distro_check rootfs-trixie trixie "Debian 13"; fi
    if [ -e "$CACHE/rootfs-noble.ok" ]; then distro_check rootfs-noble noble "Ubuntu 24.04"; fi
    trap - EXIT
}

# --- 3. boot systemd in the root --------------------------------------------------------------
prepare_boot() {
    local n=$PACKAGING_NSPAWN
    # The agent's config and key, a local Polaris, the check service, debug logging of PID 1.
    install -m 0640 -g "$(in_root getent group polaris-agent | cut -d: -f3)" \
        "$n/config.toml" "$SYSROOT/etc/polaris-agent/config.toml"
    printf 'POLARIS_API_KEY=heavy-check-key\nPOLARIS_PROJECT_ID=heavy-check-project\n' \
        >"$SYSROOT/etc/default/polaris-agent"
    install -d "$SYSROOT/etc/systemd/system/polaris-agent.service.d" \
        "$SYSROOT/etc/systemd/system.conf.d" "$SYSROOT/etc/systemd/journald.conf.d" \
        "$SYSROOT/var/log/journal" "$SYSROOT/usr/local/sbin"
    install -m 0644 "$n/heavy-check.conf" "$SYSROOT/etc/systemd/system/polaris-agent.service.d/"
    # nspawn's boot id into the unit's sandbox (boot-id.conf says why); with ProcSubset=pid
    # there is no /proc/sys to bind it onto, and journalctl --follow fails there anyway.
    local systemd_version
    systemd_version=$(in_root systemctl --version | awk 'NR == 1 {print $2}')
    if grep -q '^ProcSubset=pid' "$SYSROOT/lib/systemd/system/polaris-agent.service"; then
        echo "note: the unit has ProcSubset=pid (no /proc/sys): boot-id.conf not installed"
    elif [ "$systemd_version" -ge 257 ]; then
        # Seen with 257: the unit then fails at NAMESPACE ("Failed to mount
        # /run/polaris-check-boot_id on .../proc/sys/kernel/random/boot_id: No such file or
        # directory"); the journald checks show whether the sandbox needs it there.
        echo "note: systemd $systemd_version: boot-id.conf not installed"
    else
        install -m 0644 "$n/boot-id.conf" "$SYSROOT/etc/systemd/system/polaris-agent.service.d/"
    fi
    install -m 0644 "$n/polaris-dev.service" "$n/polaris-check.service" \
        "$n/journal-writer.service" "$SYSROOT/etc/systemd/system/"
    install -m 0644 "$n/system-debug.conf" "$SYSROOT/etc/systemd/system.conf.d/"
    install -m 0644 "$n/journald-debug.conf" "$SYSROOT/etc/systemd/journald.conf.d/"
    install -m 0755 "$n/polaris-dev-setup" "$SYSROOT/usr/local/sbin/polaris-dev-setup"
    install -m 0755 "$n/polaris-boot-check.py" "$SYSROOT/usr/local/sbin/polaris-boot-check"
    install -m 0755 "$n/journal-writer" "$SYSROOT/usr/local/sbin/journal-writer"
    in_root systemctl enable polaris-dev.service polaris-check.service >/dev/null 2>&1
    # Only group adm may read the source: proves SupplementaryGroups=adm under the sandbox.
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
    rm -f "$SYSROOT/root/polaris-check.results"
}

boot() {
    section "systemd-nspawn --boot ($BOOT_NAME)"
    prepare_boot
    local started=$SECONDS rc=0
    timeout 300 systemd-nspawn --register=no --keep-unit --quiet -D "$SYSROOT" --boot \
        >"$OUT/nspawn.log" 2>&1 </dev/null || rc=$?
    journalctl -D "$SYSROOT/var/log/journal" -u polaris-agent.service -u polaris-dev.service \
        -o short-monotonic --no-pager >"$OUT/journal.txt" 2>&1 || true
    local took=$((SECONDS - started))
    if [ ! -s "$SYSROOT/root/polaris-check.results" ]; then
        tail -30 "$OUT/nspawn.log"
        fail "boot: no results after ${took}s (nspawn rc=$rc; $OUT/nspawn.log, $OUT/journal.txt)"
        return
    fi
    pass "boot: $(in_root systemctl --version | head -1) ($BOOT_NAME) booted the root and" \
        "powered off (nspawn rc=$rc, ${took}s)"
    local line
    while IFS= read -r line; do
        case $line in
            PASS*) pass "${line#PASS }" ;;
            DIAG*) printf '      %s\n' "$line" ;; # a failed check's diagnosis, not a check
            *) fail "${line#FAIL }" ;;
        esac
    done <"$SYSROOT/root/polaris-check.results"
}

# --- 4. reinstall keeps the edited conffile; purge cleans up -------------------------------
reinstall_and_purge() {
    section "dpkg reinstall and purge ($BOOT_NAME)"
    if in_root dpkg -i /tmp/polaris-agent.deb </dev/null >"$OUT/dpkg-reinstall.log" 2>&1 \
        && grep -q 'connection = "heavy_check"' "$SYSROOT/etc/polaris-agent/config.toml"; then
        pass "conffile: reinstalling kept the edited /etc/polaris-agent/config.toml"
    else
        fail "conffile: reinstall failed or replaced the edited config ($OUT/dpkg-reinstall.log)"
    fi
    if ! in_root dpkg --purge polaris-agent </dev/null >"$OUT/dpkg-purge.log" 2>&1; then
        fail "purge: dpkg --purge failed ($OUT/dpkg-purge.log)"
        return
    fi
    local left=()
    in_root getent passwd polaris-agent >/dev/null && left+=("user polaris-agent")
    local path
    for path in /var/lib/polaris-agent /etc/polaris-agent /opt/polaris-agent \
        /usr/bin/polaris-agent /etc/default/polaris-agent /lib/systemd/system/polaris-agent.service \
        /etc/systemd/system/multi-user.target.wants/polaris-agent.service; do
        if [ -e "$SYSROOT$path" ] || [ -L "$SYSROOT$path" ]; then left+=("$path"); fi
    done
    if [ ${#left[@]} -eq 0 ]; then
        pass "purge: user, state, config, venv and unit links are gone"
    else
        fail "purge left: ${left[*]}"
    fi
}

# --- 5. the container image ---------------------------------------------------------------
free_port() { "$VENV_PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

wait_http() { # URL SECONDS -> 0 once it answers 200
    "$VENV_PY" - "$1" "$2" <<'PY'
import sys, time, urllib.request
deadline = time.monotonic() + float(sys.argv[2])
while time.monotonic() < deadline:
    try:
        with urllib.request.urlopen(sys.argv[1], timeout=2) as r:
            if r.status == 200:
                sys.exit(0)
    except OSError:
        pass
    time.sleep(0.3)
sys.exit(1)
PY
}

IMAGE=localhost/polaris-agent:check
BASE_IMAGE=localhost/polaris-agent-base:bookworm
DEV_PID=
cleanup_image() {
    podman rm -f polaris-agent-check >/dev/null 2>&1 || true
    podman volume rm -f polaris-agent-check >/dev/null 2>&1 || true
    if [ -n "$DEV_PID" ]; then kill "$DEV_PID" 2>/dev/null || true; wait "$DEV_PID" 2>/dev/null || true; fi
    DEV_PID=
}

image() {
    section "container image (podman)"
    if [ "${SKIP_IMAGE:-0}" = 1 ]; then skip "image: SKIP_IMAGE=1"; return; fi
    # Workarounds (tooling notes §3.3): our ulimits and hybrid cgroups need runc with low
    # default ulimits; the host CA bundle for pip's TLS; a base image made locally.
    cat >"$OUT/containers.conf" <<'EOF'
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
EOF
    export CONTAINERS_CONF=$OUT/containers.conf
    if ! podman image exists "$BASE_IMAGE"; then
        tar -C "$CACHE/rootfs-bookworm" -c . | podman import - "$BASE_IMAGE" >"$OUT/podman-import.log" 2>&1
    fi
    local ctx=$OUT/image-context started=$SECONDS
    rm -rf "$ctx" && mkdir -p "$ctx/packaging"
    cp -r "$SRC/pyproject.toml" "$SRC/README.md" "$SRC/requirements" "$SRC/agent" "$ctx/"
    cp -r "$ROOT/packaging/Dockerfile" "$ROOT/packaging/container" "$ctx/packaging/"
    find "$ctx" -name __pycache__ -prune -exec rm -rf {} +
    if podman build --format docker --network host -v /etc/ssl/certs:/etc/ssl/certs:ro \
        --build-arg BASE_IMAGE="$BASE_IMAGE" -f "$ctx/packaging/Dockerfile" -t "$IMAGE" "$ctx" \
        >"$OUT/podman-build.log" 2>&1; then
        pass "image build: $IMAGE from $BASE_IMAGE ($((SECONDS - started))s, $(podman image inspect -f '{{.Size}}' "$IMAGE" | numfmt --to=iec))"
    else
        tail -30 "$OUT/podman-build.log"
        fail "image build ($OUT/podman-build.log)"
        return
    fi
    local user entry health
    user=$(podman image inspect -f '{{.Config.User}}' "$IMAGE")
    entry=$(podman image inspect -f '{{json .Config.Entrypoint}}' "$IMAGE")
    health=$(podman image inspect -f '{{json .Config.Healthcheck.Test}}' "$IMAGE")
    if [ "$user" = "10001:10001" ] && [ "$entry" = '["tini","--","polaris-agent"]' ] \
        && [[ $health == *healthz* ]]; then
        pass "image config: User=$user Entrypoint=$entry Healthcheck kept"
    else
        fail "image config: User=$user Entrypoint=$entry Healthcheck=$health"
    fi

    # Run it: read-only root, no capabilities, host network to reach a dev-server on loopback.
    trap cleanup_image EXIT
    local dev_port admin_port logs=$OUT/image-logs
    dev_port=$(free_port)
    admin_port=$(free_port)
    rm -rf "$logs" && mkdir -p "$logs"
    "$VENV_PY" - "$logs/app.log" "$LINES" <<'PY'
import json, sys
from datetime import UTC, datetime
now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
with open(sys.argv[1], "w", encoding="utf-8") as out:
    for i in range(int(sys.argv[2])):
        out.write(json.dumps({"event_time": now, "n": i, "message": f"line {i}"}) + "\n")
PY
    chmod 0644 "$logs/app.log"
    "$ROOT/.venv/bin/polaris-agent" dev-server --port "$dev_port" --api-key image-check-key \
        >"$OUT/image-dev-server.log" 2>&1 &
    DEV_PID=$!
    wait_http "http://127.0.0.1:$dev_port/_dev/stats" 15 || { fail "image: dev-server"; return; }
    sed -e "s|127.0.0.1:8080|127.0.0.1:$dev_port|" -e "s|heavy_check|image_check|g" \
        "$PACKAGING_NSPAWN/config.toml" >"$OUT/image-setup.toml"
    POLARIS_API_KEY=image-check-key POLARIS_PROJECT_ID=p "$ROOT/.venv/bin/polaris-agent" \
        setup --config "$OUT/image-setup.toml" >"$OUT/image-setup.log" 2>&1 \
        || { fail "image: setup against the dev-server ($OUT/image-setup.log)"; return; }
    podman volume create polaris-agent-check >/dev/null
    # The image's own config; only the environment differs per deployment.
    if ! podman run -d --name polaris-agent-check --network host --read-only \
        --cap-drop ALL --security-opt no-new-privileges \
        -v "$logs:/var/log/app:ro" -v polaris-agent-check:/var/lib/polaris-agent \
        -e POLARIS_URL="http://127.0.0.1:$dev_port" -e POLARIS_PROJECT_ID=p \
        -e POLARIS_CONNECTION=image_check -e POLARIS_API_KEY=image-check-key \
        -e POLARIS_API_LISTEN="127.0.0.1:$admin_port" \
        "$IMAGE" >"$OUT/podman-run.log" 2>&1; then
        cat "$OUT/podman-run.log"
        fail "image run"
        return
    fi
    if wait_http "http://127.0.0.1:$admin_port/healthz" 20; then
        pass "image run: --read-only --cap-drop ALL, uid $(podman exec polaris-agent-check id -u), /healthz 200"
    else
        podman logs polaris-agent-check 2>&1 | tail -15
        fail "image run: /healthz did not answer 200 on 127.0.0.1:$admin_port"
    fi
    if podman healthcheck run polaris-agent-check >/dev/null 2>&1; then
        pass "image HEALTHCHECK: podman healthcheck run -> healthy"
    else
        fail "image HEALTHCHECK: podman healthcheck run failed"
    fi
    local count
    count=$("$VENV_PY" - "$dev_port" <<'PY'
import json, sys, time, urllib.request
deadline = time.monotonic() + 30
count = -1
while time.monotonic() < deadline:
    with urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/_dev/stats", timeout=2) as r:
        count = json.load(r).get("lines", {}).get("image_check", 0)
    if count >= 500:
        break
    time.sleep(0.3)
print(count)
PY
)
    if [ "$count" = "$LINES" ]; then
        pass "image ships: $count/$LINES lines at the dev-server"
    else
        fail "image ships: $count/$LINES lines"
    fi
    local stop_started=$SECONDS code
    # (podman logs an error about healthcheck timers: they need systemd as PID 1; harmless.)
    podman stop -t 30 polaris-agent-check >"$OUT/podman-stop.log" 2>&1
    code=$(podman inspect -f '{{.State.ExitCode}}' polaris-agent-check)
    if [ "$code" = 0 ]; then
        pass "image stop: SIGTERM through tini, exit 0 in $((SECONDS - stop_started))s"
    else
        podman logs polaris-agent-check 2>&1 | tail -15
        fail "image stop: exit code $code"
    fi
    cleanup_image
}

mkdir -p "$OUT"
PACKAGING_NSPAWN=$ROOT/packaging/nspawn
SRC=$ROOT
if [ -n "${PACKAGE_REF:-}" ]; then
    SRC=$OUT/src
    rm -rf "$SRC" && mkdir -p "$SRC"
    git -C "$ROOT" archive "$PACKAGE_REF" | tar -x -C "$SRC"
    echo "agent from git $PACKAGE_REF ($(git -C "$ROOT" rev-parse --short "$PACKAGE_REF"))"
else
    echo "agent from the working tree $ROOT ($(git -C "$ROOT" status --porcelain -- agent \
        | wc -l) uncommitted paths under agent/)"
fi
ensure_tools
build_packages
ensure_rootfs
distros
if [ "${SKIP_BOOT:-0}" = 1 ]; then
    skip "install, boot, reinstall and purge in the systemd roots: SKIP_BOOT=1"
else
    for release in ${BOOT_RELEASES:-bookworm trixie}; do
        case $release in
            bookworm) BOOT_BASE=sysroot-base BOOT_NAME="Debian 12" ;;
            trixie)
                BOOT_BASE=sysroot-trixie BOOT_NAME="Debian 13"
                ensure_sysroot_trixie || { fail "systemd into the Debian 13 root"; continue; }
                ;;
            *) fail "BOOT_RELEASES: unknown release $release"; continue ;;
        esac
        SYSROOT=$OUT/sysroot-$release
        install_deb
        boot
        reinstall_and_purge
        [ "${KEEP:-0}" = 1 ] || rm -rf "$SYSROOT"
    done
fi
image
[ "${KEEP:-0}" = 1 ] || rm -rf "$SYSROOT" "$OUT/image-context" "$OUT/src"
finish
