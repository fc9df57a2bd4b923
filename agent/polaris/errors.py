"""What can go wrong talking to the Polaris management API, as types.

aiohttp's exceptions are translated into these in exactly one place (``api.py``), so the
provisioning code and the CLI never see a library exception, and every message here is one
line an operator can act on. No message ever carries the API key: the client builds them from
status codes, URLs and Polaris' own error text, and scrubs the key from the latter anyway.
"""

from __future__ import annotations


class PolarisApiError(Exception):
    """Base of every management API failure; ``str()`` is the one-line message to print."""


class AuthenticationFailed(PolarisApiError):
    """401: the key is wrong, revoked, or not a key for this organization; or the OAuth
    token endpoint refused the client (`why` says so)."""

    def __init__(self, why: str = "check polaris.api_key") -> None:
        super().__init__(f"authentication failed: {why}")


class PermissionDenied(PolarisApiError):
    """403: the key is valid but lacks the permissions `setup` needs."""

    def __init__(self) -> None:
        super().__init__(
            "permission denied: the API key needs ManageConnections, ManageTables"
            " and ManageIngestionJobs"
        )


class RequestRejected(PolarisApiError):
    """A 4xx other than 401/403: Polaris refused the request and said why."""

    def __init__(self, status: int, method: str, url: str, polaris_message: str) -> None:
        self.status = status
        self.polaris_message = polaris_message
        super().__init__(f"Polaris rejected {method} {url} ({status}): {polaris_message}")


class NotFound(RequestRejected):
    """404: the thing (or the project) does not exist."""


class Conflict(RequestRejected):
    """409: the thing exists already."""


class ServerError(PolarisApiError):
    """5xx: Polaris failed; retrying later may help."""

    def __init__(self, status: int, method: str, url: str, polaris_message: str) -> None:
        self.status = status
        super().__init__(f"Polaris failed on {method} {url} ({status}): {polaris_message}")


class Unreachable(PolarisApiError):
    """No HTTP answer at all: connection refused, DNS failure, timeout, broken connection."""

    def __init__(self, url: str, reason: str) -> None:
        self.url = url
        super().__init__(f"cannot reach Polaris at {url}: {reason}")


class TlsFailure(Unreachable):
    """The TLS handshake failed, most often an unverifiable certificate."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(
            url,
            f"TLS error: {reason} (a private CA goes in polaris.tls_ca_file)",
        )


class UnexpectedAnswer(PolarisApiError):
    """A 2xx whose body is not the JSON shape the reference page documents."""

    def __init__(self, request: str, what: str) -> None:
        super().__init__(f"unexpected answer from Polaris to {request}: {what}")


class ConnectionTypeMismatch(PolarisApiError):
    """The connection name is taken by a connection of another type (e.g. kafka)."""

    def __init__(self, name: str, actual: str, expected: str) -> None:
        super().__init__(
            f"connection {name} exists but is of type {actual}, not {expected}:"
            " choose another polaris.connection"
        )
