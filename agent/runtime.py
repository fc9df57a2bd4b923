"""The running agent: wires the stages together and shuts them down in data-flow order.

    tailer ──► ByteQueue ──► Batcher ──► asyncio.Queue ──► Sender workers ──► Polaris
      ▲                                                        │   ▲
      │                                                  spool ▼   │ replayer
      └──── checkpoints ◄──── AckTracker ◄──── delivered, dead-lettered or spooled

Shutdown (SIGTERM/SIGINT): stop reading → seal the partial batch → drain the senders (no new
retries: what is not delivered goes to the spool; bounded by `shutdown_timeout`) → write
checkpoints. What was read but is neither delivered nor spooled stays behind the checkpoint
and is read again at the next start.

SIGHUP reloads the config file: sources, endpoint, batching, retry, spool policy and logging
apply at once; a config with problems is refused with a logged reason and the old one runs on.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import structlog

from agent.batch.batcher import Batcher
from agent.batch.queue import ByteQueue
from agent.config import Config, ConfigError, Problem, load_config, startup_warnings
from agent.ops.health import status_line
from agent.ops.logging import configure_logging
from agent.ops.sdnotify import Notifier, ping_watchdog
from agent.ops.snapshot import AgentSnapshot
from agent.records import Batch, Piece
from agent.ship.compress import compression_threads, gzip_compressor
from agent.ship.http import EventsClient
from agent.ship.ratelimit import Pacer
from agent.ship.retry import first_of, sleep_or_stop
from agent.ship.sender import Sender, SenderSettings
from agent.ship.spool import Spool, SpoolStats
from agent.state.acks import AckTracker
from agent.state.checkpoint import CheckpointStore
from agent.state.deadletter import DeadLetters
from agent.state.files import UnsafeState, private_dir
from agent.state.layout import checkpoint_path, dead_letter_dir, spool_dir
from agent.tail.tailer import Tailer
from agent.tail.watch import watch_hints

log = structlog.get_logger("agent")

PIECES_PER_BATCH = 8
"""Pieces are an eighth of a batch (125,000 bytes of a full 1,000,000), so eight fill it to
the byte; fewer, larger pieces cost less per byte on the way (a ticket, a queue hand-off, a
batch slot each)."""
STATUS_EVERY_SECS = 10.0
SPOOL_SAVE_DELAY = 0.01
EXIT_OK = 0
EXIT_FAILED = 1

RESTART_ONLY = ("data_dir", "queue", "api", "checkpoint_interval")
"""Settings a reload cannot change in a running agent: said in the log, applied at restart."""


def run_agent(config_path: Path, *, once: bool) -> int:
    config = load_config(config_path)
    configure_logging(config.log)
    for warning in startup_warnings(config_path, config):  # what `check` warns about, too
        log.warning("config_warning", key=warning.key, problem=warning.message)
    try:
        agent = Agent(config, config_path=config_path)
    except UnsafeState as exc:  # SPEC "Security": state the agent will not use is a config error
        raise ConfigError(str(config_path), [Problem("data_dir", str(exc))]) from None
    # What start-up built (modules, classes, the config) lives as long as the process: out of
    # the collector's sight, a full collection need not walk it again and again.
    gc.freeze()
    return asyncio.run(agent.run(once=once))


def sender_settings(config: Config) -> SenderSettings:
    return SenderSettings(
        connection=config.polaris.connection,
        compress=gzip_compressor(config.sender.compression_level)
        if config.sender.compression == "gzip"
        else None,
        retry_initial=config.sender.retry_initial,
        retry_max=config.sender.retry_max,
        spool_after=config.spool.after,
    )


class Agent:
    def __init__(
        self,
        config: Config,
        *,
        config_path: Path | None = None,
        notifier: Notifier | None = None,
    ) -> None:
        self.config = config
        self.config_path = config_path
        self.notifier = notifier or Notifier()
        data_dir = private_dir(config.data_dir, follow=True)  # operators may link it elsewhere
        self.store = CheckpointStore(checkpoint_path(data_dir))
        self.acks = AckTracker()
        self.dead_letters = DeadLetters(dead_letter_dir(data_dir))
        self.spool = (
            Spool(spool_dir(data_dir), config.spool.max_size, config.spool.when_full)
            if config.spool.enabled
            else None
        )
        self.queue: ByteQueue[Piece] = ByteQueue(config.queue.max_bytes)
        # One sealed batch waits for a free worker; more would only hold megabytes in memory.
        self.batches: asyncio.Queue[Batch | None] = asyncio.Queue(1)
        self.batcher = Batcher(config.batch.max_bytes, config.batch.max_wait)
        self.tailer = Tailer(
            config.sources,
            self.store.load(),
            acks=self.acks,
            queue=self.queue,
            dead_letters=self.dead_letters,
            max_event_bytes=config.batch.max_bytes,
            piece_bytes=max(config.batch.max_bytes // PIECES_PER_BATCH, 1024),
        )
        self.stopping = asyncio.Event()  # a signal arrived: no new reads, no new retries
        self.wake = asyncio.Event()  # look at the files now
        self.reload_requested = asyncio.Event()
        self.sender: Sender | None = None
        self._clients: list[EventsClient] = []
        self._reading: asyncio.Task[None] | None = None
        self._started = time.monotonic()

    def __repr__(self) -> str:
        state = "stopping" if self.stopping.is_set() else "running"
        return f"<Agent {state} sources={len(self.config.sources)} {self.sender!r}>"

    async def run(self, *, once: bool) -> int:
        config = self.config
        self._install_signals()
        log.info(
            "agent_started",
            sources=[s.name for s in config.sources],
            endpoint=config.polaris.events_url(),
            mode="once" if once else "follow",
            spool=str(self.spool.directory) if self.spool is not None else None,
        )
        threads = compression_threads(config.sender.workers)
        executor = ThreadPoolExecutor(threads, thread_name_prefix="compress")
        client = EventsClient(config.polaris, connections=config.sender.workers)
        self._clients.append(client)
        sender = self.sender = Sender(
            client,
            Pacer(),
            sender_settings(config),
            acks=self.acks,
            dead_letters=self.dead_letters,
            executor=executor,
            stopping=self.stopping,
            spool=self.spool,
            compress_threads=threads,
        )
        try:
            async with client, contextlib.AsyncExitStack() as stack:
                if config.api.listen and not await self._serve_admin(stack):
                    return EXIT_FAILED
                await self._pipeline(sender, once=once)
        finally:
            if not self.stopping.is_set():  # a signal already said STOPPING
                self.notifier.stopping()
            executor.shutdown(wait=False, cancel_futures=True)
            self._save()
            self.dead_letters.close()
            self.tailer.close()
            for extra in self._clients[1:]:
                await extra.__aexit__(None, None, None)
        log.info(
            "agent_stopped",
            seconds=round(time.monotonic() - self._started, 3),
            events_read=self.tailer.stats.events,
            events_delivered=sender.stats.events_delivered,
            batches_spooled=sender.stats.batches_spooled,
            spooled_files_left=self.spool.stats.files if self.spool is not None else 0,
            dead_letters=self.dead_letters.count,
            unacknowledged=self.acks.outstanding(),
        )
        return EXIT_OK

    async def _serve_admin(self, stack: contextlib.AsyncExitStack) -> bool:
        """Start the admin endpoint; False (logged) when its address cannot be bound. Imported
        here: aiohttp's server and prometheus_client cost memory only when asked for."""
        from agent.ops.admin import AdminError, serve_admin

        try:
            admin = await stack.enter_async_context(
                serve_admin(self.config.api.listen, self.snapshot)
            )
        except AdminError as exc:
            log.error("admin_failed", error=str(exc))
            return False
        log.info("admin_listening", url=admin.url)
        return True

    async def _pipeline(self, sender: Sender, *, once: bool) -> None:
        """Every stage in one TaskGroup, ended in data-flow order."""
        config = self.config
        done = asyncio.Event()  # the data has been made safe: background helpers end
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(self._save_every(config.checkpoint_interval, done))
            tasks.create_task(self._reload_on_request(done))
            tasks.create_task(sender.replay(done))
            tasks.create_task(ping_watchdog(self.notifier, done))
            tasks.create_task(self._status_every(done))
            watcher = tasks.create_task(watch_hints(self.tailer.watch_roots, self.wake, done))
            batcher = tasks.create_task(self.batcher.run(self.queue, self.batches))
            workers = [
                tasks.create_task(sender.work(self.batches)) for _ in range(config.sender.workers)
            ]
            self._reading = tasks.create_task(self.tailer.run(self.stopping, self.wake, once=once))
            self.notifier.ready(status_line(self.snapshot()))
            await asyncio.wait([self._reading])
            await self.queue.close()  # the batcher seals what is left and ends the stream
            await self._drain([batcher, *workers])
            if once and self.spool is not None:
                await first_of(self.spool.wait_until_empty(), self.stopping.wait())
            done.set()
            watcher.cancel()

    async def _drain(self, tasks: list[asyncio.Task[None]]) -> None:
        """Let the senders finish: unbounded in `--once` mode, bounded once stopping."""
        work: asyncio.Future[Any] = asyncio.gather(*tasks, return_exceptions=True)
        stop_clock: asyncio.Future[Any] = asyncio.ensure_future(self.stopping.wait())
        try:
            await asyncio.wait([work, stop_clock], return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop_clock.cancel()
        if work.done():
            return
        timeout = self.config.shutdown_timeout
        _done, pending = await asyncio.wait(tasks, timeout=timeout)
        if pending:
            log.warning("drain_timeout", abandoned_tasks=len(pending), seconds=timeout)
            for task in pending:
                task.cancel()
            await asyncio.wait(pending)

    async def _save_every(self, interval: float, done: asyncio.Event) -> None:
        """Every `interval`, and right after batches were spooled: a spooled batch is read
        again after a crash until a checkpoint covers it, and then sent twice."""
        assert self.sender is not None
        spooled = self.sender.spooled
        saved_version = -1
        while True:
            await first_of(sleep_or_stop(done, interval), spooled.wait())
            if done.is_set():
                return
            if spooled.is_set():
                spooled.clear()
                await asyncio.sleep(SPOOL_SAVE_DELAY)  # let a burst of spool writes finish
            if self.acks.version != saved_version:
                saved_version = self.acks.version
                self._save()

    async def _status_every(self, done: asyncio.Event) -> None:
        if not self.notifier.enabled:
            return
        while not await sleep_or_stop(done, STATUS_EVERY_SECS):
            self.notifier.status(status_line(self.snapshot()))

    def _save(self) -> None:
        self.dead_letters.sync()  # a checkpoint may only move past lines durably dead-lettered
        self.store.save(self.tailer.checkpoints())

    # -- what operators see --------------------------------------------------------------

    def snapshot(self) -> AgentSnapshot:
        """Everything /metrics, /readyz and the STATUS line show, read in one go."""
        assert self.sender is not None, "snapshot() is for a running agent"
        stats = self.sender.stats
        spool = self.spool.stats if self.spool is not None else SpoolStats()
        requests = {str(status): count for status, count in stats.requests.items()}
        if stats.transport_errors:
            requests["transport_error"] = stats.transport_errors
        return AgentSnapshot(
            sources=self.tailer.source_snapshots(),
            events_sent=stats.events_delivered,
            bytes_sent=stats.bytes_delivered,
            bytes_posted=stats.bytes_posted,
            requests=requests,
            retries=stats.retries,
            ratelimit_remaining=self.sender.pacer.remaining,
            queue_bytes=self.queue.bytes,
            in_flight_batches=self.sender.in_flight + self.batches.qsize(),
            spool_bytes=spool.bytes,
            spool_files=spool.files,
            spool_max_bytes=self.spool.max_bytes if self.spool is not None else 0,
            spool_corrupt_files=spool.corrupt,
            dead_letters=dict(self.dead_letters.by_reason),
            drops={"spool_full": spool.dropped_events},
            request_latency=stats.latency.frozen(),
            auth_failing=stats.auth_failing,
            endpoint_refusing=stats.endpoint_failing,
            seconds_since_success=time.monotonic() - stats.last_success
            if stats.last_success
            else None,
            uptime_seconds=time.monotonic() - self._started,
        )

    # -- signals and reload --------------------------------------------------------------

    def _install_signals(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop, sig.name)
        loop.add_signal_handler(signal.SIGHUP, self.reload_requested.set)

    def request_stop(self, why: str = "requested") -> None:
        if self.stopping.is_set():
            return
        log.info("agent_stopping", signal=why, timeout=self.config.shutdown_timeout)
        self.notifier.stopping()
        self.stopping.set()
        self.wake.set()
        if self._reading is not None:
            self._reading.cancel()  # it may be waiting for room in a full queue

    async def _reload_on_request(self, done: asyncio.Event) -> None:
        while True:
            await first_of(self.reload_requested.wait(), done.wait())
            if done.is_set():
                return
            self.reload_requested.clear()
            self.notifier.reloading()
            try:
                await self.reload()
            finally:
                self.notifier.ready(status_line(self.snapshot()))

    async def reload(self) -> bool:
        """Read the config file again and apply it; False (old config kept) on problems."""
        if self.config_path is None:
            log.warning("reload_skipped", reason="no config file")
            return False
        try:
            new = load_config(self.config_path)
        except ConfigError as exc:
            log.error("reload_rejected", problems=[str(p) for p in exc.problems])
            return False
        except OSError as exc:
            log.error("reload_rejected", problems=[f"{self.config_path}: {exc.strerror}"])
            return False
        old, self.config = self.config, new
        await self._apply(old, new)
        return True

    async def _apply(self, old: Config, new: Config) -> None:
        assert self.sender is not None
        applied: list[str] = []
        if new.log != old.log:
            configure_logging(new.log)
            applied.append("log")
        if new.sources != old.sources:
            self.tailer.reconfigure(new.sources)
            self.wake.set()
            applied.append("sources")
        if new.polaris != old.polaris:
            client = EventsClient(new.polaris, connections=new.sender.workers)
            await client.__aenter__()
            self._clients.append(client)  # the old one may still carry requests: closed at exit
            self.sender.client = client
            applied.append("polaris")
        if (new.sender, new.spool, new.polaris) != (old.sender, old.spool, old.polaris):
            self.sender.settings = sender_settings(new)
            applied.append("sender")
        if new.batch != old.batch:
            self.batcher.max_bytes = new.batch.max_bytes
            self.batcher.max_wait = new.batch.max_wait
            applied.append("batch")
        if self.spool is not None and new.spool != old.spool:
            self.spool.max_bytes = new.spool.max_size
            self.spool.when_full = new.spool.when_full
            applied.append("spool")
        later = [key for key in RESTART_ONLY if getattr(new, key) != getattr(old, key)]
        if new.sender.workers != old.sender.workers:
            later.append("sender.workers")
        if new.spool.enabled != old.spool.enabled:
            later.append("spool.enabled")
        log.info("config_reloaded", applied=applied)
        if later:
            log.warning("reload_needs_restart", keys=later)
