"""The Events API's contract: auth, connection lookup, payload rules, rate-limit headers."""

from __future__ import annotations

import gzip

from agent.devserver import DevServer, running_dev_server

from .devkit import Api

RATE_HEADERS = (
    "RateLimit-Limit",
    "RateLimit-Remaining",
    "RateLimit-Reset",
    "X-RateLimit-Limit-Minute",
    "X-RateLimit-Remaining-Minute",
)


async def test_accepted_lines_are_kept_in_order_without_newlines(
    api: Api, dev_server: DevServer
) -> None:
    status, body, _ = await api.events("demo_connection", b'{"n":1}\n\n{"n":2}\n')
    assert (status, body) == (200, "OK")
    await api.events("demo_connection", b'{"n":3}')
    assert dev_server.received_lines("demo_connection") == [b'{"n":1}', b'{"n":2}', b'{"n":3}']
    record = dev_server.requests[0]
    assert (record.status, record.connection, record.line_count, record.body_bytes) == (
        200,
        "demo_connection",
        2,
        17,
    )
    assert record.auth_user == "dev-key"
    assert "dev-key" not in repr(record)


async def test_wrong_or_missing_key_is_401_and_nothing_is_kept(
    api: Api, dev_server: DevServer
) -> None:
    status, body, response = await api.events("demo_connection", b'{"n":1}', key="nope")
    assert status == 401
    assert "message" in body
    assert all(h in response.headers for h in RATE_HEADERS)
    async with api.session.post(api.url("/events/demo_connection"), data=b'{"n":1}') as anon:
        assert anon.status == 401
    assert dev_server.received_lines("demo_connection") == []


async def test_unknown_connection_is_404(api: Api) -> None:
    status, body, response = await api.events("no_such_connection", b'{"n":1}')
    assert status == 404
    assert "no_such_connection" in body["message"]
    assert "RateLimit-Remaining" in response.headers


async def test_gzip_body_is_decompressed(api: Api, dev_server: DevServer) -> None:
    status, _, _ = await api.events("demo_connection", gzip.compress(b'{"z":1}\n'), gzip=True)
    assert status == 200
    assert dev_server.received_lines("demo_connection") == [b'{"z":1}']
    assert dev_server.requests[-1].content_encoding == "gzip"


async def test_body_that_is_not_gzip_is_400(api: Api, dev_server: DevServer) -> None:
    status, body, _ = await api.events("demo_connection", b'{"z":1}', gzip=True)
    assert status == 400
    assert "gzip" in body["message"]
    assert dev_server.received_lines("demo_connection") == []


async def test_line_that_is_not_an_object_rejects_the_whole_request(
    api: Api, dev_server: DevServer
) -> None:
    status, body, _ = await api.events("demo_connection", b'{"ok":1}\n\n[1,2]\n{"ok":2}\n')
    assert status == 400
    assert "line 3" in body["message"]
    status, body, _ = await api.events("demo_connection", b'{"ok":1}\n{"broken"\n')
    assert status == 400
    assert "line 2" in body["message"]
    assert dev_server.received_lines("demo_connection") == []


async def test_payload_limit_applies_to_decompressed_and_compressed_bodies(
    api: Api, dev_server: DevServer
) -> None:
    line = b'{"pad":"' + b"x" * 89 + b'"}\n'  # 100 bytes
    exactly_limit = line * 10_000  # 1,000,000 bytes
    status, _, _ = await api.events("demo_connection", exactly_limit)
    assert status == 200
    status, body, response = await api.events("demo_connection", exactly_limit + line)
    assert status == 413
    assert "limit" in body["message"]
    assert "RateLimit-Limit" in response.headers
    # Compresses to a few kB, but decompresses beyond 1 MB: still too large.
    status, _, _ = await api.events(
        "demo_connection", gzip.compress(exactly_limit + line), gzip=True
    )
    assert status == 413
    dev_server.faults.set_max_payload(100)
    status, _, _ = await api.events("demo_connection", gzip.compress(line * 2), gzip=True)
    assert status == 413  # the compressed body alone is over the (shrunk) limit
    assert len(dev_server.received_lines("demo_connection")) == 10_000


async def test_rate_limit_headers_count_down_then_429(api: Api, dev_server: DevServer) -> None:
    dev_server.faults.set_rate_limit(3)
    remaining = []
    for _ in range(3):
        status, _, response = await api.events("demo_connection", b'{"n":1}')
        assert status == 200
        assert response.headers["RateLimit-Limit"] == "3"
        assert response.headers["X-RateLimit-Limit-Minute"] == "3"
        assert 0 < int(response.headers["RateLimit-Reset"]) <= 60
        remaining.append(int(response.headers["RateLimit-Remaining"]))
        assert response.headers["X-RateLimit-Remaining-Minute"] == str(remaining[-1])
    assert remaining == [2, 1, 0]
    status, body, response = await api.events("demo_connection", b'{"n":2}')
    assert status == 429
    assert body == {"message": "API rate limit exceeded"}
    assert response.headers["RateLimit-Remaining"] == "0"
    assert 0 < int(response.headers["Retry-After"]) <= 60
    assert dev_server.received_lines("demo_connection") == [b'{"n":1}'] * 3


async def test_rate_limit_window_resets_after_a_minute() -> None:
    from agent.devserver.ratelimit import FixedWindowRateLimiter

    now = [100.0]
    limiter = FixedWindowRateLimiter(2, clock=lambda: now[0])
    assert limiter.acquire().remaining == 1
    now[0] += 10
    state = limiter.acquire()
    assert (state.allowed, state.remaining, state.reset_seconds) == (True, 0, 50)
    assert not limiter.acquire().allowed
    now[0] += 50
    assert limiter.acquire().remaining == 1


async def test_api_keys_are_configurable() -> None:
    import aiohttp

    async with (
        running_dev_server(api_keys=["k1", "k2"], auto_create_connections=["c"]) as server,
        aiohttp.ClientSession() as session,
    ):
        api = Api(server, session)
        assert (await api.events("c", b'{"a":1}', key="k2"))[0] == 200
        assert (await api.events("c", b'{"a":1}', key="dev-key"))[0] == 401
