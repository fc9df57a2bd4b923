"""How the dev-server authenticates, as Polaris does: an API key in each HTTP Basic form
Imply's material sends, and OAuth tokens from its own token endpoint that expire."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from agent.devserver import DevServer, running_dev_server
from tests.support.clock import TestClock

KEY = "dev-key"
CLIENT, SECRET = "ingest-client", "s3cret-value"
EVENT = b'{"event_time":"2026-01-01T00:00:00Z","user":"a"}\n'


@pytest.fixture
async def server(clock: TestClock) -> AsyncIterator[DevServer]:
    async with running_dev_server(
        api_keys=[KEY],
        auto_create_connections=["demo_connection"],
        oauth_clients={CLIENT: SECRET},
        token_lifetime=2.0,
        clock=clock,
    ) as dev:
        yield dev


async def post_events(server: DevServer, authorization: str | None) -> tuple[int, str]:
    headers = {"Content-Type": "application/json"}
    if authorization is not None:
        headers["Authorization"] = authorization
    url = f"{server.url}/v1/projects/p/events/demo_connection"
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, data=EVENT, headers=headers) as response,
    ):
        return response.status, await response.text()


async def get_token(server: DevServer, org: str = "example", **form: str) -> tuple[int, Any]:
    url = f"{server.url}/auth/realms/{org}/protocol/openid-connect/token"
    async with aiohttp.ClientSession() as session, session.post(url, data=form) as response:
        return response.status, await response.json()


@pytest.mark.parametrize(
    "authorization",
    [
        "Basic " + base64.b64encode(f"{KEY}:".encode()).decode(),  # curl --user KEY:, RFC 7617
        f"Basic {KEY}",  # Imply's API key examples
        f"Basic {KEY}:",  # the reference page's Python: f'Basic {API_KEY}:'
        f"basic   {KEY}",
    ],
)
async def test_the_basic_forms_imply_sends_are_accepted(
    server: DevServer, authorization: str
) -> None:
    assert await post_events(server, authorization) == (200, "OK")
    assert server.requests[-1].auth_user == KEY


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "Basic " + base64.b64encode(b"wrong-key:").decode(),
        "Basic wrong-key",
        f"Bearer {KEY}",  # an API key is not a token
        f"Token {KEY}",
    ],
)
async def test_anything_else_is_401(server: DevServer, authorization: str | None) -> None:
    status, _ = await post_events(server, authorization)
    assert status == 401


async def test_the_token_endpoint_issues_tokens_that_expire(
    server: DevServer, clock: TestClock
) -> None:
    status, answer = await get_token(
        server, grant_type="client_credentials", client_id=CLIENT, client_secret=SECRET
    )
    assert status == 200
    assert answer["token_type"] == "Bearer"
    assert answer["expires_in"] == 2
    bearer = f"Bearer {answer['access_token']}"
    assert await post_events(server, bearer) == (200, "OK")
    assert server.requests[-1].auth_user == CLIENT

    clock.advance(2.0)

    status, text = await post_events(server, bearer)
    assert status == 401
    assert "token expired" in text


async def test_the_token_endpoint_refuses_what_keycloak_refuses(server: DevServer) -> None:
    assert await get_token(
        server, grant_type="client_credentials", client_id=CLIENT, client_secret="nope"
    ) == (401, {"error": "invalid_client", "error_description": _any_text()})
    status, answer = await get_token(server, grant_type="password", client_id=CLIENT)
    assert (status, answer["error"]) == (400, "unsupported_grant_type")
    status, answer = await get_token(server, client_id=CLIENT, client_secret=SECRET)
    assert (status, answer["error"]) == (400, "invalid_request")


async def test_client_credentials_in_basic_auth_are_taken_too(server: DevServer) -> None:
    basic = base64.b64encode(f"{CLIENT}:{SECRET}".encode()).decode()
    url = f"{server.url}/auth/realms/example/protocol/openid-connect/token"
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            url,
            data={"grant_type": "client_credentials"},
            headers={"Authorization": f"Basic {basic}"},
        ) as response,
    ):
        assert response.status == 200
        assert (await response.json())["access_token"]


class _any_text(str):
    def __eq__(self, other: object) -> bool:
        return isinstance(other, str) and bool(other)

    def __hash__(self) -> int:
        return 0
