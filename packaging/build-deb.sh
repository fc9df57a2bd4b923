#!/usr/bin/env bash
# Build dist/polaris-agent_<version>-<rev>_<arch>.deb with plain dpkg-deb. One package for
# Debian 12 (python3 3.11), Debian 13 (3.13) and Ubuntu 24.04 (3.12):
#   /opt/polaris-agent                        a virtualenv on the system's /usr/bin/python3
#     pyvenv.cfg, bin/python -> /usr/bin/python3, bin/polaris-agent (the console script)
#     lib/python3.{11,12,13}/site-packages    the agent and its dependencies, installed from
#                                             PyPI's wheels (manylinux or pure) for each of
#                                             those CPythons, pinned by requirements/runtime.lock
#   /usr/bin/polaris-agent                    -> /opt/polaris-agent/bin/polaris-agent
#   /lib/systemd/system/polaris-agent.service
#   /etc/polaris-agent/config.toml            conffile
#   /etc/default/polaris-agent                conffile (POLARIS_API_KEY=...)
# The interpreter that runs adds lib/python<its version>/site-packages (site.py), so the same
# files work on whichever python3 the system has, and keep working when a dist-upgrade moves
# python3 from 3.11 to 3.13. Nothing runs pip at install time: every file is dpkg's (md5sums,
# `dpkg -S`, removed on purge). Byte code is not shipped: postinst compiles the running
# python3's tree (as py3compile does), prerm removes it; no bin/activate* either.
#
# Needs: a python3 >= 3.11 with venv (it builds the wheel and fetches the others with pip from
# ensurepip in a throwaway venv: a fresh checkout needs no virtualenv), dpkg-deb, strip, objdump,
# and PyPI (or PIP_INDEX_URL). pip's config files and PIP_FIND_LINKS are ignored so that a
# machine's local wheels cannot slip into the package.
# Usage: packaging/build-deb.sh [WHEEL]   (without WHEEL, builds one from the repository)
# Env: BUILD_PYTHON (python3), DEB_PYTHONS ("3.11 3.12 3.13"), DEB_REVISION (1),
#      DIST (<repo>/dist), LOCK (<repo>/requirements/runtime.lock), KEEP_STAGE (a directory:
#      copy the staged tree there, for tests)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD_PYTHON=${BUILD_PYTHON:-python3}
DEB_PYTHONS=${DEB_PYTHONS:-3.11 3.12 3.13}
DEB_REVISION=${DEB_REVISION:-1}
DIST=${DIST:-$ROOT/dist}
LOCK=${LOCK:-$ROOT/requirements/runtime.lock}
PREFIX=/opt/polaris-agent
# Debian 12's glibc is 2.36 (Ubuntu 24.04: 2.39, Debian 13: 2.41): no wheel may need more.
GLIBC_MAX_MINOR=36

for tool in "$BUILD_PYTHON" dpkg-deb dpkg strip objdump md5sum; do
    command -v "$tool" >/dev/null || { echo "build-deb: $tool not found" >&2; exit 1; }
done

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
stage=$work/root
mkdir -p "$DIST" "$stage"

# 0. Build tools in a throwaway venv (pip from ensurepip), isolated from this machine's pip
#    configuration (local indexes, find-links): what goes into the package comes from the index.
export PIP_CONFIG_FILE=/dev/null PIP_DISABLE_PIP_VERSION_CHECK=1
unset PIP_FIND_LINKS PIP_EXTRA_INDEX_URL PIP_CONSTRAINT PIP_REQUIRE_VIRTUALENV
"$BUILD_PYTHON" -m venv "$work/tools" \
    || { echo "build-deb: $BUILD_PYTHON -m venv failed (python3-venv missing?)" >&2; exit 1; }
pip=("$work/tools/bin/python" -m pip)

if [ $# -ge 1 ]; then
    wheel=$(realpath "$1")
else
    "${pip[@]}" wheel --quiet --no-deps -w "$work/wheel" "$ROOT" >"$work/wheel.log" 2>&1 \
        || { cat "$work/wheel.log" >&2; exit 1; }
    wheel=$(ls "$work"/wheel/polaris_agent-*.whl)
fi
version=$(basename "$wheel" | cut -d- -f2)
arch=$(dpkg --print-architecture)
case $arch in
    amd64) machine=x86_64 ;;
    arm64) machine=aarch64 ;;
    *) echo "build-deb: no manylinux wheels known for $arch" >&2; exit 1 ;;
esac
constraints=()
if [ -f "$LOCK" ]; then
    constraints=(-c "$LOCK")
    pinned="pinned by ${LOCK#"$ROOT"/}"
else
    pinned="NOT pinned: $LOCK is missing; the newest releases pyproject.toml allows"
    echo "build-deb: WARNING: $pinned" >&2
fi
echo "build-deb: polaris-agent $version-$DEB_REVISION ($arch) from $(basename "$wheel")," \
    "for CPython $DEB_PYTHONS, $pinned"

