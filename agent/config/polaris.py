"""`[polaris]`: where events go and how to authenticate, refused when it would leak the key."""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Any
from urllib.parse import SplitResult, unquote, urlsplit

from pydantic import (
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from agent.config.problems import at
from agent.schema import Duration, Section, no_nul

_CONNECTION_NAME = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_PATH_SEGMENT = re.compile(r"^[A-Za-z0-9._-]{1,128}$")
MIN_REQUEST_TIMEOUT = 0.1
"""100 ms: a shorter request timeout fails every request."""
_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
"""One DNS label (RFC 1123), lower case: what each of organization, region and cloud is in
``https://ORG.REGION.CLOUD.api.imply.io``."""
_IMPLY_API_HOST = re.compile(r"^([a-z0-9-]+)\.[a-z0-9-]+\.[a-z0-9-]+\.api\.imply\.io$")
_PARTS_MISSING = "https://parts.missing.api.imply.io"  # stands in until `_parts` says which
IMPLY_TOKEN_URL = "https://id.imply.io/auth/realms/{organization}/protocol/openid-connect/token"
"""Where Imply's OAuth clients get their tokens (client credentials grant)."""


def regional_url(organization: str, region: str, cloud: str) -> str:
    """The Polaris API URL of an organization: ``https://ORG.REGION.CLOUD.api.imply.io``."""
    return f"https://{organization}.{region}.{cloud}.api.imply.io"


def require_printable(secret: str) -> None:
    """A key or client secret must be printable ASCII without spaces: anything else cannot go
    in an HTTP header, and is most often a trailing newline from the secret's file. The
    message never quotes the value."""
    if not all("!" <= c <= "~" for c in secret):
        raise ValueError(
            "must be printable ASCII without spaces or control characters"
            " (a trailing newline from the secret's file?)"
        )


class OAuthConfig(Section):
    """`[polaris.oauth]`: an OAuth client of the organization (client credentials grant).

    The secret is a secret like the API key: never logged or printed. ``token_url`` defaults
    to Imply's, built from the organization (see `PolarisConfig`)."""

    client_id: str
    client_secret: SecretStr
    token_url: str | None = None

    @field_validator("client_id")
    @classmethod
    def _client_id(cls, value: str) -> str:
        if not value or not all("!" <= c <= "~" for c in value):
            raise ValueError("must be printable ASCII without spaces, not empty")
        return value

    @field_validator("client_secret")
    @classmethod
    def _client_secret(cls, secret: SecretStr) -> SecretStr:
        value = secret.get_secret_value()  # never quoted
        if not value:
            raise ValueError("must not be empty")
        require_printable(value)
        return secret

    @field_validator("token_url")
    @classmethod
    def _token_url(cls, url: str | None) -> str | None:
        # https only (the client secret crosses it), unless the token endpoint is this machine.
        if url is None:
            return None
        if not re.match(r"^https?://[^/\s]+", url):
            raise ValueError("must be an https:// URL")
        parts = _split_url(url)
        if parts.username is not None or parts.password is not None or "@" in parts.netloc:
            raise ValueError("must not hold credentials (user:password@host)")
        if "#" in url:
            raise ValueError("must not have a #fragment")
        if parts.scheme != "https" and not loopback(parts.hostname or ""):
            raise ValueError(
                f"http:// to {parts.hostname} would send the client secret unencrypted;"
                " use https:// (http is allowed to loopback only)"
            )
        return url


class PolarisConfig(Section):
    """Where events go and how to authenticate (SPEC: "The Polaris facts")."""

    # First, so that the url's validator sees it: http:// to a host other than loopback sends
    # the key in clear, and is refused unless this says it is meant.
    allow_insecure_http: bool = False
    url: str  # given, or built from organization, region and cloud (see `_regional`)
    organization: str | None = None
    region: str | None = None
    cloud: str | None = None
    project_id: str
    connection: str
    api_key: SecretStr | None = None  # exactly one of api_key and oauth
    oauth: OAuthConfig | None = None
    tls_ca_file: Path | None = None
    tls_verify: bool = True
    request_timeout: Duration = 30.0

    @model_validator(mode="before")
    @classmethod
    def _regional(cls, data: Any) -> Any:
        """`url`, or the three parts it is built from (checked by `_parts`): not both."""
        if not isinstance(data, dict):
            return data
        parts = [data.get(k) for k in ("organization", "region", "cloud")]
        if not any(p is not None for p in parts):
            return data  # no url either: pydantic says polaris.url is required
        if "url" in data:
            raise ValueError(
                "set either polaris.url or polaris.organization, region and cloud, not both"
            )
        if all(isinstance(p, str) and _LABEL.match(p) for p in parts):
            return {**data, "url": regional_url(*(str(p) for p in parts))}
        return {**data, "url": _PARTS_MISSING}  # what is wrong is said at each part

    @field_validator("organization", "region", "cloud")
    @classmethod
    def _label(cls, value: str | None) -> str | None:
        if value is not None and not _LABEL.match(value):
            raise ValueError(
                "must be one host name label: lower-case letters, digits and '-', 1 to 63,"
                " not starting or ending with '-'"
            )
        return value

    @model_validator(mode="after")
    def _parts(self) -> PolarisConfig:
        if self.url == _PARTS_MISSING:
            missing = [k for k in ("organization", "region", "cloud") if getattr(self, k) is None]
            raise ValueError(at(*((k, "must be set with the other two") for k in missing)))
        return self

    @model_validator(mode="after")
    def _one_auth(self) -> PolarisConfig:
        """Exactly one of api_key and [polaris.oauth]; the OAuth token URL resolved."""
        if (self.api_key is None) == (self.oauth is None):
            raise ValueError(
                "set exactly one of polaris.api_key and [polaris.oauth] (client_id, client_secret)"
            )
        if self.oauth is not None and self.oauth.token_url is None:
            organization = self.organization or _imply_organization(self.host)
            if organization is None:
                raise ValueError(
                    at(
                        (
                            "oauth.token_url",
                            "must be set: it is built from polaris.organization, which is"
                            " not set and not in polaris.url's host",
                        )
                    )
                )
            token_url = IMPLY_TOKEN_URL.format(organization=organization)
            object.__setattr__(  # the section is frozen; this completes it while validating
                self, "oauth", self.oauth.model_copy(update={"token_url": token_url})
            )
        return self

    @property
    def secrets(self) -> tuple[str, ...]:
        """The values no output may show: the API key or the OAuth client secret."""
        found = [s.get_secret_value() for s in (self.api_key,) if s is not None]
        if self.oauth is not None:
            found.append(self.oauth.client_secret.get_secret_value())
        return tuple(found)

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
    def _usable_key(cls, key: SecretStr | None) -> SecretStr | None:
        # HTTP Basic auth sends "key:" (RFC 7617): a ':' would split it, and a stray newline
        # or non-ASCII character fails at the first request. Never quote the key.
        if key is None:
            return None
        value = key.get_secret_value()
        if not value:
            raise ValueError("must not be empty")
        if ":" in value:
            raise ValueError("must not contain ':' (HTTP Basic authentication cannot carry it)")
        require_printable(value)
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


def _imply_organization(host: str) -> str | None:
    """The organization in an Imply API host ``ORG.REGION.CLOUD.api.imply.io``, else None."""
    match = _IMPLY_API_HOST.match(host.lower())
    return match.group(1) if match else None


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
