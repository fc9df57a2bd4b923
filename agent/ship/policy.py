"""The retry policy: send one payload whole until it is delivered, refused for its content,
or given up. The second link of the ship chain, between `Attempt` and `Splitter`.

It reads `error.retryable` and nothing else to decide whether to try again: a refusal of the
content (413, another 4xx) is not retryable and goes back to the splitter; everything else
is. A 429 is retried at once (the connection's pacer holds the request until the pause ends)
and counts no retry. While a spool exists, a delivery gives up (to the spool) when the
endpoint refuses (401/403, 3xx, 404, a blanket 400) or at its `RetryBudget`'s deadline:
`spool.after` from the batch's first try, one clock for the batch and every split half.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import structlog

from agent.ship.attempt import Attempt, Sent
from agent.ship.errors import (
    DeliveryError,
    EndpointRefused,
    PayloadRejected,
    PayloadTooLarge,
    Refusal,
    Throttled,
)
from agent.ship.health import EndpointHealth
from agent.ship.payload import Payload
from agent.ship.retry import Backoff, sleep_or_stop
from agent.ship.stats import SendStats

log = structlog.get_logger("agent.sender")


@dataclass(slots=True)
class RetryBudget:
    """One delivery's patience, shared by a payload and every split half of it.

    `spool_at` is the monotonic time after which a failure gives the delivery up to the
    spool; None when it never gives up (no spool, or replaying the spool itself): then it
    retries until shutdown. The backoff grows across halves and starts over after a success.
    """

    backoff: Backoff
    spool_at: float | None = None
    clock: Callable[[], float] = field(default=time.monotonic, repr=False)

    @property
    def may_spool(self) -> bool:
        return self.spool_at is not None

    def expired(self) -> bool:
        return self.spool_at is not None and self.clock() >= self.spool_at

    def next_delay(self) -> float:
        """The next backoff, cut so that the last try falls at the deadline, not after."""
        delay = self.backoff.next_delay()
        if self.spool_at is not None:
            delay = min(delay, max(self.spool_at - self.clock(), 0.0))
        return delay


class RetryPolicy:
    def __init__(
        self,
        attempt: Attempt,
        prepare: Callable[[Payload], Awaitable[Payload]],
        *,
        stats: SendStats,
        health: EndpointHealth,
        stopping: asyncio.Event,
    ) -> None:
        self._attempt = attempt
        self._prepare = prepare
        self._stats = stats
        self._health = health
        self._stopping = stopping

    def __repr__(self) -> str:
        return f"<RetryPolicy {self._attempt!r}>"

    async def send(self, payload: Payload, budget: RetryBudget) -> Sent | Refusal:
        """`Sent.DELIVERED`; `Sent.STOPPED` or `Sent.GIVEN_UP` (the payload is kept: to the
        spool, or behind the checkpoint); or the refusal that calls for a split."""
        if budget.may_spool and self._health.outage:
            return Sent.GIVEN_UP  # the replayer probes the endpoint; this goes to the spool
        payload = await self._prepare(payload)
        while True:
            outcome = await self._attempt(payload)
            if outcome is Sent.DELIVERED:
                budget.backoff.reset()
                return outcome
            if outcome is Sent.STOPPED:
                return outcome
            assert isinstance(outcome, DeliveryError)
            if not outcome.retryable:
                assert isinstance(outcome, PayloadTooLarge | PayloadRejected), outcome
                return outcome
            if isinstance(outcome, Throttled):
                continue  # the pacer holds the next try until the pause ends
            if await self.wait(outcome, budget):
                return Sent.STOPPED if self._stopping.is_set() else Sent.GIVEN_UP

    async def wait(self, error: DeliveryError, budget: RetryBudget) -> bool:
        """Count a retry and back off; True when the delivery ends instead: given up (an
        outage begins) or stopping."""
        self._stats.retries += 1
        if budget.may_spool and (isinstance(error, EndpointRefused) or budget.expired()):
            self._health.begin_outage(error)
            return True
        delay = budget.next_delay()
        log.warning(
            "delivery_failed",
            reason=error.reason,
            error=str(error),
            attempt=budget.backoff.attempt,
            retry_in=round(delay, 3),
        )
        return await sleep_or_stop(self._stopping, delay)
