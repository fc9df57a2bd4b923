"""For the `setup` tests: a dev-server, configs pointing at it, ways to run `setup` and to look."""

from __future__ import annotations

import asyncio
import json
import sys
import textwrap
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from agent.devserver import running_dev_server
from agent.polaris.api import basic_auth

API_KEY = "pok_devKey_3f9a1c77e2"
PROJECT = "12375ffx-f7x4-4f0x-a1a6-3b3424987ee0"
TABLE = "app_logs"
CONNECTION = "demo_connection"

MAPPINGS = [
    ("__time", 'TIME_PARSE("event_time")'),
    ("message", '"message"'),
    ("level", '"level"'),
]


@dataclass(frozen=True, slots=True)
class Outcome:
    """What an operator sees from one `setup` run."""

    code: int
    stdout: str
    stderr: str


@dataclass(frozen=True, slots=True)
class Polaris:
    """The dev-server as an operator's curl sees it."""

    url: str

    async def get(self, path: str) -> Any:
        auth = {"Authorization": basic_auth(API_KEY)}
        async with (
            aiohttp.ClientSession(headers=auth) as session,
            session.get(f"{self.url}/v1/projects/{PROJECT}{path}") as response,
        ):
            assert response.status == 200, await response.text()
            return await response.json()

    async def post(self, path: str, body: bytes | dict[str, Any]) -> str:
        auth = {"Authorization": basic_auth(API_KEY)}
        kwargs: dict[str, Any] = {"data": body} if isinstance(body, bytes) else {"json": body}
        async with (
            aiohttp.ClientSession(headers=auth) as session,
            session.post(f"{self.url}/v1/projects/{PROJECT}{path}", **kwargs) as response,
        ):
            text = await response.text()
            assert response.status == 200, text
            return text

    async def push(self, *events: dict[str, Any]) -> None:
        """Send events to CONNECTION as one NDJSON payload, as the agent would."""
        body = b"".join(json.dumps(event).encode() + b"\n" for event in events)
        await self.post(f"/events/{CONNECTION}", body)

    async def sql(self, query: str) -> list[list[Any]]:
        answer = json.loads(
            await self.post("/query/sql", {"query": query, "resultFormat": "array"})
        )
        return [list(row) for row in answer]

    async def jobs_for(self, table: str, *, live: bool = False) -> list[dict[str, Any]]:
        """The table's jobs; ``live``: only those not canceled."""
        listing = await self.get("/jobs")
        jobs = listing["values"] if isinstance(listing, dict) else listing
        return [
            job
            for job in jobs
            if job["target"]["tableName"] == table
            and not (live and job["desiredExecutionStatus"] == "canceled")
        ]

    async def connection_names(self) -> list[str]:
        listing = await self.get("/connections")
        return sorted(connection["name"] for connection in listing["values"])


async def serve_polaris(**options: Any) -> AsyncIterator[Polaris]:
    """A dev-server that accepts API_KEY; the body of the `polaris` fixture."""
    async with running_dev_server(api_keys=[API_KEY], **options) as server:
        yield Polaris(server.url)


def write_config(
    directory: Path,
    url: str,
    *,
    api_key: str = API_KEY,
    mappings: list[tuple[str, str]] = MAPPINGS,
    polaris_extra: str = "",
    job: bool = True,
    read_from_point: str = "earliest",
) -> Path:
    """An agent config whose [job] section reads the connection into TABLE."""
    mapping_items = ", ".join(
        f"{{ column = '{column}', expression = '{expression}' }}" for column, expression in mappings
    )
    text = textwrap.dedent(
        f"""
        data_dir = "{directory / "data"}"
        [polaris]
        url = "{url}"
        project_id = "{PROJECT}"
        connection = "{CONNECTION}"
        api_key = "{api_key}"
        request_timeout = "10s"
        """
    )
    text += polaris_extra + "\n"
    text += textwrap.dedent(
        f"""
        [[sources]]
        name = "app"
        include = ["{directory}/*.log"]
        """
    )
    if job:
        text += textwrap.dedent(
            f"""
            [job]
            table = "{TABLE}"
            read_from_point = "{read_from_point}"
            input_schema = [{{ name = "event_time" }}, {{ name = "message" }}, {{ name = "level" }}]
            """
        )
        text += f"mappings = [{mapping_items}]\n"
    path = directory / "agent.toml"
    path.write_text(text)
    path.chmod(0o600)
    return path


async def run_setup_cli(config: Path, *extra: str) -> Outcome:
    """`polaris-agent setup --config FILE` as a real process (the dev-server keeps serving)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "agent",
        "setup",
        "--config",
        str(config),
        *extra,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode is not None
    return Outcome(process.returncode, stdout.decode(), stderr.decode())
