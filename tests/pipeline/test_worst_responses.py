"""What the agent hears from the network, at its most hostile: the real agent, the real
dev-server, and between them a middlebox on loopback that forwards each request, unless told
to answer it itself (a redirect, a 404, an endless error body, a poisonous header)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web

from agent.devserver import DevServer
from tests.support.config import API_KEY, CONNECTION
from tests.support.lines import write_json_lines
from tests.support.process import AgentProcess as Agent
from tests.support.process import kill_leftovers
from tests.support.waiting import eventually

Answer = Callable[[web.Request], Awaitable[web.StreamResponse | None]]
_FORWARDED = ("Authorization", "Content-Type")  # aiohttp's server inflated a gzip body


@dataclass
class Seen:
    method: str
    path: str
    authorization: bool
    body_bytes: int
    at: float


@dataclass
class Middlebox:
    """Records every request; `answer` may answer one itself (None: forward it upstream);
    `headers` are added to every forwarded answer."""

    upstream: str
    url: str = ""
    seen: list[Seen] = field(default_factory=list)
    answer: Answer | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body_bytes_written: int = 0

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.seen.append(
            Seen(
                request.method,
                request.path,
                "Authorization" in request.headers,
                len(body),
                time.monotonic(),
            )
        )
        if self.answer is not None and (own := await self.answer(request)) is not None:
            return own
        if not self.upstream:
            return web.Response(text="OK")  # a thief that takes anything
        headers = {h: request.headers[h] for h in _FORWARDED if h in request.headers}
        async with (
            aiohttp.ClientSession() as http,
            http.request(
                request.method,
                self.upstream + request.path_qs,
                data=body,
                headers=headers,
                allow_redirects=False,
            ) as upstream,
        ):
            text = await upstream.read()
            answer_headers = {
                k: v
                for k, v in upstream.headers.items()
                if k.lower().startswith(("ratelimit", "x-rate"))
            }
            answer_headers.update(self.headers)
            return web.Response(status=upstream.status, body=text, headers=answer_headers)


@asynccontextmanager
async def running(box: Middlebox) -> AsyncIterator[Middlebox]:
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_route("*", "/{tail:.*}", box.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    box.url = f"http://127.0.0.1:{port}"
    try:
        yield box
    finally:
        await runner.cleanup()


@pytest.fixture
async def middlebox(dev_server: DevServer) -> AsyncIterator[Middlebox]:
    async with running(Middlebox(dev_server.url)) as box:
        yield box


@pytest.fixture
async def thief() -> AsyncIterator[Middlebox]:
    """Another host (port) a redirect points at; it accepts anything with a 200."""
    async with running(Middlebox("")) as box:
        yield box


@pytest.fixture
def front_agent(
    tmp_path: Path, middlebox: Middlebox, log_dir: Path
) -> Iterator[Callable[..., Agent]]:
    started: list[Agent] = []

    def make(**options: Any) -> Agent:
        agent = Agent(tmp_path, middlebox.url, log_dir, **options)
        started.append(agent)
        return agent

    yield make
    kill_leftovers(started)


def seqs(server: DevServer) -> list[int]:
    return [orjson.loads(line)["seq"] for line in server.received_lines(CONNECTION)]


def named(agent: Agent, event: str) -> list[dict[str, Any]]:
    return [e for e in agent.events() if e.get("event") == event]


def dead_letter_files(agent: Agent) -> list[Path]:
    return [
        p
        for p in agent.data_dir.rglob("*")
        if p.is_file() and "dead" in str(p.relative_to(agent.data_dir))
    ]


async def readiness(agent: Agent) -> tuple[int, str]:
    """/readyz's status, and the delivery problems /metrics shows. Issue 15: a refusing
    endpoint is a delivery problem, and /readyz stays 200 while the agent reads."""
    url = named(agent, "admin_listening")[0]["url"]
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{url}/readyz") as response:
            status = response.status
        async with http.get(f"{url}/metrics") as response:
            metrics = await response.text()
    problems = [
        line.split('reason="')[1].split('"')[0]
        for line in metrics.splitlines()
        if line.startswith("polaris_agent_delivery_problem{") and line.endswith(" 1.0")
    ]
    return status, ",".join(problems)


ADMIN = {"listen": "127.0.0.1:0"}
NO_SPOOL = {"enabled": False}
SPOOL = pytest.mark.parametrize("spool", [{}, NO_SPOOL], ids=["spool", "no_spool"])


# -- 1. headers ----------------------------------------------------------------------------


async def test_non_finite_rate_limit_headers_neither_crash_nor_lose_anything(
    dev_server: DevServer, middlebox: Middlebox, front_agent, log_dir: Path
) -> None:
    middlebox.headers = {
        "RateLimit-Remaining": "nan",
        "RateLimit-Limit": "1e309",
        "X-RateLimit-Limit-Minute": "inf",
        "RateLimit-Reset": "-inf",
        "Retry-After": "garbage",
    }
    write_json_lines(log_dir / "app.log", 0, 500)
    agent = front_agent(batch={"max_bytes": 5000})

    assert await agent.run_once(within=60) == 0

    assert sorted(seqs(dev_server)) == list(range(500))
    assert agent.checkpoints()[str(log_dir / "app.log")] == (log_dir / "app.log").stat().st_size


# -- 2. redirects --------------------------------------------------------------------------


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
async def test_a_redirect_is_never_followed_and_the_data_is_kept(
    status: int,
    dev_server: DevServer,
    middlebox: Middlebox,
    thief: Middlebox,
    front_agent,
    log_dir: Path,
) -> None:
    redirecting = True

    async def redirect(request: web.Request) -> web.StreamResponse | None:
        if not redirecting:
            return None
        location = f"{thief.url}{request.path}?token=not-for-logs"
        return web.Response(status=status, headers={"Location": location}, text="moved")

    middlebox.answer = redirect
    write_json_lines(log_dir / "app.log", 0, 300)
    agent = front_agent(api=ADMIN)
    await agent.start()
    await eventually(lambda: len(middlebox.seen) >= 3, what="redirected requests")
    await eventually(lambda: bool(named(agent, "admin_listening")), what="admin up")
    ready, why = await readiness(agent)
    assert ready == 200 and "endpoint_refusing" in why
    assert (
        agent.checkpoints().get(str(log_dir / "app.log"), 0) == 0
        or (agent.data_dir / "spool").exists()
    )

    redirecting = False
    await eventually(lambda: sorted(set(seqs(dev_server))) == list(range(300)), what="delivered")
    assert await agent.stop() == 0

    assert thief.seen == [], "the key and the data went to the host the redirect named"
    refused = named(agent, "redirect_refused")
    assert len(refused) == 1, "one line per episode, not one per request"
    port = thief.url.rsplit(":", 1)[1]
    assert refused[0]["location_host"] == f"127.0.0.1:{port}"
    stderr = agent.stderr.read_text()
    assert API_KEY not in stderr and "not-for-logs" not in stderr
    assert dead_letter_files(agent) == []


# -- 3. a missing connection ---------------------------------------------------------------


@SPOOL
async def test_a_missing_connection_keeps_the_data_never_splits_and_says_so_once(
    spool: dict[str, bool], dev_server: DevServer, middlebox: Middlebox, front_agent, log_dir: Path
) -> None:
    dev_server.faults.fail_for(404, 3600)
    write_json_lines(log_dir / "app.log", 0, 2000)
    agent = front_agent(api=ADMIN, spool=spool, batch={"max_bytes": 20000})
    await agent.start()
    await eventually(lambda: len(middlebox.seen) >= 4, what="refused requests")
    await eventually(lambda: bool(named(agent, "admin_listening")), what="admin up")
    ready, why = await readiness(agent)
    assert ready == 200 and "endpoint_refusing" in why

    dev_server.faults.clear()
    await eventually(lambda: sorted(set(seqs(dev_server))) == list(range(2000)), what="delivered")
    assert await agent.stop() == 0

    assert named(agent, "payload_split") == []
    assert dead_letter_files(agent) == []
    missing = named(agent, "connection_missing")
    assert len(missing) == 1 and missing[0]["connection"] == CONNECTION


# -- 4. a blanket 400 ----------------------------------------------------------------------


@SPOOL
async def test_a_blanket_400_keeps_the_batch_instead_of_dead_lettering_every_event(
    spool: dict[str, bool], dev_server: DevServer, middlebox: Middlebox, front_agent, log_dir: Path
) -> None:
    dev_server.faults.fail_for(400, 3600)
    write_json_lines(log_dir / "app.log", 0, 2000)
    agent = front_agent(api=ADMIN, spool=spool, batch={"max_bytes": 50000})
    await agent.start()
    await eventually(lambda: bool(named(agent, "endpoint_refuses_everything")), what="blanket seen")
    await eventually(lambda: bool(named(agent, "admin_listening")), what="admin up")
    ready, why = await readiness(agent)
    assert ready == 200 and "endpoint_refusing" in why
    refused_so_far = len(middlebox.seen)

    dev_server.faults.clear()
    await eventually(lambda: sorted(set(seqs(dev_server))) == list(range(2000)), what="delivered")
    assert await agent.stop() == 0

    assert dead_letter_files(agent) == [], "good events were dead-lettered one by one"
    assert refused_so_far < 100, f"splitting is bounded: {refused_so_far} requests"
    assert len(named(agent, "endpoint_refuses_everything")) == 1


async def test_one_bad_event_is_still_isolated_and_dead_lettered(
    dev_server: DevServer, middlebox: Middlebox, front_agent, log_dir: Path
) -> None:
    async def refuse_the_poison(request: web.Request) -> web.StreamResponse | None:
        body = await request.read()  # inflated already
        if b'"seq":777,' in body or b'"seq":777}' in body:
            return web.Response(status=400, text='{"error":{"message":"bad event"}}')
        return None

    middlebox.answer = refuse_the_poison
    write_json_lines(log_dir / "app.log", 0, 2000)
    agent = front_agent(batch={"max_bytes": 50000})

    assert await agent.run_once(within=60) == 0

    assert sorted(seqs(dev_server)) == [n for n in range(2000) if n != 777]
    letters = [
        orjson.loads(line)
        for path in dead_letter_files(agent)
        for line in path.read_bytes().splitlines()
    ]
    assert len(letters) == 1 and '"seq":777' in str(letters[0])
    assert named(agent, "endpoint_refuses_everything") == []


# -- 5. timing headers ---------------------------------------------------------------------


async def test_retry_after_zero_does_not_make_a_hot_loop_or_a_log_flood(
    dev_server: DevServer, middlebox: Middlebox, front_agent, log_dir: Path
) -> None:
    until = time.monotonic() + 3.0

    async def throttle(request: web.Request) -> web.StreamResponse | None:
        if time.monotonic() < until:
            return web.Response(status=429, headers={"Retry-After": "0"}, text="slow down")
        return None

    middlebox.answer = throttle
    write_json_lines(log_dir / "app.log", 0, 1000)
    agent = front_agent(batch={"max_bytes": 5000}, sender={"workers": 4})

    assert await agent.run_once(within=60) == 0

    assert sorted(seqs(dev_server)) == list(range(1000))
    throttled = [s for s in middlebox.seen if s.at < until]
    assert len(throttled) <= 20, f"{len(throttled)} requests in 3 s of 429s"
    assert len(named(agent, "throttled")) <= 10


async def test_a_huge_retry_after_ends_at_sigterm(
    dev_server: DevServer, middlebox: Middlebox, front_agent, log_dir: Path
) -> None:
    async def throttle(request: web.Request) -> web.StreamResponse | None:
        return web.Response(status=429, headers={"Retry-After": "99999999999"}, text="no")

    middlebox.answer = throttle
    write_json_lines(log_dir / "app.log", 0, 10)
    agent = front_agent()
    await agent.start()
    await eventually(lambda: bool(named(agent, "throttled")), what="throttled")
    pause = named(agent, "throttled")[0]["pause"]
    assert pause <= 120.5, "a header's wait is capped"
    started = time.monotonic()
    assert await agent.stop(within=15) == 0
    assert time.monotonic() - started < 8


# -- 6. error bodies -----------------------------------------------------------------------


async def test_an_endless_error_body_is_read_only_up_to_the_cap(
    dev_server: DevServer, middlebox: Middlebox, front_agent, log_dir: Path
) -> None:
    served = 0

    async def endless_500(request: web.Request) -> web.StreamResponse | None:
        nonlocal served
        if served >= 2:
            return None
        served += 1
        response = web.StreamResponse(status=500)
        await response.prepare(request)
        chunk = b"x" * 65536
        try:
            for _ in range(100 * 1024 * 1024 // len(chunk)):  # 100 MB, if anyone reads it
                await response.write(chunk)
                middlebox.body_bytes_written += len(chunk)
        except (ConnectionError, RuntimeError):
            pass
        return response

    middlebox.answer = endless_500
    write_json_lines(log_dir / "app.log", 0, 100)
    agent = front_agent()

    assert await agent.run_once(within=60) == 0

    assert sorted(seqs(dev_server)) == list(range(100))
    assert middlebox.body_bytes_written < 20 * 1024 * 1024, middlebox.body_bytes_written
    failed = named(agent, "delivery_failed")
    assert failed and all(len(e["error"]) <= 400 for e in failed)
