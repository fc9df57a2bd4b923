"""The agent's end-to-end tests push a million lines through the dev-server in one test; the
Events API must take that in seconds, and keep every line, in order."""

from __future__ import annotations

import asyncio
import gzip
import time

import aiohttp

from agent.devserver import running_dev_server

from .devkit import basic

LINES = 1_000_000
PER_REQUEST = 9_900  # ~0.99 MB of 100-byte lines


async def test_a_million_lines_go_through_in_seconds() -> None:
    async with (
        running_dev_server(auto_create_connections=["bulk"], rate_limit_per_minute=1_000) as dev,
        aiohttp.ClientSession() as session,
    ):
        headers = {**basic(), "Content-Encoding": "gzip"}
        url = f"{dev.url}/v1/projects/p/events/bulk"
        bodies = []
        for start in range(0, LINES, PER_REQUEST):
            count = min(PER_REQUEST, LINES - start)
            lines = [b'{"n":"%09d","pad":"%s"}' % (start + i, b"x" * 74) for i in range(count)]
            bodies.append(gzip.compress(b"\n".join(lines) + b"\n", 1))
        gate = asyncio.Semaphore(4)

        async def send(body: bytes) -> int:
            async with gate, session.post(url, data=body, headers=headers) as response:
                return response.status

        started = time.monotonic()
        statuses = await asyncio.gather(*(send(body) for body in bodies))
        elapsed = time.monotonic() - started
        assert set(statuses) == {200}
        received = dev.received_lines("bulk")
        assert len(received) == LINES
        assert received[0].startswith(b'{"n":"000000000"') and len(received[0]) == 100
        assert received[-1].startswith(b'{"n":"%09d"' % (LINES - 1))
        assert sum(r.body_bytes for r in dev.requests) == LINES * 101
        assert elapsed < 15, f"{elapsed:.1f} s for {LINES} lines"
