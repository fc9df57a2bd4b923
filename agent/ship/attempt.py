"""One request: wait for the pacer, post, count, classify. The first link of the ship chain.

Nothing here retries (but a 401 "token expired", sent once more with a new token): an attempt
ends in `Sent.DELIVERED`, `Sent.STOPPED` (shutdown began while waiting to send) or the
`DeliveryError` that classifies the answer. What it learns on the way is recorded where it
belongs: rate-limit headers in the organization's pacer (one for every connection: Polaris
counts the budget per organization), a 429's pause there too, an endpoint refusing in
`EndpointHealth`, numbers in `SendStats`.
"""

from __future__ import annotations

import asyncio
import enum
import time
from collections.abc import Callable
from typing import Final

import structlog

from agent.ship.client import Answer, Poster
from agent.ship.errors import (
    AuthFailed,
    DeliveryError,
    EndpointRefused,
    PayloadRejected,
    Throttled,
    TransportError,
)
from agent.ship.health import EndpointHealth
from agent.ship.payload import Payload
from agent.ship.ratelimit import Pacer
from agent.ship.stats import SendStats

log = structlog.get_logger("agent.sender")

BLANKET_REFUSALS: Final = 8
"""400-class refusals in a row on a connection, with nothing of the payload at hand accepted,
after which the refusal is taken as the endpoint refusing everything (a proxy, a wrong URL, a
Polaris-side problem) rather than bad events: the data is kept and /readyz says so. A large
batch gets there after its first three levels of halving (1 + 2 + 4 + 8 = 15 requests, every
one refused); while it lasts, a refused payload is kept at once, without splitting. A
single-event batch is dead-lettered while fewer than this many refusals came in a row."""


class Sent(enum.Enum):
    DELIVERED = "delivered"  # acknowledged by Polaris
    STOPPED = "stopped"  # shutdown began first: nothing was (re)sent
    GIVEN_UP = "given_up"  # (retry policy) spool.after passed or an outage began: spool it


class Attempt:
    """Posts payloads through one client, every connection paced by the organization's one
    budget; a 401 "token expired" is sent again once, with a new token."""

    def __init__(
        self,
        client: Poster,
        *,
        default_connection: str,
        stats: SendStats,
        health: EndpointHealth,
        stopping: asyncio.Event,
        pacer: Pacer | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.default_connection = default_connection
        self._stats = stats
        self._health = health
        self._stopping = stopping
        self._clock = clock
        self._pacer = pacer or Pacer()  # the organization's, shared with the other clients
        self._refused: dict[str, int] = {}  # 400-class refusals in a row, per connection
        self._posting: dict[Poster, int] = {}  # requests out, per client
        self._retired: list[Poster] = []  # replaced, closed once their requests are answered

    def __repr__(self) -> str:
        return f"<Attempt {type(self.client).__name__} connections={len(self._refused)}>"

    async def __call__(self, payload: Payload) -> Sent | DeliveryError:
        """Send `payload` once: its gzip when it holds one (gzip-encoded), else its NDJSON.
        A 401 that says the token expired (the client has forgotten it) is sent once more."""
        sent = await self._once(payload)
        if isinstance(sent, Answer):
            sent = await self._once(payload, refresh=False)
        assert not isinstance(sent, Answer)
        return sent

    async def _once(self, payload: Payload, refresh: bool = True) -> Sent | DeliveryError | Answer:
        connection = self.resolve(payload.connection)
        while True:
            pacer = self.pacer(connection)
            if await pacer.acquire(self._stopping):
                return Sent.STOPPED
            if pacer is self.pacer(connection):
                break  # else handed over while waiting: ask the new host's pacer
        gzip = payload.gzipped is not None
        wire = payload.gzipped if payload.gzipped is not None else payload.body
        started = self._clock()
        client = self.client
        self._posting[client] = self._posting.get(client, 0) + 1
        try:
            answer = await client.post(connection, wire, gzip=gzip)
        except AuthFailed as exc:  # the OAuth token endpoint refused the client
            self._health.refused(exc, connection, str(exc))
            return exc
        except TransportError as exc:
            self._stats.transport_errors += 1
            counted = self._stats.connection(connection).requests
            counted["transport_error"] = counted.get("transport_error", 0) + 1
            return exc
        finally:
            self._stats.latency.observe(self._clock() - started)
            await self._done_posting(client)
        stats = self._stats
        stats.requests[answer.status] = stats.requests.get(answer.status, 0) + 1
        per = stats.connection(connection)
        per.requests[str(answer.status)] = per.requests.get(str(answer.status), 0) + 1
        stats.bytes_posted += len(wire)
        pacer.observe(answer.rate)
        if answer.status != 429:
            pacer.relax()
        if answer.ok:
            self._refused[connection] = 0
            stats.events_delivered += payload.events
            stats.bytes_delivered += payload.size
            per.events_delivered += payload.events
            per.bytes_delivered += payload.size
            self._health.delivered()
            return Sent.DELIVERED
        if answer.token_expired and refresh:
            log.info("token_expired_resending", connection=connection)
            return answer
        error = answer.error()
        if isinstance(error, PayloadRejected):
            self._refused[connection] = self._refused.get(connection, 0) + 1
        elif isinstance(error, EndpointRefused):
            self._health.refused(error, connection, answer.message)
        elif isinstance(error, Throttled) and pacer.throttle(error.retry_after_secs):
            pause = pacer.paused_for(self._clock())  # one line per pause, not per 429
            log.info("throttled", retry_after=error.retry_after_secs, pause=round(pause, 3))
        return error

    async def replace_client(self, client: Poster, pacer: Pacer | None = None) -> None:
        """Post through `client` from now on; the old one is closed as soon as the requests
        out on it have their answers (at once when there are none). With `pacer` (another
        host's), pace by it; whoever waits in the old one asks the new one."""
        if pacer is not None and pacer is not self._pacer:
            previous, self._pacer = self._pacer, pacer
            previous.hand_over()
        old, self.client = self.client, client
        if old is client:
            return
        self._retired.append(old)
        if not self._posting.get(old):
            await self._close(old)

    async def _done_posting(self, client: Poster) -> None:
        left = self._posting[client] = self._posting[client] - 1
        if not left:
            del self._posting[client]
            if client in self._retired:
                await self._close(client)

    async def _close(self, client: Poster) -> None:
        self._retired.remove(client)
        await client.aclose()

    @property
    def default_pacer(self) -> Pacer:
        return self.pacer(self.default_connection)

    def pacer(self, connection: str) -> Pacer:
        """The rate-limit state `connection` is paced by: the organization's, the same for
        every connection (Polaris' RateLimit-* headers count the whole organization)."""
        return self._pacer

    def resolve(self, connection: str) -> str:
        """The connection a payload goes to: its own, or "" for the default one as configured
        now. A batch for the default connection keeps "" in its payload and spool entry, so
        that a reload renaming the default (another organization's connection) sends what
        was spooled before it to the new name: resolved when taken, it went to the old name,
        404 (kept and retried) forever, the spool wedged behind it."""
        return connection or self.default_connection

    def refusing(self, connection: str) -> bool:
        """The connection refused (400-class) BLANKET_REFUSALS requests since its last 2xx."""
        return self._refused.get(self.resolve(connection), 0) >= BLANKET_REFUSALS
