"""Faults, from Python and from the admin endpoint: each changes only Events responses."""

from __future__ import annotations

import time

import aiohttp
import pytest

from agent.devserver import DevServer
from tests.support.clock import TestClock

from .devkit import Api


async def test_fail_next_answers_the_status_and_keeps_nothing(
    api: Api, dev_server: DevServer
) -> None:
    dev_server.faults.fail_next(503, 2, retry_after=2, headers={"X-Fault": "yes"})
    for _ in range(2):
        status, body, response = await api.events("demo_connection", b'{"n":1}')
        assert status == 503
        assert "message" in body
        assert response.headers["Retry-After"] == "2"
        assert response.headers["X-Fault"] == "yes"
        assert "RateLimit-Remaining" in response.headers
    status, _, _ = await api.events("demo_connection", b'{"n":2}')
    assert status == 200
    assert dev_server.received_lines("demo_connection") == [b'{"n":2}']
    assert [r.status for r in dev_server.requests] == [503, 503, 200]
    assert dev_server.requests[0].line_count == 1


async def test_a_refused_event_fails_every_payload_holding_it_and_no_other(
    api: Api, dev_server: DevServer
) -> None:
    dev_server.faults.refuse_events_containing('"n":2')
    assert (await api.events("demo_connection", b'{"n":1}\n{"n":2}'))[0] == 400
    assert (await api.events("demo_connection", b'{"n":2}'))[0] == 400
    assert (await api.events("demo_connection", b'{"n":1}\n{"n":3}'))[0] == 200
    assert dev_server.received_lines("demo_connection") == [b'{"n":1}', b'{"n":3}']
    dev_server.faults.clear()
    assert (await api.events("demo_connection", b'{"n":2}'))[0] == 200


async def test_fail_next_429_carries_rate_headers(api: Api, dev_server: DevServer) -> None:
    dev_server.fail_next(429, retry_after=0.5)
    status, _, response = await api.events("demo_connection", b'{"n":1}')
    assert status == 429
    assert response.headers["Retry-After"] == "0.5"
    assert response.headers["RateLimit-Limit"] == "6000"


async def test_fail_for_covers_a_period_then_ends(
    api: Api, dev_server: DevServer, clock: TestClock
) -> None:
    clock.pause()
    dev_server.faults.fail_for(500, 0.3)
    assert (await api.events("demo_connection", b'{"n":1}'))[0] == 500
    clock.advance(0.29)
    assert (await api.events("demo_connection", b'{"n":1}'))[0] == 500
    clock.advance(0.01)
    assert (await api.events("demo_connection", b'{"n":2}'))[0] == 200
    assert dev_server.received_lines("demo_connection") == [b'{"n":2}']


async def test_delay_holds_back_the_next_responses_only(api: Api, dev_server: DevServer) -> None:
    held = 1.0
    dev_server.faults.delay(held, count=1)
    started = time.monotonic()
    assert (await api.events("demo_connection", b'{"n":1}'))[0] == 200
    assert time.monotonic() - started >= held
    started = time.monotonic()
    assert (await api.events("demo_connection", b'{"n":2}'))[0] == 200
    # Not held back: a held answer takes the whole delay, this one less (a bound of a full
    # second for a loopback request, not a race against a fraction of one).
    assert time.monotonic() - started < held
    assert dev_server.received_lines("demo_connection") == [b'{"n":1}', b'{"n":2}']


async def test_delay_past_the_client_timeout_is_a_timeout(api: Api, dev_server: DevServer) -> None:
    dev_server.faults.delay(1.0)
    timeout = aiohttp.ClientTimeout(total=0.2)
    with pytest.raises(TimeoutError):
        async with api.session.post(
            api.url("/events/demo_connection"),
            data=b'{"n":1}',
            timeout=timeout,
            headers={"Authorization": "Basic ZGV2LWtleTo="},
        ):
            pass
    dev_server.faults.clear()


async def test_reset_next_is_a_connection_error_for_the_client(
    api: Api, dev_server: DevServer
) -> None:
    dev_server.faults.reset_next()
    with pytest.raises(aiohttp.ClientConnectionError):
        await api.events("demo_connection", b'{"n":1}')
    assert (await api.events("demo_connection", b'{"n":2}'))[0] == 200
    assert dev_server.received_lines("demo_connection") == [b'{"n":2}']
    assert [r.status for r in dev_server.requests] == [0, 200]


async def test_faults_do_not_touch_other_apis(api: Api, dev_server: DevServer) -> None:
    dev_server.faults.fail_next(503)
    status, body = await api.get("/connections")
    assert status == 200, body
    assert (await api.events("demo_connection", b'{"n":1}'))[0] == 503


async def test_admin_endpoint_drives_the_same_faults(api: Api, dev_server: DevServer) -> None:
    session = api.session
    commands = [
        {"action": "fail_next", "status": 502, "count": 1, "retry_after": 1},
        {"action": "set_rate_limit", "per_minute": 10},
    ]
    async with session.post(dev_server.url + "/_dev/faults", json=commands) as response:
        assert response.status == 200
    status, _, response = await api.events("demo_connection", b'{"n":1}')
    assert status == 502
    assert response.headers["Retry-After"] == "1"
    assert response.headers["RateLimit-Limit"] == "10"

    async with session.post(
        dev_server.url + "/_dev/faults", json={"action": "reset_next"}
    ) as response:
        assert response.status == 200
    with pytest.raises(aiohttp.ClientConnectionError):
        await api.events("demo_connection", b'{"n":1}')

    async with session.post(dev_server.url + "/_dev/faults", json={"action": "nope"}) as bad:
        assert bad.status == 400
        assert "unknown fault action" in (await bad.json())["message"]
    async with session.post(
        dev_server.url + "/_dev/faults", json={"action": "fail_for", "status": 503}
    ) as bad:
        assert bad.status == 400
        assert "seconds" in (await bad.json())["message"]

    async with session.post(
        dev_server.url + "/_dev/faults", json={"action": "fail_next", "status": 500, "count": 5}
    ):
        pass
    async with session.delete(dev_server.url + "/_dev/faults") as response:
        assert response.status == 204
    status, _, response = await api.events("demo_connection", b'{"n":2}')
    assert status == 200
    assert response.headers["RateLimit-Limit"] == "6000"  # clear() restores the limits too

    async with session.get(dev_server.url + "/_dev/stats") as response:
        stats = await response.json()
    assert stats["requests"]["byStatus"] == {"0": 1, "200": 1, "502": 1}
    assert stats["lines"] == {"demo_connection": 1}
    assert stats["connections"] == ["demo_connection"]
