"""Header values an attacker or a broken proxy could send: none may raise, none may pause the
pool for longer than the cap, none may make the pool hammer the endpoint."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import math
import time

import pytest
from aiohttp import web
from structlog.testing import capture_logs

from agent.config import PolarisConfig
from agent.ops.health import ENDPOINT_REFUSING, delivery_problems, readiness
from agent.ops.snapshot import AgentSnapshot, LatencyHistogram
from agent.polaris import errors as polaris_errors
from agent.polaris.api import PolarisApi
from agent.ship.errors import (
    AuthFailed,
    ConnectionMissing,
    DeliveryError,
    PayloadRejected,
    PayloadTooLarge,
    Redirected,
    ServerFailed,
    Throttled,
    classify,
)
from agent.ship.http import EventsClient, use_env_proxy
from agent.ship.ratelimit import (
    MAX_HEADER_WAIT,
    MIN_THROTTLE_WAIT,
    Pacer,
    RateLimitInfo,
    header_seconds,
)
from tests.support.serving import serving

SECRET = "pok_hostile_0123456789"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


HOSTILE = [
    "nan",
    "NaN",
    "-nan",
    "inf",
    "-inf",
    "1e309",
    "-1e309",
    "99999999999",
    "9" * 400,
    "-5",
    "-0",
    "",
    " ",
    "garbage",
    "1,5",
    "0x10",
    "\x00",
    "\uff11\uff12",  # full-width digits: float() takes them; they must still come out bounded
    "Wed, 21 Oct 2015 07:28:00 GMT",
    "Fri, 31 Dec 9999 23:59:59 GMT",
]


@pytest.mark.parametrize("value", HOSTILE)
def test_no_rate_limit_header_value_raises_or_escapes_its_bounds(value: str) -> None:
    headers = {
        "ratelimit-limit": value,
        "ratelimit-remaining": value,
        "ratelimit-reset": value,
        "x-ratelimit-limit-minute": value,
        "x-ratelimit-remaining-minute": value,
    }
    info = RateLimitInfo.from_headers(headers)
    for number in (info.limit, info.remaining):
        assert number is None or 0 <= number <= 1_000_000_000
    assert info.reset_secs is None or 0 <= info.reset_secs <= MAX_HEADER_WAIT


@pytest.mark.parametrize("value", HOSTILE)
def test_retry_after_is_absent_or_a_bounded_finite_wait(value: str) -> None:
    wait = header_seconds(value)
    assert wait is None or (math.isfinite(wait) and 0 <= wait <= MAX_HEADER_WAIT)


def test_reasonable_values_pass_through() -> None:
    info = RateLimitInfo.from_headers(
        {"ratelimit-limit": "600", "ratelimit-remaining": "12", "ratelimit-reset": "42.5"}
    )
    assert info == RateLimitInfo(600, 12, 42.5)
    assert header_seconds("7") == 7.0
    assert header_seconds("99999999999") == MAX_HEADER_WAIT
    assert header_seconds("nan") is None and header_seconds("-3") is None


def test_a_huge_retry_after_pauses_the_pool_no_longer_than_the_cap() -> None:
    pacer = Pacer()
    before = time.monotonic()
    pacer.throttle(1e12)
    assert pacer.paused_for(before) <= MAX_HEADER_WAIT + 1


def test_a_huge_reset_does_not_stretch_the_pacing_window() -> None:
    pacer = Pacer()
    pacer.observe(
        RateLimitInfo.from_headers({"ratelimit-remaining": "0", "ratelimit-reset": "1e12"})
    )
    assert pacer.paused_for(time.monotonic()) <= MAX_HEADER_WAIT + 1


@pytest.mark.parametrize("retry_after", [0.0, -5.0, None, math.nan])
def test_consecutive_zero_waits_grow_instead_of_looping_hot(retry_after: float | None) -> None:
    clock = FakeClock()
    pacer = Pacer(clock=clock)
    waits = []
    for _ in range(8):
        pacer.throttle(retry_after)
        waits.append(pacer.paused_for(clock.now))
        clock.now += waits[-1]  # the pause ends, the next request is refused again
    assert waits[0] >= MIN_THROTTLE_WAIT * 0.99
    assert waits[-1] > 4 * waits[0], f"the floor must grow on consecutive 429s: {waits}"
    assert max(waits) <= MAX_HEADER_WAIT + 1


def test_a_success_resets_the_growing_floor() -> None:
    clock = FakeClock()
    pacer = Pacer(clock=clock)
    for _ in range(6):
        pacer.throttle(0)
        clock.now += pacer.paused_for(clock.now)
    pacer.relax()
    pacer.throttle(0)
    assert pacer.paused_for(clock.now) <= MIN_THROTTLE_WAIT * 1.01


def test_workers_refused_within_one_pause_do_not_stretch_it() -> None:
    clock = FakeClock()
    pacer = Pacer(clock=clock)
    for _ in range(8):  # eight workers, each answered 429 at the same moment
        pacer.throttle(0)
    assert pacer.paused_for(clock.now) <= MIN_THROTTLE_WAIT * 1.01


def test_only_a_new_pause_asks_to_be_logged() -> None:
    pacer = Pacer()
    assert pacer.throttle(5) is True
    assert pacer.throttle(5) is False, "a second worker's 429 within the same pause is quiet"


async def test_acquire_returns_at_once_when_stopping_even_with_budget_left() -> None:
    pacer = Pacer()
    stop = asyncio.Event()
    stop.set()
    assert await pacer.acquire(stop) is True


async def test_a_long_pause_ends_at_shutdown() -> None:
    pacer = Pacer()
    pacer.throttle(MAX_HEADER_WAIT)
    stop = asyncio.Event()
    asyncio.get_running_loop().call_later(0.05, stop.set)
    async with asyncio.timeout(5):
        assert await pacer.acquire(stop) is True


@pytest.mark.parametrize(
    ("status", "kind", "retryable"),
    [
        (301, Redirected, True),
        (302, Redirected, True),
        (303, Redirected, True),
        (307, Redirected, True),
        (308, Redirected, True),
        (300, Redirected, True),
        (304, Redirected, True),
        (401, AuthFailed, True),
        (403, AuthFailed, True),
        (404, ConnectionMissing, True),
        (429, Throttled, True),
        (500, ServerFailed, True),
        (503, ServerFailed, True),
        (413, PayloadTooLarge, False),
        (400, PayloadRejected, False),
        (422, PayloadRejected, False),
    ],
)
def test_every_status_has_one_class_and_a_consistent_retryability(
    status: int, kind: type[DeliveryError], retryable: bool
) -> None:
    error = classify(status, "body", None)
    assert type(error) is kind
    assert error.retryable is retryable


# -- the setup client (agent/polaris/api.py) and readiness ----------------------------------


def polaris_config(url: str) -> PolarisConfig:
    return PolarisConfig.model_validate(
        {"url": url, "project_id": "p1", "connection": "c", "api_key": SECRET}
    )


@pytest.mark.parametrize("status", [301, 302, 307, 308])
async def test_setup_never_follows_a_redirect_nor_sends_the_key_elsewhere(status: int) -> None:
    stolen: list[bool] = []

    async def thief(request: web.Request) -> web.StreamResponse:
        stolen.append("Authorization" in request.headers)
        return web.json_response({"values": []})

    async with serving(thief) as thief_url:

        async def redirect(request: web.Request) -> web.StreamResponse:
            location = f"{thief_url}{request.path}?sig=secret-ish"
            return web.Response(status=status, headers={"Location": location})

        async with serving(redirect) as url, PolarisApi.open(polaris_config(url)) as api:
            with pytest.raises(polaris_errors.RequestRejected) as caught:
                await api.list_jobs()

    assert stolen == []
    message = str(caught.value)
    port = thief_url.rsplit(":", 1)[1]
    assert f"127.0.0.1:{port}" in message and "not followed" in message
    assert SECRET not in message and "secret-ish" not in message


async def test_setup_reads_only_the_start_of_an_endless_error_body() -> None:
    written = 0

    async def endless(request: web.Request) -> web.StreamResponse:
        nonlocal written
        response = web.StreamResponse(status=500)
        await response.prepare(request)
        with contextlib.suppress(ConnectionError, RuntimeError):
            for _ in range(100 * 16):  # 100 MB, if anyone reads it
                await response.write(b"e" * 65536)
                written += 65536
        return response

    async with serving(endless) as url, PolarisApi.open(polaris_config(url)) as api:
        with pytest.raises(polaris_errors.ServerError) as caught:
            await api.list_jobs()

    assert written < 20 * 1024 * 1024
    assert len(str(caught.value)) < 1000


async def test_events_client_reads_only_the_start_of_an_error_body() -> None:
    async def big(request: web.Request) -> web.StreamResponse:
        return web.Response(status=500, body=b"x" * (5 * 1024 * 1024))

    async with serving(big) as url, EventsClient(polaris_config(url), connections=1) as client:
        answer = await client.post("c", b"{}\n", gzip=False)
    assert answer.status == 500 and len(answer.message) <= 300


@pytest.mark.parametrize("reason", ["redirect", "not_found", "blanket_refusal"])
def test_an_endpoint_refusing_everything_is_not_ready(reason: str) -> None:
    # Issue 15: a delivery problem (a metric and an alert), no longer unreadiness.
    snapshot = dataclasses.replace(ready_snapshot(), endpoint_refusing=reason)
    assert delivery_problems(snapshot) == (ENDPOINT_REFUSING,)
    assert readiness(snapshot).ready
    assert delivery_problems(ready_snapshot()) == ()


def ready_snapshot() -> AgentSnapshot:
    return AgentSnapshot(
        sources=(),
        events_sent=1,
        bytes_sent=1,
        bytes_posted=1,
        requests={"200": 1},
        retries=0,
        ratelimit_remaining=None,
        queue_bytes=0,
        in_flight_batches=0,
        spool_bytes=0,
        spool_files=0,
        spool_max_bytes=0,
        spool_corrupt_files=0,
        dead_letters={},
        drops={},
        request_latency=LatencyHistogram().frozen(),
        auth_failing=False,
        seconds_since_success=1.0,
        uptime_seconds=10.0,
    )


def test_https_proxy_is_honoured_for_https_and_never_for_plain_http(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://user:pw@proxy.internal:3128")
    monkeypatch.setenv("HTTP_PROXY", "http://user:pw@proxy.internal:3128")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    with capture_logs() as logs:
        assert use_env_proxy("https://api.imply.io") is True
        assert use_env_proxy("http://127.0.0.1:9999") is False
    assert [e["event"] for e in logs] == ["using_proxy", "proxy_ignored"]
    assert all(e["proxy_host"] == "proxy.internal" for e in logs)
    assert "pw" not in str(logs)
    monkeypatch.setenv("NO_PROXY", "api.imply.io")
    assert use_env_proxy("https://api.imply.io") is False
