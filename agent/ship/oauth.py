"""OAuth client credentials for Polaris: a Bearer token, fetched before the first request,
refreshed before it expires and once when Polaris says it expired; and `Access`, which hands
every client of one organization the same credentials and the same rate-limit budget.

The token endpoint (Imply's is ``https://id.imply.io/auth/realms/{ORG}/protocol/openid-
connect/token``) takes a form-encoded ``grant_type=client_credentials`` with the client id
and secret and answers ``{"access_token", "expires_in", "token_type"}``. Tokens live a few
minutes. What can go wrong there is classified like an Events answer:

- 400/401/403 (``invalid_client``, ``unauthorized_client``...): `TokenRefused`, an auth
  failure: the data is kept, /readyz says not ready, the agent keeps asking (slowly);
- no answer, 5xx, 429, a body that is not a token: `TokenUnavailable`, a transport error,
  retried with the batch's backoff.

After a failure the endpoint is asked again only after a backoff of its own (1 s doubling to
`MAX_TOKEN_BACKOFF`), so a pool of workers does not hammer it: requests in between get the
same error at once. Hardening as for the Events API: no redirect is followed (the secret
would go with it), bodies are read up to `MAX_TOKEN_BODY`, the URL is https unless loopback
(checked by the config). Neither the secret nor a token is ever logged or put in an error.

A session is opened per token fetch, not kept: one request every few minutes, to another
host than Polaris, with nothing to close when the agent replaces its clients.
"""

from __future__ import annotations

import asyncio
import math
import ssl
import time
from collections.abc import Callable
from typing import Final

import aiohttp
import orjson
import structlog

from agent.config import PolarisConfig
from agent.ship.auth import ApiKey, Credentials
from agent.ship.errors import AuthFailed, TransportError
from agent.ship.http import location_host, use_env_proxy
from agent.ship.ratelimit import Pacer

log = structlog.get_logger("agent.oauth")

MAX_TOKEN_BODY: Final = 64 * 1024
"""Bytes of a token endpoint's answer that are read; a larger answer is not a token."""
MAX_TOKEN_BACKOFF: Final = 30.0
"""The longest pause between two asks of a failing token endpoint, in seconds."""
REFRESH_MARGIN: Final = 30.0
"""A token is replaced this long before it expires (or at 80% of its life when shorter)."""
DEFAULT_LIFETIME: Final = 300.0
"""A token whose answer names no usable ``expires_in`` is taken to live this long."""


class TokenRefused(AuthFailed):
    """The token endpoint refused the client (wrong id or secret, client disabled)."""

    reason = "auth"

    def __init__(self, status: int, message: str) -> None:
        super().__init__(status, f"the OAuth token endpoint refused the client: {message}")


class TokenUnavailable(TransportError):
    """No token this time (the endpoint is unreachable, failing, or answered nonsense)."""


