"""A small client for the dev-server's Polaris routes, shared by the dev-server tests."""

from __future__ import annotations

import base64
from typing import Any

import aiohttp

from agent.devserver import DevServer

API_KEY = "dev-key"
PROJECT = "test-project"


def basic(key: str = API_KEY) -> dict[str, str]:
    """`curl --user KEY:` as a header."""
    return {"Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode()}


class Api:
    """A thin client for the dev-server's Polaris routes, so tests read like the scenario."""

    def __init__(self, server: DevServer, session: aiohttp.ClientSession) -> None:
        self.server = server
        self.session = session

    def url(self, path: str) -> str:
        return f"{self.server.url}/v1/projects/{PROJECT}{path}"

    async def post(
        self,
        path: str,
        body: Any = None,
        *,
        data: bytes | None = None,
        key: str = API_KEY,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Any, aiohttp.ClientResponse]:
        all_headers = {**basic(key), **(headers or {})}
        kwargs: dict[str, Any] = {"json": body} if data is None else {"data": data}
        async with self.session.post(self.url(path), headers=all_headers, **kwargs) as response:
            text = await response.read()
            return response.status, _decode(text), response

    async def get(self, path: str, *, key: str = API_KEY) -> tuple[int, Any]:
        async with self.session.get(self.url(path), headers=basic(key)) as response:
            return response.status, _decode(await response.read())

    async def delete(self, path: str) -> int:
        async with self.session.delete(self.url(path), headers=basic()) as response:
            return response.status

    async def events(
        self, connection: str, data: bytes, *, gzip: bool = False, key: str = API_KEY
    ) -> tuple[int, Any, aiohttp.ClientResponse]:
        headers = {"Content-Type": "application/json"}
        if gzip:
            headers["Content-Encoding"] = "gzip"
        return await self.post(f"/events/{connection}", data=data, key=key, headers=headers)

    async def sql(self, query: str) -> list[list[Any]]:
        status, body, _ = await self.post("/query/sql", {"query": query, "resultFormat": "array"})
        assert status == 200, body
        rows: list[list[Any]] = body
        return rows


def _decode(raw: bytes) -> Any:
    import orjson

    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return raw.decode()
