#!/usr/bin/env bash
# Build dist/polaris-agent_<version>-<rev>_<arch>.deb with plain dpkg-deb:
#   /opt/polaris-agent                       a venv made with the target's /usr/bin/python3 (3.11
#                                            on Debian 12) holding the wheel and its dependencies
#   /usr/bin/polaris-agent                   -> /opt/polaris-agent/bin/polaris-agent
#   /lib/systemd/system/polaris-agent.service
#   /etc/polaris-agent/config.toml           conffile
#   /etc/default/polaris-agent               conffile (POLARIS_API_KEY=...)
# The venv is built in a staging directory and its paths rewritten to /opt/polaris-agent (as
# dh-virtualenv does); byte code is compiled for the final paths.
# Usage: packaging/build-deb.sh [WHEEL]   (without WHEEL, builds one from the repository)
# Env: DEB_PYTHON (/usr/bin/python3), DEB_REVISION (1), DIST (<repo>/dist), PIP (.venv/bin/pip)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DEB_PYTHON=${DEB_PYTHON:-/usr/bin/python3}
DEB_REVISION=${DEB_REVISION:-1}
DIST=${DIST:-$ROOT/dist}
PIP=${PIP:-$ROOT/.venv/bin/pip}
PREFIX=/opt/polaris-agent

for tool in "$DEB_PYTHON" "$PIP" dpkg-deb dpkg strip objdump; do
    command -v "$tool" >/dev/null || { echo "build-deb: $tool not found" >&2; exit 1; }
done

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
stage=$work/root
mkdir -p "$DIST" "$stage"

if [ $# -ge 1 ]; then
    wheel=$(realpath "$1")
else
    "$PIP" wheel --quiet --no-deps -w "$work/wheel" "$ROOT" >"$work/wheel.log" 2>&1 \
        || { cat "$work/wheel.log" >&2; exit 1; }
    wheel=$(ls "$work"/wheel/polaris_agent-*.whl)
fi
version=$(basename "$wheel" | cut -d- -f2)
arch=$(dpkg --print-architecture)
echo "build-deb: polaris-agent $version-$DEB_REVISION ($arch) from $(basename "$wheel")"

# 1. The venv, on the target's interpreter, without pip (nothing installs into it later).
"$DEB_PYTHON" -m venv --without-pip "$stage$PREFIX"
"$PIP" --python "$stage$PREFIX/bin/python" install --quiet --no-compile \
    --no-warn-script-location "$wheel" 2> >(grep -v "^WARNING: Location 'file:" >&2)
# 2. Paths: shebangs, activate scripts and pyvenv.cfg name the staging dir; direct_url.json
#    would name the build machine's wheel path.
grep -rlI --null -F "$stage" "$stage$PREFIX" | xargs -0 -r sed -i "s|$stage$PREFIX|$PREFIX|g"
find "$stage$PREFIX" -name direct_url.json -delete
# 3. Compiled extensions: strip them as dh_strip would; depend on the newest glibc symbol
#    version they use (what dpkg-shlibdeps would compute).
find "$stage$PREFIX" -type f -name '*.so*' -exec strip --strip-unneeded \
    --remove-section=.comment --remove-section=.note {} +
glibc=$(find "$stage$PREFIX" -type f -name '*.so*' -exec objdump -T {} + 2>/dev/null \
    | grep -o 'GLIBC_[0-9][0-9.]*' | sed 's/^GLIBC_//' | sort -uV | tail -1)
libc_depends="libc6 (>= ${glibc:-2.17})"
# 4. Byte code for the final paths (ProtectSystem=strict: the service could not write it).
"$DEB_PYTHON" -m compileall -q -j 0 -s "$stage" -p / "$stage$PREFIX/lib" >/dev/null
"$stage$PREFIX/bin/python" -m agent --version >/dev/null
[ "$(head -1 "$stage$PREFIX/bin/polaris-agent")" = "#!$PREFIX/bin/python" ] \
    || { echo "build-deb: unexpected shebang in bin/polaris-agent" >&2; exit 1; }

# 5. The rest of the file system.
install -d "$stage/usr/bin" "$stage/lib/systemd/system" "$stage/etc/polaris-agent" \
    "$stage/etc/default" "$stage/usr/share/doc/polaris-agent" \
    "$stage/usr/share/lintian/overrides"
ln -s "$PREFIX/bin/polaris-agent" "$stage/usr/bin/polaris-agent"
install -m 0644 "$ROOT/systemd/polaris-agent.service" "$stage/lib/systemd/system/"
install -m 0640 "$ROOT/packaging/deb/config.toml" "$stage/etc/polaris-agent/config.toml"
install -m 0600 "$ROOT/systemd/polaris-agent.default" "$stage/etc/default/polaris-agent"
install -m 0644 "$ROOT/packaging/deb/copyright" "$stage/usr/share/doc/polaris-agent/"
# The unit's Documentation= points here.
install -m 0644 "$ROOT/README.md" "$ROOT/docs/troubleshooting.md" "$ROOT/docs/metrics.md" \
    "$stage/usr/share/doc/polaris-agent/"
install -m 0644 "$ROOT/packaging/deb/lintian-overrides" \
    "$stage/usr/share/lintian/overrides/polaris-agent"
printf 'polaris-agent (%s-%s) stable; urgency=medium\n\n  * Release %s.\n\n -- %s  %s\n' \
    "$version" "$DEB_REVISION" "$version" \
    "polaris-agent maintainers <polaris-agent@example.com>" \
    "$(date -R -d "@${SOURCE_DATE_EPOCH:-$(date +%s)}")" \
    | gzip -9n > "$stage/usr/share/doc/polaris-agent/changelog.Debian.gz"

# 6. Control files.
install -d "$stage/DEBIAN"
install -m 0644 "$ROOT/packaging/deb/conffiles" "$stage/DEBIAN/conffiles"
for script in postinst prerm postrm; do
    install -m 0755 "$ROOT/packaging/deb/$script" "$stage/DEBIAN/$script"
done
size=$(du -sk --exclude=DEBIAN "$stage" | cut -f1)
sed -e "s/@VERSION@/$version-$DEB_REVISION/" -e "s/@ARCH@/$arch/" \
    -e "s/@INSTALLED_SIZE@/$size/" -e "s/@LIBC_DEPENDS@/$libc_depends/" "$ROOT/packaging/deb/control.in" > "$stage/DEBIAN/control"

deb=$DIST/polaris-agent_${version}-${DEB_REVISION}_${arch}.deb
dpkg-deb --root-owner-group -Zxz --build "$stage" "$deb" >/dev/null
echo "build-deb: $deb ($(du -h "$deb" | cut -f1))"
