"""The management API client against stand-in Polaris servers for answers the dev-server does not
give (403, 5xx) and for TLS: each failure becomes one of our error types, one line, no key."""

from __future__ import annotations

import base64
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from agent.config import PolarisConfig
from agent.polaris import errors
from agent.polaris.api import PolarisApi
from tests.support.certs import self_signed as make_self_signed

SECRET = "pok_standIn_91bd0e4a"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@asynccontextmanager
async def stand_in_polaris(
    handler: Handler, tls: ssl.SSLContext | None = None
) -> AsyncIterator[str]:
    """An HTTP(S) server on 127.0.0.1, port 0, answering every request with ``handler``."""
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=tls)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"{'https' if tls else 'http'}://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


def _config(url: str, **extra: Any) -> PolarisConfig:
    return PolarisConfig.model_validate(
        {"url": url, "project_id": "p1", "connection": "c", "api_key": SECRET, **extra}
    )


def _answer(status: int, body: str = "") -> Handler:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(status=status, text=body, content_type="application/json")

    return handler


async def _list_jobs(config: PolarisConfig) -> None:
    async with PolarisApi.open(config) as api:
        await api.list_jobs()


async def test_basic_auth_carries_the_key_as_user_with_an_empty_password() -> None:
    seen: list[str | None] = []

    async def handler(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Authorization"))
        return web.json_response({"values": []})

    async with stand_in_polaris(handler) as url, PolarisApi.open(_config(url)) as api:
        assert await api.list_jobs() == []
    assert seen == ["Basic " + base64.b64encode(f"{SECRET}:".encode()).decode()]


async def test_403_names_the_permissions_the_key_needs() -> None:
    async with stand_in_polaris(_answer(403, '{"error": {"message": "forbidden"}}')) as url:
        with pytest.raises(errors.PermissionDenied) as caught:
            await _list_jobs(_config(url))
    assert str(caught.value) == (
        "permission denied: the API key needs ManageConnections, ManageTables"
        " and ManageIngestionJobs"
    )


async def test_a_polaris_message_that_echoes_the_key_is_scrubbed() -> None:
    body = '{"error": {"message": "bad key ' + SECRET + ' in request"}}'
    async with stand_in_polaris(_answer(400, body)) as url:
        with pytest.raises(errors.RequestRejected) as caught:
            await _list_jobs(_config(url))
    assert SECRET not in str(caught.value)
    assert "bad key [redacted] in request" in str(caught.value)


async def test_5xx_is_a_server_error_with_polaris_message() -> None:
    async with stand_in_polaris(_answer(503, '{"message": "maintenance"}')) as url:
        with pytest.raises(errors.ServerError, match=r"\(503\): maintenance"):
            await _list_jobs(_config(url))


async def test_a_2xx_that_is_not_json_is_an_unexpected_answer() -> None:
    async with stand_in_polaris(_answer(200, "<html>")) as url:
        with pytest.raises(errors.UnexpectedAnswer, match="not JSON"):
            await _list_jobs(_config(url))


# -- TLS -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def self_signed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 signed by nobody a default trust store knows."""
    key, cert = make_self_signed(tmp_path_factory.mktemp("tls"))
    return cert, key


def _server_tls(cert_and_key: tuple[Path, Path]) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*cert_and_key)
    return context


async def test_an_unknown_certificate_is_refused_by_default(
    self_signed: tuple[Path, Path],
) -> None:
    async with stand_in_polaris(_answer(401), _server_tls(self_signed)) as url:
        with pytest.raises(errors.TlsFailure) as caught:
            await _list_jobs(_config(url))
    assert str(caught.value).startswith(f"cannot reach Polaris at {url}: TLS error: ")
    assert "polaris.tls_ca_file" in str(caught.value)


async def test_a_private_ca_file_is_trusted(self_signed: tuple[Path, Path]) -> None:
    # The stand-in answers 401: reaching "authentication failed" proves TLS succeeded.
    async with stand_in_polaris(_answer(401), _server_tls(self_signed)) as url:
        with pytest.raises(errors.AuthenticationFailed):
            await _list_jobs(_config(url, tls_ca_file=str(self_signed[0])))


async def test_verification_can_be_turned_off_explicitly(self_signed: tuple[Path, Path]) -> None:
    async with stand_in_polaris(_answer(401), _server_tls(self_signed)) as url:
        with pytest.raises(errors.AuthenticationFailed):
            await _list_jobs(_config(url, tls_verify=False))


async def test_a_missing_ca_file_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "ca.pem"
    with pytest.raises(errors.TlsFailure, match=f"cannot load polaris.tls_ca_file {missing}"):
        await _list_jobs(_config("https://127.0.0.1:1", tls_ca_file=str(missing)))
