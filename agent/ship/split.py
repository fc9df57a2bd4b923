"""The splitter: a payload refused for its content is halved until each bad event stands
alone and is dead-lettered, while the rest is delivered. The third link of the ship chain.

Breadth first: both halves of a refused piece are tried before either is halved again, so a
bad event shows itself by its sibling being accepted. When nothing of the payload has been
accepted and the connection has refused BLANKET_REFUSALS requests in a row (every piece of the
first three levels, for a large batch), the endpoint is refusing everything: the payload is
kept (BlanketRefusal), not dead-lettered event by event. Every SPLIT_BUDGET requests the split
pauses a growing backoff, so one batch full of bad events cannot flood the endpoint.
"""

from __future__ import annotations

import asyncio
from typing import Final

import structlog

from agent.ship.attempt import Attempt, Sent
from agent.ship.errors import BlanketRefusal, DeliveryError, PayloadRejected, Refusal
from agent.ship.health import EndpointHealth
from agent.ship.payload import Payload, Span
from agent.ship.policy import RetryBudget, RetryPolicy
from agent.ship.retry import Backoff, sleep_or_stop
from agent.ship.stats import SendStats
from agent.state.deadletter import DeadLetters

log = structlog.get_logger("agent.sender")

SPLIT_BUDGET: Final = 64
"""Requests one split may make before it pauses a backoff (sender.retry_initial, doubling up
to sender.retry_max): a batch of many bad events cannot flood the endpoint."""

Piece = tuple[int, int, Refusal]


class Splitter:
    def __init__(
        self,
        policy: RetryPolicy,
        attempt: Attempt,
        *,
        health: EndpointHealth,
        dead_letters: DeadLetters,
        stats: SendStats,
        stopping: asyncio.Event,
    ) -> None:
        self._policy = policy
        self._attempt = attempt
        self._health = health
        self._dead_letters = dead_letters
        self._stats = stats
        self._stopping = stopping

    def __repr__(self) -> str:
        return f"<Splitter splits={self._stats.splits}>"

    async def deliver(self, payload: Payload, budget: RetryBudget) -> list[Span]:
        """Send `payload` until every event is acknowledged or dead-lettered; the spans of its
        NDJSON left undelivered (to spool, or to leave behind the checkpoint) when giving up
        or stopping. A refusal of every part splitting tried (a blanket 400) keeps the whole
        payload, like a 401: retried whole after a backoff, or given up to the spool."""
        everything = [(0, payload.size)]
        while True:
            outcome = await self._policy.send(payload, budget)
            if outcome is Sent.DELIVERED:
                return []
            if isinstance(outcome, Sent):
                return everything
            if isinstance(outcome, PayloadRejected) and self._attempt.refusing(payload.connection):
                split: list[Span] | BlanketRefusal = _blanket(outcome)
            else:
                split = await self.split(payload, payload.body, outcome, budget)
            if isinstance(split, list):
                return split
            self._health.refused(split, self._attempt.resolve(payload.connection), split.message)
            if await self._policy.wait(split, budget):
                return everything

    async def split(
        self, payload: Payload, body: bytes, error: Refusal, budget: RetryBudget
    ) -> list[Span] | BlanketRefusal:
        """Halve `payload` (whose NDJSON is `body`) breadth first; the spans left undelivered
        (given up or stopping), or BlanketRefusal when the endpoint refuses everything."""
        pieces: list[Piece] = [(0, len(body), error)]
        singles: list[Piece] = []
        kept: list[Span] = []  # given up (an outage began) or stopping: to spool or keep
        delivered: list[Span] = []
        rejected = isinstance(error, PayloadRejected)  # a 400-class refusal, not only 413s
        requests = SPLIT_BUDGET
        pause = Backoff(budget.backoff.initial, budget.backoff.cap)
        while pieces:
            refused: list[Piece] = []
            for start, end, why in pieces:
                cut = middle_newline(body[start:end])
                if cut is None:
                    singles.append((start, end, why))
                    continue
                self._stats.splits += 1
                log.info("payload_split", reason=why.reason, bytes=end - start)
                for span in ((start, start + cut), (start + cut, end)):
                    if requests <= 0:
                        requests = SPLIT_BUDGET
                        delay = pause.next_delay()
                        log.warning("split_budget_spent", requests=SPLIT_BUDGET, pause=delay)
                        if await sleep_or_stop(self._stopping, delay):
                            return complement(len(body), delivered)
                    requests -= 1
                    outcome = await self._policy.send(payload.part(body, span), budget)
                    if outcome is Sent.DELIVERED:
                        delivered.append(span)
                    elif isinstance(outcome, Sent):
                        kept.append(span)
                    else:
                        rejected = rejected or isinstance(outcome, PayloadRejected)
                        refused.append((*span, outcome))
            if not delivered and rejected and self._attempt.refusing(payload.connection):
                return _blanket(error)
            pieces = refused
        for start, end, why in singles:
            self._dead_letter(why, body[start:end], *payload.locate(start, body))
        return merge(sorted(kept))

    def _dead_letter(self, error: DeliveryError, event: bytes, path: str, offset: int) -> None:
        self._dead_letters.write(
            f"http_{error.reason}",
            path or self._attempt.default_connection,
            offset,
            event.rstrip(b"\n"),
            str(error),
        )


def _blanket(error: Refusal) -> BlanketRefusal:
    if isinstance(error, PayloadRejected):
        return BlanketRefusal(error.status, error.message)
    return BlanketRefusal(413, str(error))


def complement(size: int, done: list[Span]) -> list[Span]:
    """The spans of [0, size) that are not in `done`."""
    left: list[Span] = []
    position = 0
    for start, end in sorted(done):
        if start > position:
            left.append((position, start))
        position = max(position, end)
    if position < size:
        left.append((position, size))
    return left


def merge(spans: list[Span]) -> list[Span]:
    """Sorted spans with the adjacent ones joined."""
    merged: list[Span] = []
    for start, end in spans:
        if merged and merged[-1][1] == start:
            merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    return merged


def middle_newline(body: bytes) -> int | None:
    """An index just after a newline near the middle, or None for a single event."""
    trimmed = len(body) - 1 if body.endswith(b"\n") else len(body)
    half = trimmed // 2
    after = body.find(b"\n", half, trimmed)
    if after != -1:
        return after + 1
    before = body.rfind(b"\n", 0, half)
    return before + 1 if before != -1 else None
