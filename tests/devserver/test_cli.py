"""`polaris-agent dev-server` as a person or a script uses it: a real process, real HTTP."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import aiohttp

from agent.devserver import DevServer
from tests.support.waiting import eventually

from .devkit import PROJECT, Api
from .test_catalog_api import job_spec
from .test_ingestion import event

REPO = Path(__file__).resolve().parents[2]


async def run_cli(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "agent",
        "dev-server",
        *args,
        cwd=REPO,
        env={**os.environ, **(env or {})},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=20)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_query_command_prints_an_aligned_table(api: Api, dev_server: DevServer) -> None:
    assert (await api.post("/jobs", job_spec()))[0] == 201
    data = event(2, "GELongstreet", 36) + b"\n" + event(1, "Kolega2357", 13)
    assert (await api.events("demo_connection", data))[0] == 200
    await dev_server.wait_for_ingestion()

    code, out, err = await run_cli(
        "query",
        'SELECT "user", added FROM demo_table ORDER BY __time',
        "--url",
        dev_server.url,
        "--project",
        PROJECT,
        "--api-key",
        "dev-key",
    )
    assert code == 0, err
    assert out.splitlines() == [
        "user          added",
        "------------  -----",
        "GELongstreet  36.0",
        "Kolega2357    13.0",
        "(2 rows)",
    ]

    code, out, err = await run_cli(
        "query", "SELECT COUNT(*) FROM demo_table", "--url", dev_server.url
    )
    assert code == 0, err
    assert out.splitlines()[2] == "2"


async def test_query_command_reports_errors(dev_server: DevServer) -> None:
    code, _, err = await run_cli("query", "SELECT * FROM missing", "--url", dev_server.url)
    assert code == 1
    assert "no such table: missing" in err
    code, _, err = await run_cli("query", "SELECT 1", "--url", dev_server.url, "--api-key", "wrong")
    assert (code, "HTTP 401" in err) == (1, True)


async def test_server_command_runs_until_sigterm(tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "agent",
        "dev-server",
        "--",
        "--port",
        "0",
        "--ready-file",
        str(ready),
        "--data-dir",
        str(tmp_path / "data"),
        "--rate-limit",
        "5",
        cwd=REPO,
        env={**os.environ, "POLARIS_DEV_API_KEYS": "k-one, k-two"},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        await eventually(
            lambda: ready.exists() and ready.read_text().strip(), within=10, what="ready file"
        )
        url = ready.read_text().strip()
        assert url.startswith("http://127.0.0.1:")
        async with aiohttp.ClientSession() as session:

            class _Url:
                def __init__(self, url: str) -> None:
                    self.url = url

            api = Api(_Url(url), session)  # type: ignore[arg-type]
            status, _, _ = await api.post(
                "/connections", {"type": "push_streaming", "name": "c"}, key="k-two"
            )
            assert status == 201
            status, _, response = await api.events("c", b'{"a":1}', key="k-one")
            assert status == 200
            assert response.headers["RateLimit-Limit"] == "5"
        process.send_signal(signal.SIGTERM)
        out, err = await asyncio.wait_for(process.communicate(), timeout=10)
        assert process.returncode == 0, err
        output = (out + err).decode()
        assert url in output  # the one start line names the URL...
        assert "k-one" not in output  # ...and never a key
        assert (tmp_path / "data" / "streams" / "c.ndjson").read_bytes() == b'{"a":1}\n'
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
