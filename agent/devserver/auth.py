"""Who a request is: the dev-server's API keys and OAuth clients, as Polaris takes them.

- `Authorization: Basic ...` carries an API key, in any of the forms Imply's material sends:
  ``base64(KEY:)`` (RFC 7617, what the agent sends), the raw key (Imply's API-key examples)
  and ``KEY:`` (the reference page's Python example).
- `Authorization: Bearer TOKEN` carries an OAuth access token, and only one this server issued
  at its token endpoint (an API key is not a token); an expired one gets 401 ``token expired``.
- The token endpoint, ``POST /auth/realms/{org}/protocol/openid-connect/token``, is the
  client credentials grant as Imply's identity service (Keycloak) answers it: form-encoded
  ``grant_type=client_credentials``, the client id and secret in the form or as HTTP Basic;
  ``{"access_token", "expires_in", "token_type": "Bearer"}``, or 400/401 with an OAuth error.
"""

from __future__ import annotations

import base64
import binascii
import math
import secrets
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Final

TOKEN_PATH: Final = "/auth/realms/{org}/protocol/openid-connect/token"
DEFAULT_TOKEN_LIFETIME: Final = 300.0
"""Seconds a token lives: about five minutes, as Imply's do."""


@dataclass(frozen=True, slots=True)
class Identity:
    """An accepted caller: an API key, or the OAuth client a token was issued to."""

    kind: str  # "api_key" or "oauth"
    name: str  # the key itself (kept out of reprs and logs) or the client id

    def __repr__(self) -> str:
        return f"<Identity {self.kind}>"


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a request is not authenticated: the 401's message."""

    message: str


@dataclass(frozen=True, slots=True)
class TokenError(Exception):
    """An OAuth error answer of the token endpoint (RFC 6749 section 5.2)."""

    status: int
    error: str
    description: str

    def document(self) -> dict[str, str]:
        return {"error": self.error, "error_description": self.description}


class Authenticator:
    """The dev-server's accepted API keys and OAuth clients, and the tokens it issued."""

    def __init__(
        self,
        api_keys: Collection[str],
        oauth_clients: Mapping[str, str] | None = None,
        *,
        token_lifetime: float = DEFAULT_TOKEN_LIFETIME,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.api_keys = frozenset(api_keys)
        self.oauth_clients = dict(oauth_clients or {})
        self.token_lifetime = token_lifetime
        self._clock = clock
        self._tokens: dict[str, tuple[str, float]] = {}  # token -> (client id, expires at)
        self.issued = 0

    def __repr__(self) -> str:
        return (
            f"<Authenticator keys={len(self.api_keys)} clients={len(self.oauth_clients)}"
            f" tokens={len(self._tokens)} lifetime={self.token_lifetime}s>"
        )

    # -- requests ----------------------------------------------------------------------

    def identify(self, header: str) -> Identity | Refusal:
        scheme, _, value = header.strip().partition(" ")
        value = value.strip()
        if scheme.lower() == "bearer":
            return self._bearer(value)
        if scheme.lower() == "basic":
            key = self._basic(value)
            if key is not None:
                return Identity("api_key", key)
            return Refusal("invalid API key")
        return Refusal(
            "missing credentials: use HTTP Basic auth with the API key as user name,"
            " or Bearer with an OAuth token"
        )

    def _basic(self, value: str) -> str | None:
        """The API key in `value`: base64(KEY:), the raw KEY, or KEY: (Imply's forms)."""
        candidates = [value, value.removesuffix(":")]
        try:
            decoded = base64.b64decode(value, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            decoded = None
        if decoded is not None:
            candidates.insert(0, decoded.partition(":")[0])
        return next((c for c in candidates if c and c in self.api_keys), None)

    def _bearer(self, token: str) -> Identity | Refusal:
        found = self._tokens.get(token)
        if found is None:
            return Refusal(
                "invalid token: Bearer takes an OAuth access token from the token endpoint"
                " (an API key goes in HTTP Basic auth)"
            )
        client, expires_at = found
        if self._clock() >= expires_at:
            return Refusal("token expired")
        return Identity("oauth", client)

    # -- the token endpoint ------------------------------------------------------------

    def issue(self, form: Mapping[str, str], authorization: str = "") -> dict[str, object]:
        """The token endpoint's answer to `form`; raises `TokenError`."""
        client_id, secret = form.get("client_id", ""), form.get("client_secret", "")
        scheme, _, value = authorization.strip().partition(" ")
        if scheme.lower() == "basic" and not secret:  # client_secret_basic
            try:
                decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError, ValueError):
                decoded = ""
            client_id, _, secret = decoded.partition(":")
        grant = form.get("grant_type")
        if grant is None:
            raise TokenError(400, "invalid_request", "Missing form parameter: grant_type")
        if grant != "client_credentials":
            raise TokenError(400, "unsupported_grant_type", f"Unsupported grant_type {grant!r}")
        expected = self.oauth_clients.get(client_id)
        if expected is None or not secrets.compare_digest(expected, secret):
            raise TokenError(401, "invalid_client", "Invalid client or Invalid client credentials")
        self._forget_expired()
        token = secrets.token_urlsafe(32)
        self._tokens[token] = (client_id, self._clock() + self.token_lifetime)
        self.issued += 1
        return {
            "access_token": token,
            "expires_in": max(1, math.ceil(self.token_lifetime)),
            "refresh_expires_in": 0,
            "token_type": "Bearer",
            "not-before-policy": 0,
            "scope": "profile email",
        }

    def expire_tokens(self) -> None:
        """Every token issued so far expires now (a test's "the token ran out mid-run")."""
        now = self._clock()
        self._tokens = {t: (c, min(at, now)) for t, (c, at) in self._tokens.items()}

    def _forget_expired(self) -> None:
        """Tokens long expired are dropped (an expired one is still told apart a while)."""
        horizon = self._clock() - max(self.token_lifetime, 60.0)
        self._tokens = {t: v for t, v in self._tokens.items() if v[1] > horizon}
