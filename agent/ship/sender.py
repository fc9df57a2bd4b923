"""Batches -> Polaris: a pool of workers that deliver each batch, spool it, or keep it
unacknowledged.

Nothing here knows about files. A batch carries tickets; a worker completes them once every
byte of the batch is safe: acknowledged by Polaris, written to a dead letter (an event Polaris
can never take), or written to the disk spool (retries ran out, the key is refused, the
endpoint is known to be down, or the agent is stopping). Without a spool, a batch that is not
delivered is never acknowledged: its lines stay behind the checkpoint and are read again
after a restart.

While an outage lasts (a batch gave up), live batches go straight to the spool instead of
each waiting out its own retries; the replayer is then the only thing probing the endpoint,
oldest spooled batch first, and its first success ends the outage.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Final

import structlog

from agent.ops.snapshot import LatencyHistogram
from agent.records import Batch, Origin
from agent.ship.compress import gunzip
from agent.ship.errors import (
    AuthFailed,
    BlanketRefusal,
    ConnectionMissing,
    DeliveryError,
    EndpointRefused,
    PayloadTooLarge,
    Redirected,
    Rejected,
    Throttled,
    TransportError,
)
from agent.ship.http import EventsClient
from agent.ship.ratelimit import Pacer
from agent.ship.retry import Backoff, first_of, sleep_or_stop
from agent.ship.spool import Spool, SpoolEntry, SpoolFile
from agent.state.acks import AckTracker
from agent.state.deadletter import DeadLetters

log = structlog.get_logger("agent.sender")

Locate = Callable[[int], tuple[str, int]]
"""Byte position in a batch's NDJSON -> (source path, line offset), for dead letters."""
Span = tuple[int, int]
"""[start, end) byte range of a batch's NDJSON that is not delivered yet."""

BLANKET_REFUSALS: Final = 8
"""400-class refusals in a row on a connection, with nothing of the payload at hand accepted,
after which the refusal is taken as the endpoint refusing everything (a proxy, a wrong URL, a
Polaris-side problem) rather than bad events: the data is kept and /readyz says so. A large
batch gets there after its first three levels of halving (1 + 2 + 4 + 8 = 15 requests, every
one refused); while it lasts, a refused payload is kept at once, without splitting. A
single-event batch is dead-lettered while fewer than this many refusals came in a row."""

SPLIT_BUDGET: Final = 64
"""Requests one split may make before it pauses a backoff (sender.retry_initial, doubling up
to sender.retry_max): a batch of many bad events cannot flood the endpoint."""


@dataclass(slots=True)
class SendStats:
    """Counted per request, never per line: cheap enough for the hot path."""

    requests: dict[int, int] = field(default_factory=dict)  # by HTTP status
    transport_errors: int = 0
    retries: int = 0
    splits: int = 0
    batches_delivered: int = 0
    batches_spooled: int = 0
    events_delivered: int = 0
    bytes_delivered: int = 0  # uncompressed NDJSON
    bytes_posted: int = 0  # on the wire
    auth_failing: bool = False
    endpoint_failing: str = ""  # reason of the last EndpointRefused but auth, "" once it works
    last_success: float = 0.0  # time.monotonic() of the last acknowledged request
    latency: LatencyHistogram = field(default_factory=LatencyHistogram)


