"""A thin, typed client for the Polaris management API: connections and jobs.

Shapes come from the Polaris "Push event data by API" page (shared/reference). The client does
HTTP and JSON only; deciding what to create or compare is ``provision.py``'s job. It holds one
``aiohttp.ClientSession`` for its whole life, and it is the only module that sees aiohttp's
exceptions: each becomes one of the types in ``errors.py``.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import aiohttp
import orjson

from agent import __version__
from agent.config import PolarisConfig
from agent.polaris import errors
from agent.ship.auth import ApiKey, Credentials, says_token_expired
from agent.ship.auth import basic_auth as basic_auth  # re-exported: setup's test kit uses it
from agent.ship.http import location_host, use_env_proxy
from agent.ship.oauth import Access, TokenRefused, TokenUnavailable
from agent.ship.ratelimit import Pacer, RateLimitInfo, header_seconds

JsonObject = dict[str, Any]

_MAX_MESSAGE_CHARS = 400
_MAX_ERROR_BODY = 4096
"""Bytes of a non-2xx body read for its message; the rest is never read."""
_MAX_ANSWER_BODY = 8 * 1024 * 1024
"""Bytes of a 2xx body accepted (a job list); a larger answer is refused, not buffered whole."""


@dataclass(frozen=True, slots=True)
class Connection:
    """A connection as Polaris reports it (``type`` is ``push_streaming`` for ours)."""

    name: str
    type: str
    raw: JsonObject = field(repr=False)


@dataclass(frozen=True, slots=True)
class Job:
    """An ingestion job as Polaris reports it; ``raw`` is the full JSON, spec included."""

    id: str
    type: str
    table: str | None
    desired_status: str | None
    raw: JsonObject = field(repr=False)

    @classmethod
    def from_json(cls, data: object) -> Job:
        if not isinstance(data, dict) or not isinstance(data.get("id"), str):
            raise ValueError("expected a job object with an id")
        target = data.get("target")
        table = target.get("tableName") if isinstance(target, dict) else None
        status = data.get("desiredExecutionStatus")
        return cls(
            id=data["id"],
            type=str(data.get("type", "")),
            table=table if isinstance(table, str) else None,
            desired_status=status if isinstance(status, str) else None,
            raw=data,
        )


def tls_setting(config: PolarisConfig) -> ssl.SSLContext | bool:
    """The ``ssl`` argument for aiohttp: verified by default, a private CA, or (explicitly) off."""
    if not config.tls_verify:
        return False
    if config.tls_ca_file is None:
        return True
    try:
        return ssl.create_default_context(cafile=str(config.tls_ca_file))
    except (OSError, ssl.SSLError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise errors.TlsFailure(
            config.url, f"cannot load polaris.tls_ca_file {config.tls_ca_file}: {reason}"
        ) from None


class PolarisApi:
    """Connections and jobs of one Polaris project, over one HTTP session."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        base_url: str,
        project_id: str,
        secret: str,
        *,
        credentials: Credentials | None = None,
        pacer: Pacer | None = None,
        secrets: tuple[str, ...] = (),
    ) -> None:
        self._session = session
        self._base_url = base_url
        self._project_url = f"{base_url}/v1/projects/{quote(project_id, safe='')}"
        self._secrets = tuple(s for s in (secret, *secrets) if s)
        self._credentials = credentials or ApiKey(secret)
        self._pacer = pacer or Pacer()  # the organization's budget (shared through `Access`)
        self._never = asyncio.Event()  # setup has no shutdown to end a pacer's wait

    def __repr__(self) -> str:
        return f"<PolarisApi {self._project_url}>"

    @classmethod
    @asynccontextmanager
    async def open(
        cls, config: PolarisConfig, access: Access | None = None
    ) -> AsyncIterator[PolarisApi]:
        """A client for ``config``'s project; the session closes when the block ends. With
        `access`, it shares the events client's token and rate-limit budget."""
        access = access or Access()
        connector = aiohttp.TCPConnector(ssl=tls_setting(config))
        headers = {
            "Accept": "application/json",
            "User-Agent": f"polaris-agent/{__version__}",
        }
        async with aiohttp.ClientSession(
            connector=connector,
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=config.request_timeout),
            trust_env=use_env_proxy(config.url),
        ) as session:
            yield cls(
                session,
                config.url,
                config.project_id,
                "",
                credentials=access.credentials(config),
                pacer=access.pacer(config),
                secrets=config.secrets,
            )

    # -- connections -------------------------------------------------------------------

    async def get_connection(self, name: str) -> Connection | None:
        """The connection called ``name``, or None when Polaris has none by that name."""
        try:
            data = await self._request("GET", f"/connections/{quote(name, safe='')}")
        except errors.NotFound:
            return None
        return self._connection(data, "GET /connections/{name}")

    async def create_connection(self, name: str, type_: str = "push_streaming") -> Connection:
        """Create a connection; raises :class:`errors.Conflict` when it exists already."""
        data = await self._request("POST", "/connections", {"type": type_, "name": name})
        return self._connection(data, "POST /connections")

    # -- jobs --------------------------------------------------------------------------

    async def list_jobs(self, job_type: str | None = None) -> list[Job]:
        """The project's jobs, of ``job_type`` only when given (``GET /jobs?type=streaming``).
        Accepts a bare list or Polaris' ``{"values": [...]}``."""
        query = "" if job_type is None else f"?type={quote(job_type, safe='')}"
        data = await self._request("GET", f"/jobs{query}")
        values = data.get("values") if isinstance(data, dict) else data
        if not isinstance(values, list):
            raise errors.UnexpectedAnswer("GET /jobs", "expected a list of jobs")
        return [self._job(item, "GET /jobs") for item in values]

    async def get_job(self, job_id: str) -> Job:
        data = await self._request("GET", f"/jobs/{quote(job_id, safe='')}")
        return self._job(data, "GET /jobs/{id}")

    async def create_job(self, spec: JsonObject) -> Job:
        """Create (and start) a job from a Polaris job spec; returns it with its new id."""
        data = await self._request("POST", "/jobs", spec)
        return self._job(data, "POST /jobs")

    async def update_job(self, job_id: str, spec: JsonObject) -> Job:
        """Replace a streaming job's spec in place (``PUT /jobs/{id}``); Polaris keeps its
        place in the connection's stream."""
        data = await self._request("PUT", f"/jobs/{quote(job_id, safe='')}", spec)
        return self._job(data, "PUT /jobs/{id}")

    async def cancel_job(self, job_id: str) -> Job:
        """Cancel a job (``PUT /jobs/{id}`` with ``desiredExecutionStatus: canceled``)."""
        body = {"desiredExecutionStatus": "canceled"}
        data = await self._request("PUT", f"/jobs/{quote(job_id, safe='')}", body)
        return self._job(data, "PUT /jobs/{id}")

    # -- plumbing ----------------------------------------------------------------------

    def _url(self, path: str) -> str:
        return f"{self._project_url}{path}"

    def _connection(self, data: object, what: str) -> Connection:
        if not isinstance(data, dict) or not isinstance(data.get("name"), str):
            raise errors.UnexpectedAnswer(what, "expected a connection object with a name")
        return Connection(name=data["name"], type=str(data.get("type", "")), raw=data)

    def _job(self, data: object, what: str) -> Job:
        try:
            return Job.from_json(data)
        except ValueError as exc:
            raise errors.UnexpectedAnswer(what, str(exc)) from None

    async def _request(self, method: str, path: str, body: JsonObject | None = None) -> Any:
        """Send one request, paced by the organization's budget; a 2xx JSON body comes back
        decoded, anything else is raised. A 401 "token expired" is sent once more."""
        url = self._url(path)
        data = None if body is None else orjson.dumps(body)
        for refresh in (True, False):
            await self._pacer.acquire(self._never)
            try:
                authorization = await self._credentials.authorization()
            except TokenRefused as exc:
                raise errors.AuthenticationFailed(self._scrub(str(exc))) from None
            except TokenUnavailable as exc:
                raise errors.Unreachable(self._base_url, self._scrub(str(exc))) from None
            headers = {"Authorization": authorization}
            if body is not None:
                headers["Content-Type"] = "application/json"
            status, raw, location = await self._send(method, url, data, headers)
            if status == 401 and refresh:
                text = raw[:_MAX_ERROR_BODY].decode("utf-8", errors="replace")
                if says_token_expired(status, text) and self._credentials.expired(authorization):
                    continue
            break
        return self._answer(method, url, status, raw, location)

    async def _send(
        self, method: str, url: str, data: bytes | None, headers: dict[str, str]
    ) -> tuple[int, bytes, str]:
        try:
            async with self._session.request(
                method, url, data=data, headers=headers, allow_redirects=False
            ) as resp:
                status = resp.status
                limit = _MAX_ANSWER_BODY if 200 <= status < 300 else _MAX_ERROR_BODY
                raw = await resp.content.read(limit + 1)
                location = resp.headers.get("Location", "")
                rate = {k.lower(): v for k, v in resp.headers.items() if "ratelimit" in k.lower()}
                retry_after = header_seconds(resp.headers.get("Retry-After"))
        except aiohttp.ClientSSLError as exc:
            raise errors.TlsFailure(self._base_url, self._scrub(_ssl_reason(exc))) from None
        except aiohttp.ClientConnectorError as exc:
            raise errors.Unreachable(self._base_url, self._scrub(_connect_reason(exc))) from None
        except TimeoutError:
            timeout = self._session.timeout.total
            raise errors.Unreachable(self._base_url, f"no answer within {timeout}s") from None
        except aiohttp.ClientError as exc:
            reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            raise errors.Unreachable(self._base_url, self._scrub(reason)) from None
        info = RateLimitInfo.from_headers(rate)
        self._pacer.observe(info)
        if status == 429:
            self._pacer.throttle(retry_after if retry_after is not None else info.reset_secs)
        else:
            self._pacer.relax()
        return status, raw, location

    def _answer(self, method: str, url: str, status: int, raw: bytes, location: str) -> Any:
        if 200 <= status < 300:
            if len(raw) > _MAX_ANSWER_BODY:
                raise errors.UnexpectedAnswer(
                    f"{method} {url}", f"answer larger than {_MAX_ANSWER_BODY} bytes"
                )
            return self._decode(method, url, raw.decode("utf-8", errors="replace"))
        if 300 <= status < 400:
            host = location_host(url, location) or "nowhere usable"
            reason = f"HTTP {status} redirect to {host}: not followed; check polaris.url"
            raise errors.RequestRejected(status, method, url, self._scrub(reason))
        text = raw[:_MAX_ERROR_BODY].decode("utf-8", errors="replace")
        raise self._status_error(status, method, url, text)

    def _decode(self, method: str, url: str, text: str) -> Any:
        if not text.strip():
            return {}
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError:
            raise errors.UnexpectedAnswer(f"{method} {url}", "body is not JSON") from None

    def _status_error(self, status: int, method: str, url: str, text: str) -> Exception:
        if status == 401:
            oauth = not isinstance(self._credentials, ApiKey)
            return errors.AuthenticationFailed(*(["check [polaris.oauth]"] if oauth else []))
        if status == 403:
            return errors.PermissionDenied()
        message = self._scrub(polaris_message(text) or f"HTTP {status}")
        if status == 404:
            return errors.NotFound(status, method, url, message)
        if status == 409:
            return errors.Conflict(status, method, url, message)
        if status >= 500:
            return errors.ServerError(status, method, url, message)
        return errors.RequestRejected(status, method, url, message)

    def _scrub(self, text: str) -> str:
        """Belt and braces: no text we show may contain the key, whatever its origin."""
        for secret in self._secrets:
            text = text.replace(secret, "[redacted]")
        return text


