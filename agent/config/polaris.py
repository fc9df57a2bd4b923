"""`[polaris]`: where events go and how to authenticate, refused when it would leak the key."""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from urllib.parse import SplitResult, unquote, urlsplit

from pydantic import (
    SecretStr,
    ValidationInfo,
    field_validator,
)

from agent.schema import Duration, Section, no_nul

_CONNECTION_NAME = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_PATH_SEGMENT = re.compile(r"^[A-Za-z0-9._-]{1,128}$")
MIN_REQUEST_TIMEOUT = 0.1
"""100 ms: a shorter request timeout fails every request."""


class PolarisConfig(Section):
    """Where events go and how to authenticate (SPEC: "The Polaris facts")."""

    # First, so that the url's validator sees it: http:// to a host other than loopback sends
    # the key in clear, and is refused unless this says it is meant.
    allow_insecure_http: bool = False
    url: str
    project_id: str
    connection: str
    api_key: SecretStr
    tls_ca_file: Path | None = None
    tls_verify: bool = True
    request_timeout: Duration = 30.0

    @field_validator("url")
    @classmethod
    def _http_url(cls, url: str, info: ValidationInfo) -> str:
        # No message here quotes the URL: it may hold credentials.
        if not re.match(r"^https?://[^/\s]+", url):
            raise ValueError("must be an http:// or https:// URL")
        parts = _split_url(url)
        if parts.username is not None or parts.password is not None or "@" in parts.netloc:
            raise ValueError(
                "must not hold credentials (user:password@host): the key belongs in"
                " polaris.api_key, and the URL is printed in logs"
            )
        if "?" in url or "#" in url:
            raise ValueError("must not have a ?query or #fragment: the events path is appended")
        if any(segment in (".", "..") for segment in unquote(parts.path).split("/")):
            raise ValueError("must not have '.' or '..' path segments")
        host = parts.hostname or ""
        insecure_ok = info.data.get("allow_insecure_http") is True
        if parts.scheme == "http" and not insecure_ok and not loopback(host):
            raise ValueError(
                f"http:// to {host} would send the API key and the events unencrypted;"
                " use https://, or set polaris.allow_insecure_http = true"
            )
        return url.rstrip("/")

    @field_validator("api_key")
    @classmethod
    def _usable_key(cls, key: SecretStr) -> SecretStr:
        # HTTP Basic auth sends "key:" (RFC 7617): a ':' would split it, and a stray newline
        # or non-ASCII character fails at the first request. Never quote the key.
        value = key.get_secret_value()
        if not value:
            raise ValueError("must not be empty")
        if ":" in value:
            raise ValueError("must not contain ':' (HTTP Basic authentication cannot carry it)")
        if not all("!" <= c <= "~" for c in value):
            raise ValueError(
                "must be printable ASCII without spaces or control characters"
                " (a trailing newline from the secret's file?)"
            )
        return key

    @field_validator("connection")
    @classmethod
    def _connection_name(cls, name: str) -> str:
        return valid_connection(name)

    @field_validator("project_id")
    @classmethod
    def _project_segment(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        if not _PATH_SEGMENT.match(value) or not value.strip("."):
            raise ValueError(
                "letters, digits, '.', '_' and '-' only, at most 128, not '.' or '..'"
                " (it is a segment of the events URL's path)"
            )
        return value

    @field_validator("tls_ca_file")
    @classmethod
    def _ca_path(cls, path: Path | None) -> Path | None:
        if path is not None:
            no_nul(str(path))
        return path

    @field_validator("request_timeout")
    @classmethod
    def _usable_timeout(cls, seconds: float) -> float:
        if seconds < MIN_REQUEST_TIMEOUT:
            raise ValueError(f"must be at least {MIN_REQUEST_TIMEOUT * 1000:.0f}ms")
        return seconds

    @property
    def host(self) -> str:
        return _split_url(self.url).hostname or ""

    def events_url(self, connection: str | None = None) -> str:
        return f"{self.url}/v1/projects/{self.project_id}/events/{connection or self.connection}"


def _split_url(url: str) -> SplitResult:
    """`urlsplit`, with a bad port or bracket turned into a message that does not quote it."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise ValueError("has an invalid host or port") from None
    if not parts.hostname or port == 0 or any(c in url for c in "\\ \t\r\n"):
        raise ValueError("has an invalid host or port")
    return parts


def loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 or ``localhost``: traffic that never leaves the machine. Names are not
    resolved: that would make validation depend on DNS."""
    if host.lower().rstrip(".") == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def valid_connection(name: str) -> str:
    if not _CONNECTION_NAME.match(name) or not name.strip("."):
        raise ValueError(
            "letters, digits, '.', '_' and '-' only, at most 64 characters, not '.' or '..'"
        )
    return name
