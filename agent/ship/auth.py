"""The Authorization header for Polaris, built in one place for both HTTP clients (the
events client in `ship/http.py` and the management client in `polaris/api.py`).

Two kinds of credentials stand behind one small Protocol: an API key (HTTP Basic, the same
header forever) and an OAuth client (`ship/oauth.py`: a Bearer token fetched before the first
request and refreshed before it expires). The header is asked for per request and never
logged.
"""

from __future__ import annotations

import base64
import re
from typing import Final, Protocol

from pydantic import SecretStr

_TOKEN_EXPIRED: Final = re.compile(r"(?i)\btoken\b.{0,40}\bexpired\b|\bexpired\b.{0,40}\btoken\b")


class Credentials(Protocol):
    """What a client asks for the Authorization header of its next request."""

    async def authorization(self) -> str:
        """The header's value. Raises `ship.oauth.TokenRefused` (the client is refused: an
        auth failure) or `ship.oauth.TokenUnavailable` (no token this time: retried)."""
        ...

    def expired(self, authorization: str) -> bool:
        """Polaris answered 401 "token expired" to a request sent with `authorization`:
        forget that token. True when asking again can help (a token, not an API key)."""
        ...


class ApiKey:
    """Polaris' API key auth: the same header for every request."""

    def __init__(self, api_key: str | SecretStr) -> None:
        self._header = basic_auth(api_key)

    def __repr__(self) -> str:
        return "<ApiKey>"

    async def authorization(self) -> str:
        return self._header

    def expired(self, authorization: str) -> bool:
        return False


def basic_auth(api_key: str | SecretStr) -> str:
    """Polaris' API key auth: HTTP Basic, the key as user name, an empty password.

    Built by hand (aiohttp deprecates `BasicAuth`, and its session auth is what redirects
    re-apply) and sent as a plain header, only to `polaris.url`: neither client follows
    redirects, so the header cannot leak to another host."""
    key = api_key.get_secret_value() if isinstance(api_key, SecretStr) else api_key
    return "Basic " + base64.b64encode(f"{key}:".encode()).decode("ascii")


def says_token_expired(status: int, message: str) -> bool:
    """A 401 whose message says the bearer token expired (Polaris: "token expired")."""
    return status == 401 and bool(_TOKEN_EXPIRED.search(message))