def polaris_message(text: str) -> str:
    """The human part of a Polaris error body, on one line.

    Polaris answers ``{"error": {"code", "message", "details": [...]}}``; other shapes
    (``{"message"}``, ``{"error": "..."}``, plain text) are taken as they come.
    """
    try:
        data = orjson.loads(text)
    except orjson.JSONDecodeError:
        data = None
    parts: list[str] = []
    if isinstance(data, dict):
        error = data.get("error", data)
        if isinstance(error, str):
            parts.append(error)
        elif isinstance(error, dict):
            for key in ("message", "detail", "description"):
                if isinstance(error.get(key), str):
                    parts.append(error[key])
                    break
            details = error.get("details")
            if isinstance(details, list):
                parts.extend(
                    d["message"]
                    for d in details
                    if isinstance(d, dict) and isinstance(d.get("message"), str)
                )
    if not parts:
        parts.append(text)
    line = " ".join(" ".join(parts).split())
    if len(line) > _MAX_MESSAGE_CHARS:
        line = line[: _MAX_MESSAGE_CHARS - 3] + "..."
    return line


def _ssl_reason(exc: aiohttp.ClientSSLError) -> str:
    cert_error = getattr(exc, "certificate_error", None)
    if cert_error is not None:
        return str(getattr(cert_error, "verify_message", "") or cert_error)
    os_error = getattr(exc, "os_error", None)
    return str(os_error) if os_error is not None else str(exc)


def _connect_reason(exc: aiohttp.ClientConnectorError) -> str:
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return f"cannot resolve host {exc.host!r}"
    if isinstance(exc.os_error, ConnectionRefusedError):
        return f"connection refused by {exc.host}:{exc.port}"
    if isinstance(exc.os_error, TimeoutError):
        return f"timed out connecting to {exc.host}:{exc.port}"
    return exc.os_error.strerror or str(exc.os_error)