# 1. The venv skeleton, written by hand: it names no build path and no Python version.
install -d "$stage$PREFIX/bin"
ln -s /usr/bin/python3 "$stage$PREFIX/bin/python"
ln -s python "$stage$PREFIX/bin/python3"
printf 'home = /usr/bin\ninclude-system-site-packages = false\n' >"$stage$PREFIX/pyvenv.cfg"
printf '#!%s/bin/python\nimport sys\n\nfrom agent.cli import main\n\nsys.exit(main())\n' \
    "$PREFIX" >"$stage$PREFIX/bin/polaris-agent"
chmod 0755 "$stage$PREFIX/bin/polaris-agent"

# 2. The agent and its dependencies for each CPython, binary wheels only (no compiler, no
#    sdist surprises): manylinux tags up to Debian 12's glibc.
platforms=()
for ((minor = GLIBC_MAX_MINOR; minor >= 17; minor--)); do
    platforms+=(--platform "manylinux_2_${minor}_$machine")
done
platforms+=(--platform "manylinux2014_$machine")
for py in $DEB_PYTHONS; do
    site=$stage$PREFIX/lib/python$py/site-packages
    if ! "${pip[@]}" install --quiet --no-compile --no-warn-script-location --target "$site" \
        --only-binary=:all: --implementation cp --python-version "$py" --abi "cp${py/./}" \
        "${platforms[@]}" "${constraints[@]}" "$wheel" >"$work/pip-$py.log" 2>&1; then
        cat "$work/pip-$py.log" >&2
        echo "build-deb: installing for CPython $py failed" >&2
        exit 1
    fi
    rm -rf "$site/bin" # --target's console scripts name the build venv; bin/polaris-agent is ours
    find "$site" -name direct_url.json -delete
done

# 3. Compiled extensions: strip them as dh_strip would; Depends on the libraries they need,
#    computed by dpkg-shlibdeps from this machine's symbols files (package names and minimum
#    versions are the same on Debian 12, 13 and Ubuntu 24.04). Without dpkg-dev: the newest
#    glibc symbol version they use, and libstdc++6/libgcc-s1 when they link those.
find "$stage$PREFIX" -type f -name '*.so*' -exec strip --strip-unneeded \
    --remove-section=.comment --remove-section=.note {} +
mapfile -t sos < <(find "$stage$PREFIX" -type f -name '*.so*' | LC_ALL=C sort)
shlib_depends=
if command -v dpkg-shlibdeps >/dev/null; then
    mkdir -p "$work/shlibs/debian"
    printf 'Source: polaris-agent\n\nPackage: polaris-agent\nArchitecture: any\n' \
        >"$work/shlibs/debian/control"
    shlib_depends=$(cd "$work/shlibs" && dpkg-shlibdeps -O "${sos[@]/#/-e}" \
        2>"$work/shlibdeps.log" | sed -n 's/^shlibs:Depends=//p') \
        || { cat "$work/shlibdeps.log" >&2; exit 1; }
fi
if [ -z "$shlib_depends" ]; then
    glibc=$(objdump -T "${sos[@]}" 2>/dev/null | grep -o 'GLIBC_[0-9][0-9.]*' \
        | sed 's/^GLIBC_//' | sort -uV | tail -1)
    shlib_depends="libc6 (>= ${glibc:-2.17})"
    needed=$(objdump -p "${sos[@]}" 2>/dev/null | awk '/NEEDED/ {print $2}' | sort -u)
    grep -qx 'libstdc++.so.6' <<<"$needed" && shlib_depends+=", libstdc++6"
    grep -qx 'libgcc_s.so.1' <<<"$needed" && shlib_depends+=", libgcc-s1"
fi
# Modules that carry a #! line but are not executable: keep the line count, drop the #!.
{ find "$stage$PREFIX/lib" -type f -name '*.py' ! -perm /111 -exec grep -lZ -m1 '^#!' {} + \
    || true; } | xargs -0 -r sed -i '1s/^#!.*/#/'

