"""Self-signed certificates for TLS tests, made by the `openssl` command."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


def self_signed(directory: Path, name: str = "127.0.0.1") -> tuple[Path, Path]:
    """(key, cert) of a certificate for `name` (also its subjectAltName when an IP address)
    that no default trust store knows, in `directory`; the test is skipped, saying why, when
    openssl cannot make one."""
    directory.mkdir(parents=True, exist_ok=True)
    key, cert = directory / "key.pem", directory / "cert.pem"
    san = ["-addext", f"subjectAltName=IP:{name}"] if name.replace(".", "").isdigit() else []
    try:
        made = subprocess.run(
            [
                *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
                *("-keyout", str(key), "-out", str(cert), "-subj", f"/CN={name}", *san),
            ],
            capture_output=True,
            check=False,
        )
    except FileNotFoundError:
        pytest.skip("openssl is needed to make a test certificate")
    if made.returncode != 0:
        pytest.skip(f"openssl could not make a certificate: {made.stderr[-200:]!r}")
    return key, cert


def run_trusting(bundle: Path, script: str, *args: str) -> dict[str, str]:
    """Run `script` in a child Python whose system trust store is `bundle` alone (no CA
    folder); what it prints, one ``name value`` per line, as a dict."""
    no_dir = bundle.parent / "no-ca-dir"
    no_dir.mkdir(exist_ok=True)
    env = {**os.environ, "SSL_CERT_FILE": str(bundle), "SSL_CERT_DIR": str(no_dir)}
    done = subprocess.run(
        [sys.executable, "-c", script, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return dict(line.split(" ", 1) for line in done.stdout.splitlines())
