"""Batches -> Polaris: a pool of workers that deliver each batch or keep it unacknowledged.

Nothing here knows about files. A batch carries tickets; a worker completes them only once
Polaris has acknowledged every byte of the batch (or an event it can never take has been
written to a dead letter). A batch that is not delivered is simply never acknowledged: its
lines stay behind the checkpoint and are read again after a restart.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field

import structlog

from agent.records import Batch
from agent.ship.errors import (
    AuthFailed,
    DeliveryError,
    PayloadTooLarge,
    Rejected,
    Throttled,
    TransportError,
)
from agent.ship.http import EventsClient
from agent.ship.ratelimit import Pacer
from agent.ship.retry import Backoff, sleep_or_stop
from agent.state.acks import AckTracker
from agent.state.deadletter import DeadLetters

log = structlog.get_logger("agent.sender")


@dataclass(slots=True)
class SendStats:
    """Counted per request, never per line: cheap enough for the hot path."""

    requests: dict[int, int] = field(default_factory=dict)  # by HTTP status
    transport_errors: int = 0
    retries: int = 0
    splits: int = 0
    batches_delivered: int = 0
    events_delivered: int = 0
    bytes_delivered: int = 0  # uncompressed NDJSON
    bytes_posted: int = 0  # on the wire
    auth_failing: bool = False
    last_success: float = 0.0


@dataclass(frozen=True, slots=True)
class SenderSettings:
    connection: str
    compress: Callable[[bytes], bytes] | None
    retry_initial: float
    retry_max: float


class Sender:
    def __init__(
        self,
        client: EventsClient,
        pacer: Pacer,
        settings: SenderSettings,
        *,
        acks: AckTracker,
        dead_letters: DeadLetters,
        executor: Executor,
        stopping: asyncio.Event,
    ) -> None:
        self._client = client
        self._pacer = pacer
        self._settings = settings
        self._acks = acks
        self._dead_letters = dead_letters
        self._executor = executor
        self._stopping = stopping
        self.stats = SendStats()

    async def work(self, batches: asyncio.Queue[Batch | None]) -> None:
        """One worker: take batches until the None that says there are no more."""
        while True:
            batch = await batches.get()
            if batch is None:
                batches.put_nowait(None)  # let the other workers see the end too
                return
            if await self._deliver(batch.payload(), batch.events):
                for ticket in batch.tickets:
                    self._acks.complete(ticket)
                self.stats.batches_delivered += 1
            else:
                log.info("batch_abandoned_at_shutdown", batch=batch.seq, events=batch.events)

    async def _deliver(self, body: bytes, events: int) -> bool:
        """True once every event of `body` is acknowledged or dead-lettered; False only when
        stopping first (the caller then leaves the batch unacknowledged)."""
        payload = await self._encode(body)
        backoff = Backoff(self._settings.retry_initial, self._settings.retry_max)
        while True:
            if await self._pacer.acquire(self._stopping):
                return False
            error = await self._attempt(payload)
            if error is None:
                self._delivered(body, events)
                return True
            if isinstance(error, PayloadTooLarge | Rejected):
                return await self._split(body, error)
            if isinstance(error, Throttled):
                self._pacer.throttle(error.retry_after_secs)
                log.info("throttled", retry_after=error.retry_after_secs)
                continue
            self.stats.retries += 1
            delay = backoff.next_delay()
            log.warning(
                "delivery_failed",
                reason=error.reason,
                error=str(error),
                attempt=backoff.attempt,
                retry_in=round(delay, 3),
            )
            if await sleep_or_stop(self._stopping, delay):
                return False

    async def _attempt(self, payload: bytes) -> DeliveryError | None:
        settings = self._settings
        try:
            answer = await self._client.post(
                settings.connection, payload, gzip=settings.compress is not None
            )
        except TransportError as exc:
            self.stats.transport_errors += 1
            return exc
        self.stats.requests[answer.status] = self.stats.requests.get(answer.status, 0) + 1
        self.stats.bytes_posted += len(payload)
        self._pacer.observe(answer.rate)
        if answer.ok:
            return None
        error = answer.error()
        if isinstance(error, AuthFailed) and not self.stats.auth_failing:
            self.stats.auth_failing = True
            log.error("auth_failed", status=answer.status, message=answer.message)
        return error

    async def _split(self, body: bytes, error: DeliveryError) -> bool:
        """Halve a payload Polaris refused until the refused event stands alone."""
        cut = _middle_newline(body)
        if cut is None:
            self._dead_letters.write(
                f"http_{error.reason}", self._settings.connection, -1, body, detail=str(error)
            )
            return True
        self.stats.splits += 1
        log.info("payload_split", reason=error.reason, bytes=len(body))
        left, right = body[:cut], body[cut:]
        return await self._deliver(left, left.count(b"\n")) and await self._deliver(
            right, right.count(b"\n")
        )

    async def _encode(self, body: bytes) -> bytes:
        compress = self._settings.compress
        if compress is None:
            return body
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, compress, body)

    def _delivered(self, body: bytes, events: int) -> None:
        stats = self.stats
        stats.events_delivered += events
        stats.bytes_delivered += len(body)
        stats.last_success = time.time()
        if stats.auth_failing:
            stats.auth_failing = False
            log.info("auth_recovered")


def _middle_newline(body: bytes) -> int | None:
    """An index just after a newline near the middle, or None for a single event."""
    trimmed = len(body) - 1 if body.endswith(b"\n") else len(body)
    half = trimmed // 2
    after = body.find(b"\n", half, trimmed)
    if after != -1:
        return after + 1
    before = body.rfind(b"\n", 0, half)
    return before + 1 if before != -1 else None
