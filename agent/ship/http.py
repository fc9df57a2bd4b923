"""The one place that speaks HTTP to the Events API; aiohttp's exceptions end here."""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass
from types import TracebackType

import aiohttp
import structlog

from agent.config import PolarisConfig
from agent.ship.errors import DeliveryError, TransportError, classify
from agent.ship.ratelimit import RateLimitInfo

log = structlog.get_logger("agent.http")
_RATE_HEADERS = (
    "ratelimit-limit",
    "ratelimit-remaining",
    "ratelimit-reset",
    "x-ratelimit-limit-minute",
    "x-ratelimit-remaining-minute",
    "retry-after",
)


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    rate: RateLimitInfo
    retry_after: float | None
    message: str  # the body of a non-2xx answer, squeezed and cut, for logs and dead letters

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def error(self) -> DeliveryError:
        return classify(self.status, self.message, self.retry_after)


class EventsClient:
    """One aiohttp session for the life of the agent; posts payloads, returns or raises."""

    def __init__(self, polaris: PolarisConfig, *, connections: int) -> None:
        self._polaris = polaris
        self._connections = connections
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> EventsClient:
        ssl_context: ssl.SSLContext | bool = True
        if self._polaris.tls_ca_file is not None:
            ssl_context = ssl.create_default_context(cafile=str(self._polaris.tls_ca_file))
        if not self._polaris.tls_verify:
            ssl_context = False
            log.warning("tls_verification_disabled", url=self._polaris.url)
        self._session = aiohttp.ClientSession(
            auth=aiohttp.BasicAuth(self._polaris.api_key.get_secret_value(), ""),
            connector=aiohttp.TCPConnector(limit=self._connections, ssl=ssl_context),
            timeout=aiohttp.ClientTimeout(total=self._polaris.request_timeout),
            headers={"Content-Type": "application/json"},
            raise_for_status=False,
        )
        return self

    async def __aexit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def post(self, connection: str, body: bytes, *, gzip: bool) -> Answer:
        """Post one payload and return Polaris' answer; TransportError when there is none."""
        assert self._session is not None, "use EventsClient as an async context manager"
        headers = {"Content-Encoding": "gzip"} if gzip else {}
        url = self._polaris.events_url(connection)
        try:
            async with self._session.post(url, data=body, headers=headers) as response:
                text = await response.text(errors="replace") if response.status >= 300 else ""
                status = response.status
                raw = {h: response.headers[h] for h in _RATE_HEADERS if h in response.headers}
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise TransportError(_describe(exc)) from None
        rate = RateLimitInfo.from_headers(raw)
        return Answer(status, rate, _retry_after(raw, rate), _message(text))


def _retry_after(raw: dict[str, str], rate: RateLimitInfo) -> float | None:
    value = raw.get("retry-after")
    if value is not None:
        try:
            return float(value)
        except ValueError:
            pass
    return rate.reset_secs


def _message(text: str) -> str:
    return " ".join(text.split())[:300]


def _describe(exc: BaseException) -> str:
    if isinstance(exc, asyncio.TimeoutError):
        return "request timed out"
    return f"{type(exc).__name__}: {exc}"[:300]
