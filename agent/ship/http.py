"""The one place that speaks HTTP to the Events API; aiohttp's exceptions end here.

`EventsClient` is one implementation of `ship.attempt.Poster`; `ship.fake.FakeEventsClient`
is the in-process one the unit tests use."""

from __future__ import annotations

import asyncio
import ssl
import urllib.request
from types import TracebackType
from typing import Final
from urllib.parse import urlsplit

import aiohttp
import structlog
from yarl import URL

from agent.config import PolarisConfig
from agent.ship.auth import ApiKey, Credentials, says_token_expired
from agent.ship.client import Answer
from agent.ship.errors import TransportError
from agent.ship.ratelimit import RateLimitInfo, header_seconds

log = structlog.get_logger("agent.http")

MAX_ERROR_BODY: Final = 4096
"""Bytes of a non-2xx answer's body that are read (for the log line and the dead letter);
the rest is never read: a 100 MB error page costs 4 KiB, and the connection is closed."""

_RATE_HEADERS = (
    "ratelimit-limit",
    "ratelimit-remaining",
    "ratelimit-reset",
    "x-ratelimit-limit-minute",
    "x-ratelimit-remaining-minute",
    "retry-after",
)


class EventsClient:
    """One aiohttp session for the life of the agent; posts payloads, returns or raises."""

    def __init__(
        self,
        polaris: PolarisConfig,
        *,
        connections: int,
        credentials: Credentials | None = None,
    ) -> None:
        self._polaris = polaris
        self._connections = connections
        if credentials is None:  # the API key; OAuth comes from `ship.oauth.Access`
            assert polaris.api_key is not None, "an OAuth config needs its credentials"
            credentials = ApiKey(polaris.api_key)
        self._credentials = credentials
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> EventsClient:
        ssl_context: ssl.SSLContext | bool = True
        if self._polaris.tls_ca_file is not None:
            ssl_context = ssl.create_default_context(cafile=str(self._polaris.tls_ca_file))
        if not self._polaris.tls_verify:
            ssl_context = False
            log.warning("tls_verification_disabled", url=self._polaris.url)
        trust_env = use_env_proxy(self._polaris.url)
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=self._connections, ssl=ssl_context),
            timeout=aiohttp.ClientTimeout(total=self._polaris.request_timeout),
            headers={"Content-Type": "application/json"},
            raise_for_status=False,
            trust_env=trust_env,
        )
        return self

    async def __aexit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def aclose(self) -> None:
        """Close the session (requests still out on it fail as transport errors, retried)."""
        await self.__aexit__(None, None, None)

    async def post(self, connection: str, body: bytes, *, gzip: bool) -> Answer:
        """Post one payload and return Polaris' answer; TransportError when there is none
        (or no token: `TokenUnavailable`), `TokenRefused` when the OAuth client is refused."""
        assert self._session is not None, "use EventsClient as an async context manager"
        authorization = await self._credentials.authorization()  # per request: tokens expire
        headers = {"Authorization": authorization}
        if gzip:
            headers["Content-Encoding"] = "gzip"
        url = self._polaris.events_url(connection)
        try:
            # Never follow a redirect: aiohttp would re-send the session's key to whatever
            # host the Location names, and turn a 301/302/303 POST into a bodiless GET.
            async with self._session.post(
                url, data=body, headers=headers, allow_redirects=False
            ) as response:
                status = response.status
                text = ""
                if status >= 300:  # only the start of an error body; the rest is not read
                    head = await response.content.read(MAX_ERROR_BODY)
                    text = head.decode("utf-8", errors="replace")
                raw = {h: response.headers[h] for h in _RATE_HEADERS if h in response.headers}
                location = response.headers.get("Location", "")
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise TransportError(_describe(exc)) from None
        rate = RateLimitInfo.from_headers(raw)
        host = location_host(url, location) if 300 <= status < 400 else ""
        message = _message(text)
        expired = says_token_expired(status, message) and self._credentials.expired(authorization)
        return Answer(status, rate, _retry_after(raw, rate), message, host, expired)


def _retry_after(raw: dict[str, str], rate: RateLimitInfo) -> float | None:
    """Retry-After when it is a usable wait, else RateLimit-Reset; both clamped."""
    seconds = header_seconds(raw.get("retry-after"))
    return seconds if seconds is not None else rate.reset_secs


def location_host(url: str, location: str) -> str:
    """The host (and port) a redirect points at, for one error line: never the path or query,
    which may carry tokens. Empty when the Location is missing or unparsable."""
    try:
        target = URL(url).join(URL(location[:2048]))
    except (ValueError, TypeError):
        return ""
    host = target.host or ""
    return f"{host}:{target.port}" if host and target.port else host


def use_env_proxy(url: str) -> bool:
    """Whether to honour HTTPS_PROXY/HTTP_PROXY/NO_PROXY for `url` (as Fluent Bit and Vector
    do): only for https, where the proxy sees a CONNECT tunnel and never the key. For an
    http:// URL (loopback only) a proxy would carry the key in clear, so none is used and a
    set proxy variable is said to be ignored. Logs once, naming the proxy host only."""
    parts = urlsplit(url)
    proxies = urllib.request.getproxies()
    proxy = proxies.get(parts.scheme)
    if not proxy or urllib.request.proxy_bypass(parts.hostname or ""):
        return False  # no proxy, or NO_PROXY names this host
    proxy_host = urlsplit(proxy if "://" in proxy else f"http://{proxy}").hostname or "?"
    if parts.scheme != "https":
        log.warning(
            "proxy_ignored", proxy_host=proxy_host, reason="the key would cross the proxy in clear"
        )
        return False
    log.info("using_proxy", proxy_host=proxy_host, url_host=parts.hostname)
    return True


def _message(text: str) -> str:
    return " ".join(text.split())[:300]


def _describe(exc: BaseException) -> str:
    if isinstance(exc, asyncio.TimeoutError):
        return "request timed out"
    return f"{type(exc).__name__}: {exc}"[:300]