@dataclass(frozen=True, slots=True)
class SenderSettings:
    connection: str
    compress: Callable[[bytes], bytes] | None
    retry_initial: float
    retry_max: float
    spool_after: float = 30.0  # how long a batch retries before it goes to the spool


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
        spool: Spool | None = None,
        compress_threads: int = 1,
    ) -> None:
        self.client = client
        self.settings = settings
        self.pacer = pacer  # the default connection's; others get their own (own limits)
        self._pacers: dict[str, Pacer] = {settings.connection: pacer}
        self._refused: dict[str, int] = {}  # 400-class refusals in a row, per connection
        self._acks = acks
        self._dead_letters = dead_letters
        self._executor = executor
        # A worker takes a batch only when a compression thread is free for it: batches
        # waiting for one wait in the queue as pieces, not joined in every idle worker.
        self._compressing = asyncio.Semaphore(compress_threads)
        self._spooling = asyncio.Lock()
        self._stopping = stopping
        self._spool = spool
        self.outage = False  # a batch gave up: live batches go straight to the spool
        self.in_flight = 0  # batches taken by a worker and not yet safe
        self.spooled = asyncio.Event()  # set after a spool write: checkpoint soon (see runtime)
        self.stats = SendStats()

    def __repr__(self) -> str:
        state = "outage" if self.outage else "ok"
        return f"<Sender {self.settings.connection} {state} in_flight={self.in_flight}>"

    async def work(self, batches: asyncio.Queue[Batch | None]) -> None:
        """One worker: take batches until the None that says there are no more."""
        while (batch := await self._take(batches)) is not None:
            try:
                await self._handle(batch)
            finally:
                self.in_flight -= 1
                del batch  # waiting for the next one must not keep this one's bytes alive

    async def _take(self, batches: asyncio.Queue[Batch | None]) -> Batch | None:
        """The next batch to send, compressed; taken only when a compression thread is free
        for it, so that batches wait in the queue as pieces, not joined in every idle worker.
        While an outage lasts, batches go straight to the spool here, under the same slot:
        one at a time, however many workers there are."""
        async with self._compressing:
            while True:
                batch = await batches.get()
                batches.task_done()  # the batcher waits for this before it seals the next
                if batch is None:
                    batches.put_nowait(None)  # let the other workers see the end too
                    return None
                self.in_flight += 1
                if self.outage and self._spool is not None:
                    try:
                        await self._handle(batch)  # straight to the spool
                    finally:
                        self.in_flight -= 1
                        del batch  # not kept alive while the next one is awaited
                    continue
                try:
                    await self._prepare(batch)
                except BaseException:
                    self.in_flight -= 1
                    raise
                return batch

    async def replay(self, done: asyncio.Event) -> None:
        """Deliver spooled batches, oldest first, until stopping or `done`."""
        spool = self._spool
        if spool is None:
            return
        while not (self._stopping.is_set() or done.is_set()):
            file = spool.oldest()
            if file is None:
                await first_of(spool.wait_for_files(), self._stopping.wait(), done.wait())
                continue
            if not await self._replay_file(spool, file):
                return  # stopping: the file stays for the next start

    async def _replay_file(self, spool: Spool, file: SpoolFile) -> bool:
        """Deliver one spooled file and remove it; False when stopping first. (Its own frame:
        the entry's body goes as soon as it is delivered, not when the next file comes.)"""
        spool.hold(file)
        try:
            entry = await spool.read(file)
            if entry is None:
                return True  # corrupt: quarantined and counted by the spool
            left = await self._deliver(
                entry.body,
                0,
                entry.locate,
                connection=entry.connection,
                may_spool=False,
                events=entry.events,
            )
            if left:
                return False
            await spool.remove(file)
        finally:
            spool.release(file)
        log.info("spool_replayed", file=file.name, events=entry.events)
        return True

    def _pacer(self, connection: str) -> Pacer:
        """Rate-limit state per connection: Polaris answers RateLimit-* per endpoint."""
        pacer = self._pacers.get(connection)
        if pacer is None:
            pacer = self._pacers[connection] = Pacer()
        return pacer

    def _connection(self, batch: Batch) -> str:
        return batch.connection or self.settings.connection

    async def _handle(self, batch: Batch) -> None:
        left = await self._deliver(
            batch, 0, batch.locate, connection=self._connection(batch), events=batch.events
        )
        if not left:
            self.stats.batches_delivered += 1
        elif not await self._spool_batch(batch, left):
            log.info("batch_abandoned_at_shutdown", batch=batch.seq, events=batch.events)
            return
        for ticket in batch.tickets:
            self._acks.complete(ticket)

    async def _spool_batch(self, batch: Batch, left: list[Span]) -> bool:
        """One batch at a time: when an outage begins, every worker gives up at once, and
        each would otherwise inflate its parked batch together."""
        async with self._spooling:
            return await self._to_spool(batch.payload(), left, batch)

    async def _to_spool(self, body: bytes, left: list[Span], batch: Batch) -> bool:
        """Write the undelivered spans of `batch` to the spool; True once they are durable."""
        if self._spool is None:
            return False
        if left == [(0, len(body))] and all(o is not None for o in batch.origins):
            rest, events = body, batch.events
            origins = tuple(o for o in batch.origins if o is not None)
        else:
            rest = b"".join(body[a:b] for a, b in left)
            events = rest.count(b"\n")
            origins = _origins(body, left, batch.locate)
        entry = SpoolEntry(self._connection(batch), rest, events, origins)
        if not await self._spool.put(entry, self._stopping):
            return False
        self.stats.batches_spooled += 1
        self.spooled.set()
        return True

    async def _deliver(
        self,
        body: bytes | Batch,
        base: int,
        locate: Locate,
        *,
        connection: str,
        may_spool: bool = True,
        events: int | None = None,
    ) -> list[Span]:
        """Send `body` (bytes `base`.. of a batch) until every event is acknowledged or
        dead-lettered; returns the spans left undelivered, to spool (or to leave behind the
        checkpoint) when giving up or stopping. A whole batch is parked while its request is
        out: its uncompressed bytes come back only if a split needs them. A refusal of every
        part splitting tried (a blanket 400) keeps the whole payload, like a 401."""
        size = body.size if isinstance(body, Batch) else len(body)
        everything = [(base, base + size)]
        give_up = may_spool and self._spool is not None
        backoff = Backoff(self.settings.retry_initial, self.settings.retry_max)
        while True:
            outcome = await self._send(
                body, base, connection=connection, may_spool=may_spool, events=events
            )
            if isinstance(outcome, list):
                return outcome
            raw = body.payload() if isinstance(body, Batch) else body
            if isinstance(outcome, Rejected) and self._refusing(connection):
                split: list[Span] | BlanketRefusal = BlanketRefusal(outcome.status, outcome.message)
            else:
                split = await self._split(raw, base, locate, outcome, connection, may_spool)
            if isinstance(split, list):
                return split
            self._endpoint_refused(split, connection, split.message)
            self.stats.retries += 1
            if give_up:
                self._begin_outage(split)
                return everything
            delay = backoff.next_delay()
            log.warning(
                "delivery_failed",
                reason=split.reason,
                error=str(split),
                attempt=backoff.attempt,
                retry_in=round(delay, 3),
            )
            if await sleep_or_stop(self._stopping, delay):
                return everything

    async def _send(
        self,
        body: bytes | Batch,
        base: int,
        *,
        connection: str,
        may_spool: bool = True,
        events: int | None = None,
    ) -> list[Span] | PayloadTooLarge | Rejected:
        """Send `body` whole, retrying what is worth retrying; the spans left undelivered
        (none once acknowledged), or the refusal that calls for a split."""
        size = body.size if isinstance(body, Batch) else len(body)
        everything = [(base, base + size)]
        give_up = may_spool and self._spool is not None
        if give_up and self.outage:
            return everything
        if isinstance(body, Batch):
            payload = await self._batch_payload(body)
            events = body.events
        else:
            payload = await self._encode(body)
            events = body.count(b"\n") if events is None else events
        backoff = Backoff(self.settings.retry_initial, self.settings.retry_max)
        started = time.monotonic()
        while True:
            pacer = self._pacer(connection)
            if await pacer.acquire(self._stopping):
                return everything
            error = await self._attempt(connection, payload)
            if error is None:
                self._delivered(size, events)
                return []
            if isinstance(error, PayloadTooLarge | Rejected):
                return error
            if isinstance(error, Throttled):
                if pacer.throttle(error.retry_after_secs):  # one line per pause, not per 429
                    pause = pacer.paused_for(time.monotonic())
                    log.info("throttled", retry_after=error.retry_after_secs, pause=round(pause, 3))
                continue
            self.stats.retries += 1
            if give_up and (
                isinstance(error, EndpointRefused)
                or time.monotonic() - started >= self.settings.spool_after
            ):
                self._begin_outage(error)
                return everything
            delay = backoff.next_delay()
            if give_up:  # the last try falls at spool.after, not a whole backoff later
                left_until_spool = self.settings.spool_after - (time.monotonic() - started)
                delay = min(delay, max(left_until_spool, 0.0))
            log.warning(
                "delivery_failed",
                reason=error.reason,
                error=str(error),
                attempt=backoff.attempt,
                retry_in=round(delay, 3),
            )
            if await sleep_or_stop(self._stopping, delay):
                return everything

    async def _attempt(self, connection: str, payload: bytes) -> DeliveryError | None:
        started = time.monotonic()
        try:
            answer = await self.client.post(
                connection, payload, gzip=self.settings.compress is not None
            )
        except TransportError as exc:
            self.stats.transport_errors += 1
            return exc
        finally:
            self.stats.latency.observe(time.monotonic() - started)
        self.stats.requests[answer.status] = self.stats.requests.get(answer.status, 0) + 1
        self.stats.bytes_posted += len(payload)
        pacer = self._pacer(connection)
        pacer.observe(answer.rate)
        if answer.status != 429:
            pacer.relax()
        if answer.ok:
            self._refused[connection] = 0
            return None
        error = answer.error()
        if isinstance(error, Rejected):
            self._refused[connection] = self._refused.get(connection, 0) + 1
        if isinstance(error, EndpointRefused):
            self._endpoint_refused(error, connection, answer.message)
        return error

    def _refusing(self, connection: str) -> bool:
        """The connection refused (400-class) BLANKET_REFUSALS requests since its last 2xx."""
        return self._refused.get(connection, 0) >= BLANKET_REFUSALS

    def _endpoint_refused(self, error: EndpointRefused, connection: str, message: str) -> None:
        """One error line when the endpoint starts refusing (not one per request), and the
        flag that makes /readyz say so until a request succeeds. Never the key, never a URL
        path or query from a Location header: only its host."""
        stats = self.stats
        if isinstance(error, AuthFailed):
            if not stats.auth_failing:
                stats.auth_failing = True
                log.error("auth_failed", status=error.status, message=message)
            return
        if stats.endpoint_failing == error.reason:
            return
        stats.endpoint_failing = error.reason
        if isinstance(error, Redirected):
            log.error(
                "redirect_refused",
                status=error.status,
                location_host=error.location_host,
                connection=connection,
                hint="check polaris.url: redirects are never followed; the data is kept",
            )
        elif isinstance(error, ConnectionMissing):
            log.error(
                "connection_missing",
                connection=connection,
                message=message,
                hint="create the connection (polaris-agent setup) or fix polaris.connection; "
                "the data is kept",
            )
        else:
            log.error(
                "endpoint_refuses_everything",
                reason=error.reason,
                connection=connection,
                error=str(error),
                hint="every part of a batch was refused alike; the data is kept",
            )

    async def _split(
        self,
        body: bytes,
        base: int,
        locate: Locate,
        error: PayloadTooLarge | Rejected,
        connection: str,
        may_spool: bool,
    ) -> list[Span] | BlanketRefusal:
        """Halve a payload Polaris refused until each refused event stands alone, then
        dead-letter those; returns the spans left undelivered (giving up or stopping).

        Breadth first: both halves of a refused piece are tried before either is halved
        again, so a bad event shows itself by its sibling being accepted. When nothing of the
        payload has been accepted and the connection has refused BLANKET_REFUSALS requests in
        a row (every piece of the first three levels, for a large batch), the endpoint is
        refusing everything: the payload is kept (BlanketRefusal), not dead-lettered event by
        event. Every SPLIT_BUDGET requests the split pauses a growing backoff, so one batch
        full of bad events cannot flood the endpoint."""
        pieces: list[tuple[int, int, PayloadTooLarge | Rejected]] = [(0, len(body), error)]
        singles: list[tuple[int, int, PayloadTooLarge | Rejected]] = []
        kept: list[Span] = []  # given up (an outage began) or stopping: to spool or keep
        delivered: list[Span] = []
        rejected = isinstance(error, Rejected)  # a 400-class refusal, not only 413s
        budget = SPLIT_BUDGET
        backoff = Backoff(self.settings.retry_initial, self.settings.retry_max)
        while pieces:
            refused: list[tuple[int, int, PayloadTooLarge | Rejected]] = []
            for start, end, why in pieces:
                cut = _middle_newline(body[start:end])
                if cut is None:
                    singles.append((start, end, why))
                    continue
                self.stats.splits += 1
                log.info("payload_split", reason=why.reason, bytes=end - start)
                for a, b in ((start, start + cut), (start + cut, end)):
                    if budget <= 0:
                        budget = SPLIT_BUDGET
                        delay = backoff.next_delay()
                        log.warning("split_budget_spent", requests=SPLIT_BUDGET, pause=delay)
                        if await sleep_or_stop(self._stopping, delay):
                            return _complement(base, len(body), delivered)
                    budget -= 1
                    outcome = await self._send(
                        body[a:b], base + a, connection=connection, may_spool=may_spool
                    )
                    if isinstance(outcome, list):
                        kept.extend(outcome)
                        if not outcome:
                            delivered.append((base + a, base + b))
                    else:
                        rejected = rejected or isinstance(outcome, Rejected)
                        refused.append((a, b, outcome))
            if not delivered and rejected and self._refusing(connection):
                return BlanketRefusal(_status(error), _message(error))
            pieces = refused
        for start, end, why in singles:
            self._dead_letter(why, body[start:end], *locate(base + start))
        return _merge(sorted(kept))

    def _dead_letter(self, error: DeliveryError, event: bytes, path: str, offset: int) -> None:
        self._dead_letters.write(
            f"http_{error.reason}",
            path or self.settings.connection,
            offset,
            event.rstrip(b"\n"),
            str(error),
        )

    def _begin_outage(self, error: DeliveryError) -> None:
        if not self.outage:
            self.outage = True
            log.warning("outage_spooling", reason=error.reason, error=str(error))

    async def _prepare(self, batch: Batch) -> None:
        """Compress `batch` and park it: while its request is out only the compressed bytes
        are kept (all a retry needs); a split, a spool write or a dead letter inflates it."""
        if self.settings.compress is None or batch.compressed is not None:
            return
        batch.park(await self._encode(batch.payload()), gunzip)

    async def _batch_payload(self, batch: Batch) -> bytes:
        await self._prepare(batch)
        return batch.payload() if batch.compressed is None else batch.compressed

    async def _encode(self, body: bytes) -> bytes:
        compress = self.settings.compress
        if compress is None:
            return body
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, compress, body)

    def _delivered(self, size: int, events: int) -> None:
        stats = self.stats
        stats.events_delivered += events
        stats.bytes_delivered += size
        stats.last_success = time.monotonic()
        if self.outage:
            self.outage = False
            log.info("outage_over")
        if stats.auth_failing:
            stats.auth_failing = False
            log.info("auth_recovered")
        if stats.endpoint_failing:
            log.info("endpoint_recovered", reason=stats.endpoint_failing)
            stats.endpoint_failing = ""


