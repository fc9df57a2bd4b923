"""OAuth client credentials: the `[polaris.oauth]` and regional URL config, the token provider
against the dev-server's token endpoint and against hostile ones, and one provider and one
rate-limit budget shared by the events client and `setup`'s client."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from aiohttp import web

from agent.config import PolarisConfig
from agent.devserver import DevServer, running_dev_server
from agent.polaris import errors
from agent.polaris.api import PolarisApi
from agent.ship.http import EventsClient
from agent.ship.oauth import Access, TokenProvider, TokenRefused, TokenUnavailable
from tests.support.clock import TestClock
from tests.support.serving import Handler
from tests.support.serving import serving as serve

CLIENT, SECRET = "agent-client", "client-secret-0123456789"


def config(**polaris: Any) -> PolarisConfig:
    return PolarisConfig.model_validate({"project_id": "p", "connection": "logs", **polaris})


def oauth_config(url: str, secret: str = SECRET) -> PolarisConfig:
    token_url = f"{url}/auth/realms/acme/protocol/openid-connect/token"
    return config(
        url=url,
        oauth={"client_id": CLIENT, "client_secret": secret, "token_url": token_url},
    )


@pytest.fixture
async def server(clock: TestClock) -> AsyncIterator[DevServer]:
    async with running_dev_server(
        auto_create_connections=["logs"], oauth_clients={CLIENT: SECRET}, clock=clock
    ) as dev:
        yield dev


# -- config ------------------------------------------------------------------------------


def test_the_url_is_built_from_organization_region_and_cloud() -> None:
    polaris = config(organization="acme", region="us-east-1", cloud="aws", api_key="k")
    assert polaris.url == "https://acme.us-east-1.aws.api.imply.io"
    assert polaris.events_url() == (
        "https://acme.us-east-1.aws.api.imply.io/v1/projects/p/events/logs"
    )


@pytest.mark.parametrize(
    ("polaris", "where"),
    [
        ({"url": "https://x.example", "organization": "acme"}, ""),
        ({"organization": "acme", "region": "us-east-1"}, "cloud"),
        ({"organization": "Acme", "region": "us-east-1", "cloud": "aws"}, "organization"),
        ({"organization": "acme", "region": "-us", "cloud": "aws"}, "region"),
        ({"organization": "acme", "region": "us", "cloud": "a.b"}, "cloud"),
    ],
)
def test_url_parts_are_host_name_labels_and_exclude_url(
    polaris: dict[str, str], where: str
) -> None:
    with pytest.raises(ValueError) as caught:
        config(api_key="k", **polaris)
    assert where in str(caught.value)


def test_exactly_one_of_api_key_and_oauth() -> None:
    oauth = {"client_id": CLIENT, "client_secret": SECRET}
    with pytest.raises(ValueError, match="exactly one"):
        config(url="https://acme.us-east-1.aws.api.imply.io", api_key="k", oauth=oauth)
    with pytest.raises(ValueError, match="exactly one"):
        config(url="https://acme.us-east-1.aws.api.imply.io")


def test_the_token_url_defaults_to_imply_s_for_the_organization() -> None:
    oauth = {"client_id": CLIENT, "client_secret": SECRET}
    built = config(organization="acme", region="eu-central-1", cloud="aws", oauth=oauth)
    from_url = config(url="https://acme.eu-central-1.aws.api.imply.io", oauth=oauth)
    expected = "https://id.imply.io/auth/realms/acme/protocol/openid-connect/token"
    assert built.oauth is not None and built.oauth.token_url == expected
    assert from_url.oauth is not None and from_url.oauth.token_url == expected
    with pytest.raises(ValueError, match="token_url"):
        config(url="https://polaris.example.com", oauth=oauth)


def test_the_token_url_is_https_unless_loopback_and_the_secret_is_never_quoted() -> None:
    oauth = {"client_id": CLIENT, "client_secret": SECRET, "token_url": "http://idp.example/t"}
    with pytest.raises(ValueError, match="unencrypted") as caught:
        config(url="https://x.example", oauth=oauth)
    assert SECRET not in str(caught.value)
    loopback = {**oauth, "token_url": "http://127.0.0.1:9/t"}
    assert config(url="https://x.example", oauth=loopback).oauth is not None
    assert SECRET not in repr(config(url="https://x.example", oauth=loopback))


# -- the provider against the dev-server -----------------------------------------------------


async def test_one_token_for_many_callers_until_it_is_due(server: DevServer) -> None:
    now = [0.0]
    provider = TokenProvider(
        f"{server.url}/auth/realms/acme/protocol/openid-connect/token",
        CLIENT,
        SECRET,
        clock=lambda: now[0],
    )
    headers = await asyncio.gather(*(provider.authorization() for _ in range(20)))
    assert len(set(headers)) == 1 and headers[0].startswith("Bearer ")
    assert server.auth.issued == 1

    now[0] = 300 - 31  # a 300 s token is replaced 30 s before it expires
    assert await provider.authorization() == headers[0]
    now[0] = 300 - 29
    assert await provider.authorization() != headers[0]
    assert server.auth.issued == 2


async def test_a_refused_client_is_an_auth_failure_asked_again_only_after_a_backoff(
    server: DevServer,
) -> None:
    now = [0.0]
    provider = TokenProvider(
        f"{server.url}/auth/realms/acme/protocol/openid-connect/token",
        CLIENT,
        "wrong-secret",
        clock=lambda: now[0],
    )
    with pytest.raises(TokenRefused) as first:
        await provider.token()
    assert first.value.status == 401 and "invalid_client" in str(first.value)
    assert "wrong-secret" not in str(first.value)
    asked = len(server.requests)  # token requests are not Events requests
    with pytest.raises(TokenRefused):
        await provider.token()  # within the backoff: the same error, no new ask
    assert server.auth.issued == 0 and len(server.requests) == asked


# -- hostile token endpoints ---------------------------------------------------------------


@asynccontextmanager
async def serving(handler: Handler) -> AsyncIterator[str]:
    """The hostile token endpoint, at /token of a loopback server."""
    async with serve(handler) as base:
        yield f"{base}/token"


async def test_a_redirecting_token_endpoint_is_not_followed() -> None:
    followed: list[bool] = []

    async def handler(request: web.Request) -> web.StreamResponse:
        if request.path == "/elsewhere":
            followed.append(True)
        raise web.HTTPFound("/elsewhere")

    async with serving(handler) as url:
        with pytest.raises(TokenRefused, match="not followed"):
            await TokenProvider(url, CLIENT, SECRET).token()
    assert followed == []


@pytest.mark.parametrize(
    "answer",
    [
        web.Response(status=503, text="down"),
        web.Response(status=200, body=b"x" * (1024 * 1024)),
        web.Response(status=200, text='{"token_type": "Bearer"}'),
        web.Response(status=200, text='{"access_token": "a b", "expires_in": 60}'),
    ],
)
async def test_a_failing_or_nonsense_token_endpoint_is_retried_later(
    answer: web.Response,
) -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        return answer

    async with serving(handler) as url:
        with pytest.raises(TokenUnavailable) as caught:
            await TokenProvider(url, CLIENT, SECRET).token()
    assert caught.value.retryable


# -- one provider and one budget for the events client and setup ---------------------------


async def test_the_events_client_and_setup_share_one_token_and_one_budget(
    server: DevServer,
) -> None:
    polaris = oauth_config(server.url)
    access = Access()
    client = EventsClient(polaris, connections=1, credentials=access.credentials(polaris))
    async with client, PolarisApi.open(polaris, access) as api:
        answer = await client.post("logs", b'{"n":1}\n', gzip=False)
        assert answer.ok
        assert (await api.get_connection("logs")) is not None
    assert server.auth.issued == 1
    assert access.pacer(polaris) is access.pacer(oauth_config(server.url, "other-secret"))


async def test_setup_with_a_refused_client_says_so(server: DevServer) -> None:
    async with PolarisApi.open(oauth_config(server.url, "wrong-secret")) as api:
        with pytest.raises(errors.AuthenticationFailed, match="token endpoint refused"):
            await api.get_connection("logs")


async def test_setup_sends_again_once_when_its_token_expired(
    server: DevServer, clock: TestClock
) -> None:
    async with PolarisApi.open(oauth_config(server.url)) as api:
        assert await api.get_connection("logs") is not None
        server.auth.expire_tokens()
        assert await api.get_connection("logs") is not None
    assert server.auth.issued == 2