# 4. Smoke test: the build interpreter, if it is one of the targets, imports the agent.
build_py=$("$BUILD_PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
if [ -d "$stage$PREFIX/lib/python$build_py/site-packages" ]; then
    PYTHONPATH=$stage$PREFIX/lib/python$build_py/site-packages PYTHONDONTWRITEBYTECODE=1 \
        "$BUILD_PYTHON" -s -m agent --version >/dev/null \
        || { echo "build-deb: the staged agent does not run on $build_py" >&2; exit 1; }
fi
if find "$stage" -name '*.pyc' -o -name 'activate*' | grep -q .; then
    echo "build-deb: byte code or activate scripts in the staged tree" >&2
    exit 1
fi

# 5. The rest of the file system.
install -d "$stage/usr/bin" "$stage/lib/systemd/system" "$stage/etc/polaris-agent" \
    "$stage/etc/default" "$stage/usr/share/doc/polaris-agent" \
    "$stage/usr/share/lintian/overrides" "$stage/usr/share/man/man1" \
    "$stage/usr/share/python3/runtime.d"
ln -s "$PREFIX/bin/polaris-agent" "$stage/usr/bin/polaris-agent"
install -m 0644 "$ROOT/systemd/polaris-agent.service" "$stage/lib/systemd/system/"
install -m 0640 "$ROOT/packaging/deb/config.toml" "$stage/etc/polaris-agent/config.toml"
install -m 0600 "$ROOT/systemd/polaris-agent.default" "$stage/etc/default/polaris-agent"
# copyright: every bundled distribution with its version and declared license.
first_py=${DEB_PYTHONS%% *}
"$BUILD_PYTHON" - "$stage$PREFIX/lib/python$first_py/site-packages" \
    "$ROOT/packaging/deb/copyright" >"$stage/usr/share/doc/polaris-agent/copyright" <<'PY'
import sys
from importlib.metadata import distributions

lines = []
for dist in sorted(distributions(path=[sys.argv[1]]), key=lambda d: d.metadata["Name"].lower()):
    meta = dist.metadata
    licence = meta.get("License-Expression") or ""
    if not licence and meta.get("License") and "\n" not in meta["License"].strip():
        licence = meta["License"].strip()
    if not licence or len(licence) > 60:
        classifiers = [c.split(" :: ")[-1] for c in meta.get_all("Classifier") or []
                       if c.startswith("License ::")]
        licence = ", ".join(classifiers) or "see its dist-info"
    lines.append(f"  {meta['Name']} {meta['Version']}: {licence}")
text = open(sys.argv[2], encoding="utf-8").read()
sys.stdout.write(text.replace("@BUNDLED@", "\n".join(lines)))
PY
chmod 0644 "$stage/usr/share/doc/polaris-agent/copyright"
# The unit's Documentation= points here.
install -m 0644 "$ROOT/README.md" "$ROOT/docs/troubleshooting.md" "$ROOT/docs/metrics.md" \
    "$stage/usr/share/doc/polaris-agent/"
gzip -9n <"$ROOT/packaging/deb/polaris-agent.1" >"$stage/usr/share/man/man1/polaris-agent.1.gz"
install -m 0755 "$ROOT/packaging/deb/rtupdate" \
    "$stage/usr/share/python3/runtime.d/polaris-agent.rtupdate"
install -m 0644 "$ROOT/packaging/deb/lintian-overrides" \
    "$stage/usr/share/lintian/overrides/polaris-agent"
printf 'polaris-agent (%s-%s) stable; urgency=medium\n\n  * Release %s.\n\n -- %s  %s\n' \
    "$version" "$DEB_REVISION" "$version" \
    "polaris-agent maintainers <polaris-agent@example.com>" \
    "$(date -R -d "@${SOURCE_DATE_EPOCH:-$(date +%s)}")" \
    | gzip -9n >"$stage/usr/share/doc/polaris-agent/changelog.Debian.gz"
find "$stage" -type d -exec chmod 0755 {} +
find "$stage$PREFIX/lib" -type f -exec chmod go-w,a+r {} +

# 6. Control files: md5sums of every file but the conffiles (dpkg keeps theirs itself).
install -d "$stage/DEBIAN"
install -m 0644 "$ROOT/packaging/deb/conffiles" "$stage/DEBIAN/conffiles"
for script in postinst prerm postrm; do
    install -m 0755 "$ROOT/packaging/deb/$script" "$stage/DEBIAN/$script"
done
(cd "$stage" && find . -path ./DEBIAN -prune -o -type f -printf '%P\n' | LC_ALL=C sort \
    | grep -vxF -f <(sed 's|^/||' DEBIAN/conffiles) | tr '\n' '\0' | xargs -0 md5sum) \
    >"$stage/DEBIAN/md5sums"
chmod 0644 "$stage/DEBIAN/md5sums"
size=$(du -sk --apparent-size --exclude=DEBIAN "$stage" | cut -f1)
sed -e "s/@VERSION@/$version-$DEB_REVISION/" -e "s/@ARCH@/$arch/" \
    -e "s/@INSTALLED_SIZE@/$size/" -e "s/@SHLIB_DEPENDS@/$shlib_depends/" \
    "$ROOT/packaging/deb/control.in" >"$stage/DEBIAN/control"

if [ -n "${KEEP_STAGE:-}" ]; then
    rm -rf "$KEEP_STAGE" && cp -a "$stage" "$KEEP_STAGE"
fi
deb=$DIST/polaris-agent_${version}-${DEB_REVISION}_${arch}.deb
dpkg-deb --root-owner-group -Zxz --build "$stage" "$deb" >/dev/null
echo "build-deb: $deb ($(du -h "$deb" | cut -f1), installed ${size} KiB)"
