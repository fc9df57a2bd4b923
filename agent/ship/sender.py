"""Batches -> Polaris: a pool of workers that deliver each batch, spool it, or keep it
unacknowledged.

Nothing here knows about files. A batch carries tickets; a worker completes them once every
byte of the batch is safe: acknowledged by Polaris, written to a dead letter (an event Polaris
can never take), or written to the disk spool (retries ran out, the key is refused, the
endpoint is known to be down, or the agent is stopping). Without a spool, a batch that is not
delivered is never acknowledged: its lines stay behind the checkpoint and are read again
after a restart.

The sending itself is a chain of small parts, each in its own module:

    Attempt (one request: pace, post, classify)
      -> RetryPolicy (reads `error.retryable`; one RetryBudget, one deadline, per batch)
        -> Splitter (halves what Polaris refuses for its content; dead-letters bad events)
          -> Sender (this module: spool on give-up, tickets, replay)

While an outage lasts (a batch gave up), live batches go straight to the spool instead of
each waiting out its own retries; the replayer is then the only thing probing the endpoint,
oldest spooled batch first, and its first success ends the outage.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from enum import Enum

import structlog

from agent.records import Batch, Ticket
from agent.ship.attempt import Attempt, Sent
from agent.ship.client import Poster
from agent.ship.compress import Compressor
from agent.ship.errors import DeliveryError
from agent.ship.health import EndpointHealth
from agent.ship.payload import Payload, PayloadDamaged, Span
from agent.ship.policy import RetryBudget, RetryPolicy
from agent.ship.ratelimit import Pacer
from agent.ship.retry import Backoff, first_of
from agent.ship.split import Splitter
from agent.ship.spool import Spool, SpoolFile
from agent.ship.stats import SenderSnapshot, SendStats
from agent.state.acks import AckTracker
from agent.state.deadletter import DeadLetters

log = structlog.get_logger("agent.sender")


@dataclass(frozen=True, slots=True)
class SenderSettings:
    connection: str
    compress: Callable[[bytes], bytes] | None
    retry_initial: float
    retry_max: float
    spool_after: float = 30.0  # how long a batch retries before it goes to the spool


@dataclass(frozen=True, slots=True)
class Job:
    """A batch a worker took: its payload (compressed once a thread was free for it) and
    the tickets its delivery (or spooling) completes. The batch itself is not kept."""

    seq: int
    payload: Payload
    tickets: list[Ticket]


class Placed(Enum):
    """Where the undelivered part of a batch ended up after it was given up to the spool."""

    SPOOLED = "spooled"
    DELIVERED = "delivered"  # the spool's disk refused it and Polaris took it meanwhile
    ABANDONED = "abandoned"  # stopping first: kept behind the checkpoint


@dataclass(slots=True)
class _Offer:
    """The spool's `meanwhile` for one batch the disk refuses: offer it to Polaris, and
    remember whether Polaris took it."""

    sender: Sender
    payload: Payload
    delivered: bool = False

    async def __call__(self) -> bool:
        self.delivered = await self.sender.offer(self.payload)
        if self.delivered:
            log.info("spool_refused_batch_delivered", events=self.payload.events)
        return self.delivered


class Sender:
    def __init__(
        self,
        client: Poster,
        pacer: Pacer,
        settings: SenderSettings,
        *,
        acks: AckTracker,
        dead_letters: DeadLetters,
        executor: Executor,
        stopping: asyncio.Event,
        spool: Spool | None = None,
        compress_threads: int = 1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.stats = SendStats()
        self.health = EndpointHealth(clock)
        self._acks = acks
        self._stopping = stopping
        self._spool = spool
        self._clock = clock
        self._compressor = Compressor(settings.compress, executor)
        self._attempt = Attempt(
            client,
            default_connection=settings.connection,
            stats=self.stats,
            health=self.health,
            stopping=stopping,
            pacer=pacer,
        )
        self._policy = RetryPolicy(
            self._attempt,
            self._compressor,
            stats=self.stats,
            health=self.health,
            stopping=stopping,
        )
        self._splitter = Splitter(
            self._policy,
            self._attempt,
            health=self.health,
            dead_letters=dead_letters,
            stats=self.stats,
            stopping=stopping,
        )
        # A worker takes a batch only when a compression thread is free for it: batches
        # waiting for one wait in the queue as pieces, not joined in every idle worker.
        self._compressing = asyncio.Semaphore(compress_threads)
        self._spooling = asyncio.Lock()
        self.in_flight = 0  # batches taken by a worker and not yet safe
        self.spooled = asyncio.Event()  # set after a spool write: checkpoint soon (see runtime)

    def __repr__(self) -> str:
        state = "outage" if self.health.outage else "ok"
        return f"<Sender {self.settings.connection} {state} in_flight={self.in_flight}>"

    @property
    def outage(self) -> bool:
        return self.health.outage

    @property
    def client(self) -> Poster:
        return self._attempt.client

    async def reconfigure(
        self, settings: SenderSettings, client: Poster | None = None, pacer: Pacer | None = None
    ) -> None:
        """Apply reloaded settings (retry, spool.after, compression, the default connection)
        to the next batch; with `client` (a changed [polaris]), send through it from now on;
        the old one is closed once the requests still out on it have their answers."""
        self.settings = settings
        self._compressor.compress = settings.compress
        self._attempt.default_connection = settings.connection
        if client is not None:
            await self._attempt.replace_client(client, pacer)

    def snapshot(self) -> SenderSnapshot:
        stats, health = self.stats, self.health
        return SenderSnapshot(
            requests=dict(stats.requests),
            transport_errors=stats.transport_errors,
            retries=stats.retries,
            splits=stats.splits,
            batches_delivered=stats.batches_delivered,
            batches_spooled=stats.batches_spooled,
            events_delivered=stats.events_delivered,
            bytes_delivered=stats.bytes_delivered,
            bytes_posted=stats.bytes_posted,
            latency=stats.latency.frozen(),
            connections=tuple(c.frozen(n) for n, c in sorted(stats.connections.items())),
            auth_failing=health.auth_failing,
            endpoint_refusing=health.endpoint_failing,
            last_success=health.last_success,
            outage=health.outage,
            in_flight=self.in_flight,
            ratelimit_remaining=self._attempt.default_pacer.remaining,
        )

    async def work(self, batches: asyncio.Queue[Batch | None]) -> None:
        """One worker: take batches until the None that says there are no more."""
        while (job := await self._take(batches)) is not None:
            try:
                await self._handle(job)
            finally:
                self.in_flight -= 1
                del job  # waiting for the next one must not keep this one's bytes alive

    async def _take(self, batches: asyncio.Queue[Batch | None]) -> Job | None:
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
                # "" (the default connection) stays unresolved until it is posted
                job = Job(batch.seq, Payload.of_batch(batch, batch.connection), batch.tickets)
                del batch  # only the payload holds the bytes now
                if self.outage and self._spool is not None:
                    try:
                        await self._handle(job)  # straight to the spool, uncompressed
                    finally:
                        self.in_flight -= 1
                        del job  # not kept alive while the next one is awaited
                    continue
                try:
                    # Only the compressed bytes are kept while the request is out: a split,
                    # a spool write's origins or a dead letter inflates them again.
                    return Job(job.seq, await self._compressor(job.payload), job.tickets)
                except BaseException:
                    self.in_flight -= 1
                    raise

    def _budget(self, *, may_spool: bool) -> RetryBudget:
        """One deadline and one backoff for a batch and every split half of it."""
        settings = self.settings
        spool_at = None
        if may_spool and self._spool is not None:
            spool_at = self._clock() + settings.spool_after
        backoff = Backoff(settings.retry_initial, settings.retry_max)
        return RetryBudget(backoff, spool_at, self._clock)

    async def _handle(self, job: Job) -> None:
        left = await self._splitter.deliver(job.payload, self._budget(may_spool=True))
        if not left:
            self.stats.batches_delivered += 1
        else:
            placed = await self._to_spool(job.payload, left)
            if placed is Placed.ABANDONED:
                log.info("batch_abandoned_at_shutdown", batch=job.seq, events=job.payload.events)
                return
            if placed is Placed.DELIVERED:
                self.stats.batches_delivered += 1
        for ticket in job.tickets:
            self._acks.complete(ticket)

    async def _to_spool(self, payload: Payload, left: list[Span]) -> Placed:
        """Write the undelivered spans of `payload` to the spool; SPOOLED once they are
        durable. A payload left whole is written as it is (its gzip, not compressed again).
        One at a time: when an outage begins, every worker gives up at once. While the disk
        refuses the write, the spans are offered to Polaris before each wait for the disk:
        DELIVERED when Polaris takes them first (no spool file then holds them to replay,
        so without this nothing would probe the endpoint while the disk stays full)."""
        if self._spool is None:
            return Placed.ABANDONED
        async with self._spooling:
            rest = payload if left == [(0, payload.size)] else payload.rest(payload.body, left)
            offer = _Offer(self, rest)
            if await self._spool.put(rest, self._stopping, meanwhile=offer):
                self.stats.batches_spooled += 1
                self.spooled.set()
                return Placed.SPOOLED
        return Placed.DELIVERED if offer.delivered else Placed.ABANDONED

    async def offer(self, payload: Payload) -> bool:
        """One try to deliver `payload` now, past the outage (which only a success ends);
        True when every event of it is safe. A refusal of its content is split and sent as
        a replayed batch is (retried until it is delivered or dead-lettered, or stopping)."""
        prepared = await self._compressor(payload)
        outcome = await self._attempt(prepared)
        if outcome is Sent.DELIVERED:
            return True
        if isinstance(outcome, DeliveryError) and not outcome.retryable:
            return not await self._splitter.deliver(prepared, self._budget(may_spool=False))
        if isinstance(outcome, DeliveryError):
            self.stats.retries += 1
        return False

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
            try:
                left = await self._splitter.deliver(entry, self._budget(may_spool=False))
            except PayloadDamaged as exc:
                await spool.quarantine_file(file, str(exc))
                return True
            if left:
                return False
            await spool.remove(file)
        finally:
            spool.release(file)
        log.info("spool_replayed", file=file.name, events=entry.events)
        return True