class TokenProvider:
    """One OAuth client's current token, shared by every request of the process."""

    def __init__(
        self,
        token_url: str,
        client_id: str,
        client_secret: str,
        *,
        ssl_setting: ssl.SSLContext | bool = True,
        timeout: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.token_url = token_url
        self.client_id = client_id
        self._secret = client_secret
        self._ssl = ssl_setting
        self._timeout = timeout
        self._clock = clock
        self._token: str | None = None
        self._refresh_at = 0.0  # when the token is replaced (before it expires)
        self._failure: TokenRefused | TokenUnavailable | None = None
        self._retry_at = 0.0  # while failing: no new ask before this
        self._backoff = 0.0
        self._lock = asyncio.Lock()
        self.fetched = 0  # tokens obtained (for tests and /status)

    def __repr__(self) -> str:
        state = "failing" if self._failure else ("token" if self._token else "none")
        return f"<TokenProvider client={self.client_id} {state} fetched={self.fetched}>"

    async def authorization(self) -> str:
        return f"Bearer {await self.token()}"

    def expired(self, authorization: str) -> bool:
        """Polaris refused `authorization` as expired: the next request gets a new token."""
        if self._token is not None and authorization == f"Bearer {self._token}":
            self._token = None
            log.info("oauth_token_expired", client_id=self.client_id)
        return True

    async def token(self) -> str:
        """The current token; one fetch at a time, the others wait for it."""
        token = self._current()
        if token is not None:
            return token
        async with self._lock:
            token = self._current()
            if token is not None:
                return token
            if self._failure is not None and self._clock() < self._retry_at:
                raise self._failure
            try:
                return await self._fetch()
            except (TokenRefused, TokenUnavailable) as exc:
                self._failed(exc)
                raise

    def _current(self) -> str | None:
        if self._token is not None and self._clock() < self._refresh_at:
            return self._token
        return None

    def _failed(self, exc: TokenRefused | TokenUnavailable) -> None:
        new = self._failure is None or str(self._failure) != str(exc)
        self._failure = exc
        self._backoff = min(max(self._backoff * 2, 1.0), MAX_TOKEN_BACKOFF)
        self._retry_at = self._clock() + self._backoff
        if new:
            log.error(
                "oauth_token_failed",
                client_id=self.client_id,
                error=str(exc),
                retry_in=self._backoff,
            )

    async def _fetch(self) -> str:
        started = self._clock()
        form = {
            "grant_type": "client_credentials",
            "client_id": self.client_id,
            "client_secret": self._secret,
        }
        try:
            async with (
                aiohttp.ClientSession(
                    connector=aiohttp.TCPConnector(ssl=self._ssl),
                    timeout=aiohttp.ClientTimeout(total=self._timeout),
                    trust_env=use_env_proxy(self.token_url),
                ) as session,
                session.post(
                    self.token_url,
                    data=form,
                    headers={"Accept": "application/json"},
                    allow_redirects=False,
                ) as response,
            ):
                status = response.status
                body = await response.content.read(MAX_TOKEN_BODY + 1)
                location = response.headers.get("Location", "")
        except TimeoutError:
            raise TokenUnavailable(f"token endpoint: no answer within {self._timeout}s") from None
        except (aiohttp.ClientError, OSError) as exc:
            raise TokenUnavailable(
                self._scrub(f"token endpoint: {type(exc).__name__}: {exc}")[:300]
            ) from None
        if 300 <= status < 400:
            host = location_host(self.token_url, location) or "nowhere usable"
            raise TokenRefused(status, f"redirect to {host}: not followed; check token_url")
        if status in (400, 401, 403):
            raise TokenRefused(status, self._message(body) or f"HTTP {status}")
        if not 200 <= status < 300:
            raise TokenUnavailable(f"token endpoint: HTTP {status}: {self._message(body)}")
        token, lifetime = self._parse(body)
        self._token = token
        self._refresh_at = started + lifetime - min(REFRESH_MARGIN, lifetime * 0.2)
        self._failure = None
        self._backoff = 0.0
        self.fetched += 1
        log.debug("oauth_token_fetched", client_id=self.client_id, expires_in=lifetime)
        return token

    def _parse(self, body: bytes) -> tuple[str, float]:
        if len(body) > MAX_TOKEN_BODY:
            raise TokenUnavailable(f"token endpoint: answer larger than {MAX_TOKEN_BODY} bytes")
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise TokenUnavailable("token endpoint: the answer is not JSON") from None
        token = data.get("access_token") if isinstance(data, dict) else None
        if not isinstance(token, str) or not token or not all("!" <= c <= "~" for c in token):
            raise TokenUnavailable("token endpoint: the answer holds no usable access_token")
        token_type = data.get("token_type", "Bearer")
        if not isinstance(token_type, str) or token_type.lower() != "bearer":
            raise TokenUnavailable("token endpoint: the token is not a Bearer token")
        lifetime = data.get("expires_in")
        if (
            not isinstance(lifetime, int | float)
            or isinstance(lifetime, bool)
            or not math.isfinite(lifetime)
            or lifetime <= 0
        ):
            lifetime = DEFAULT_LIFETIME
        return token, float(min(lifetime, 24 * 3600))

    def _message(self, body: bytes) -> str:
        """The OAuth error (``error_description`` or ``error``) on one line, scrubbed."""
        text = body[:4096].decode("utf-8", errors="replace")
        try:
            data = orjson.loads(text)
        except orjson.JSONDecodeError:
            data = None
        if isinstance(data, dict):
            parts = [data.get(k) for k in ("error", "error_description")]
            found = [p for p in parts if isinstance(p, str)]
            if found:
                text = ": ".join(found)
        return self._scrub(" ".join(text.split()))[:300]

    def _scrub(self, text: str) -> str:
        return text.replace(self._secret, "[redacted]") if self._secret else text


def _ssl_setting(polaris: PolarisConfig) -> ssl.SSLContext | bool:
    if not polaris.tls_verify:
        return False
    if polaris.tls_ca_file is None:
        return True
    try:
        return ssl.create_default_context(cafile=str(polaris.tls_ca_file))
    except (OSError, ssl.SSLError):
        return True  # `check` and `run` report the CA file; the system store still applies


class Access:
    """What every client of one process shares per Polaris organization: the credentials
    (one token provider per OAuth client, so the events client and `setup` ask for one token)
    and the rate-limit budget (one `Pacer` per `polaris.url` host: Polaris counts
    `RateLimit-*` per organization, across connections, senders and management calls)."""

    def __init__(self) -> None:
        self._pacers: dict[str, Pacer] = {}
        self._credentials: dict[tuple[str, ...], Credentials] = {}

    def __repr__(self) -> str:
        return f"<Access hosts={sorted(self._pacers)} credentials={len(self._credentials)}>"

    def pacer(self, polaris: PolarisConfig) -> Pacer:
        host = polaris.host.lower()
        found = self._pacers.get(host)
        if found is None:
            found = self._pacers[host] = Pacer()
        return found

    def credentials(self, polaris: PolarisConfig) -> Credentials:
        """The API key, or the token provider of `[polaris.oauth]` (the same one for the same
        client, token URL and secret: a reload that keeps them keeps the token)."""
        oauth = polaris.oauth
        if oauth is None:
            assert polaris.api_key is not None  # the config holds exactly one of the two
            return ApiKey(polaris.api_key)
        secret = oauth.client_secret.get_secret_value()
        assert oauth.token_url is not None  # resolved by the config
        key = (oauth.token_url, oauth.client_id, secret)
        found = self._credentials.get(key)
        if found is None:
            found = self._credentials[key] = TokenProvider(
                oauth.token_url,
                oauth.client_id,
                secret,
                ssl_setting=_ssl_setting(polaris),
                timeout=polaris.request_timeout,
            )
        return found
