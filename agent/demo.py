"""`make demo`: the whole loop on a laptop, with the real commands a user would type.

dev-server → setup → sample logs → run --once → SQL on the rows that landed → stop.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson

CONFIG = Path(__file__).resolve().parent.parent / "config" / "demo.toml"
DEMO_KEY = "demo-key-not-a-secret"
LINES = 5000


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="polaris-demo-") as tmp:
        demo = Path(tmp)
        ready = demo / "ready"
        env = {**os.environ, "DEMO_DIR": tmp, "POLARIS_API_KEY": DEMO_KEY}
        serve = ["dev-server", "--port", "0", "--api-key", DEMO_KEY, "--ready-file", str(ready)]
        server = subprocess.Popen([*_cli(), *serve], env=env)
        try:
            url = _wait_for(ready)
            env["POLARIS_URL"] = url
            _step(f"dev-server listening on {url}")
            _run(["setup", "--config", str(CONFIG)], env)
            _write_sample_logs(demo / "logs")
            _step(f"wrote {LINES} sample log lines to {demo / 'logs'}")
            _run(["run", "--once", "--config", str(CONFIG)], env)
            _step("rows in demo_table")
            query = [*_cli(), "dev-server", "query", "--url", url, "--api-key", DEMO_KEY]
            _run_cmd([*query, "SELECT COUNT(*) AS rows FROM demo_table"], env)
            _run_cmd(
                [
                    *query,
                    "SELECT __time, level, service, latency_ms, message FROM demo_table "
                    "ORDER BY __time DESC LIMIT 5",
                ],
                env,
            )
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=10)
    _step("done")
    return 0


def _cli() -> list[str]:
    return [sys.executable, "-m", "agent"]


def _step(text: str) -> None:
    print(f"\n==> {text}", flush=True)


def _run(args: list[str], env: dict[str, str]) -> None:
    _step("polaris-agent " + " ".join(args))
    _run_cmd([*_cli(), *args], env)


def _run_cmd(command: list[str], env: dict[str, str]) -> None:
    subprocess.run(command, env=env, check=True)


def _wait_for(ready: Path, within: float = 20.0) -> str:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if ready.exists() and ready.read_text().strip():
            return ready.read_text().strip()
        time.sleep(0.05)
    raise SystemExit("the dev-server did not start")


def _write_sample_logs(directory: Path) -> None:
    directory.mkdir()
    rng = random.Random(42)
    now = datetime.now(UTC)
    levels = ["info"] * 8 + ["warn", "error"]
    with (directory / "checkout.log").open("wb") as out:
        for n in range(LINES):
            at = now - timedelta(seconds=(LINES - n) * 0.5)
            event = {
                "event_time": at.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                "level": rng.choice(levels),
                "message": f"order {10_000 + n} processed",
                "latency_ms": rng.randint(3, 900),
            }
            out.write(orjson.dumps(event) + b"\n")


if __name__ == "__main__":
    sys.exit(main())