def _origins(body: bytes, spans: list[Span], locate: Locate) -> tuple[Origin, ...]:
    """Origins of the events in `spans`, one event at a time: only after a split."""
    runs: list[tuple[str, list[int]]] = []
    for start, end in spans:
        position = start
        while position < end:
            path, offset = locate(position)
            if runs and runs[-1][0] == path:
                runs[-1][1].append(offset)
            else:
                runs.append((path, [offset]))
            position = body.index(b"\n", position, end) + 1
    return tuple(Origin(path, offsets) for path, offsets in runs)


def _complement(base: int, size: int, done: list[Span]) -> list[Span]:
    """The spans of [base, base + size) that are not in `done`."""
    left: list[Span] = []
    position = base
    for start, end in sorted(done):
        if start > position:
            left.append((position, start))
        position = max(position, end)
    if position < base + size:
        left.append((position, base + size))
    return left


def _status(error: DeliveryError) -> int:
    return error.status if isinstance(error, Rejected) else 413


def _message(error: DeliveryError) -> str:
    return error.message if isinstance(error, Rejected) else str(error)


def _merge(spans: list[Span]) -> list[Span]:
    merged: list[Span] = []
    for start, end in spans:
        if merged and merged[-1][1] == start:
            merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    return merged


def _middle_newline(body: bytes) -> int | None:
    """An index just after a newline near the middle, or None for a single event."""
    trimmed = len(body) - 1 if body.endswith(b"\n") else len(body)
    half = trimmed // 2
    after = body.find(b"\n", half, trimmed)
    if after != -1:
        return after + 1
    before = body.rfind(b"\n", 0, half)
    return before + 1 if before != -1 else None
