"""The running agent: wires the stages together and shuts them down in data-flow order.

    tailer ──► ByteQueue ──► Batcher ──► asyncio.Queue ──► Sender workers ──► Polaris
      ▲                                                        │
      └──── checkpoints ◄──── AckTracker ◄──── acknowledged ◄──┘

Shutdown (SIGTERM/SIGINT): stop reading → seal the partial batch → drain the senders (no
new retries, bounded by `shutdown_timeout`) → write checkpoints. What was read but not
delivered stays behind the checkpoint and is read again at the next start.
"""

from __future__ import annotations

import asyncio
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import structlog

from agent.batch.batcher import Batcher
from agent.batch.queue import ByteQueue
from agent.config import Config, load_config
from agent.ops.logging import configure_logging
from agent.records import Batch, Piece
from agent.ship.compress import gzip_compressor
from agent.ship.http import EventsClient
from agent.ship.ratelimit import Pacer
from agent.ship.retry import sleep_or_stop
from agent.ship.sender import Sender, SenderSettings
from agent.state.acks import AckTracker
from agent.state.checkpoint import CheckpointStore
from agent.state.deadletter import DeadLetters
from agent.state.files import private_dir
from agent.state.status import checkpoint_path, dead_letter_dir
from agent.tail.tailer import Tailer
from agent.tail.watch import watch_hints

log = structlog.get_logger("agent")

PIECE_BYTES = 64 * 1024
"""Pieces are small next to a batch so that batches fill to within a piece of max_bytes."""


def run_agent(config_path: Path, *, once: bool) -> int:
    config = load_config(config_path)
    configure_logging(config.log)
    return asyncio.run(Agent(config).run(once=once))


class Agent:
    def __init__(self, config: Config) -> None:
        self.config = config
        data_dir = private_dir(config.data_dir)
        self.store = CheckpointStore(checkpoint_path(data_dir))
        self.acks = AckTracker()
        self.dead_letters = DeadLetters(dead_letter_dir(data_dir))
        self.queue: ByteQueue[Piece] = ByteQueue(config.queue.max_bytes)
        self.batches: asyncio.Queue[Batch | None] = asyncio.Queue(config.sender.workers)
        self.tailer = Tailer(
            config.sources,
            self.store.load(),
            acks=self.acks,
            queue=self.queue,
            dead_letters=self.dead_letters,
            max_event_bytes=config.batch.max_bytes,
            piece_bytes=min(PIECE_BYTES, config.batch.max_bytes),
        )
        self.stopping = asyncio.Event()  # a signal arrived: no new reads, no new retries
        self.wake = asyncio.Event()  # look at the files now
        self._reading: asyncio.Task[None] | None = None

    async def run(self, *, once: bool) -> int:
        config = self.config
        started = time.monotonic()
        self._install_signals()
        log.info(
            "agent_started",
            sources=[s.name for s in config.sources],
            endpoint=config.polaris.events_url(),
            mode="once" if once else "follow",
        )
        executor = ThreadPoolExecutor(config.sender.workers, thread_name_prefix="compress")
        client = EventsClient(config.polaris, connections=config.sender.workers)
        sender = Sender(
            client,
            Pacer(),
            SenderSettings(
                connection=config.polaris.connection,
                compress=gzip_compressor(config.sender.compression_level)
                if config.sender.compression == "gzip"
                else None,
                retry_initial=config.sender.retry_initial,
                retry_max=config.sender.retry_max,
            ),
            acks=self.acks,
            dead_letters=self.dead_letters,
            executor=executor,
            stopping=self.stopping,
        )
        saver_done = asyncio.Event()
        try:
            async with client, asyncio.TaskGroup() as tasks:
                tasks.create_task(self._save_every(config.checkpoint_interval, saver_done))
                watcher = tasks.create_task(
                    watch_hints(self.tailer.watch_roots, self.wake, saver_done)
                )
                batcher = tasks.create_task(
                    Batcher(config.batch.max_bytes, config.batch.max_wait).run(
                        self.queue, self.batches
                    )
                )
                workers = [
                    tasks.create_task(sender.work(self.batches))
                    for _ in range(config.sender.workers)
                ]
                self._reading = tasks.create_task(
                    self.tailer.run(self.stopping, self.wake, once=once)
                )
                await asyncio.wait([self._reading])
                await self.queue.close()  # the batcher seals what is left and ends the stream
                await self._drain([batcher, *workers])
                saver_done.set()
                watcher.cancel()
        finally:
            executor.shutdown(wait=False, cancel_futures=True)
            self._save()
            self.dead_letters.close()
            self.tailer.close()
        log.info(
            "agent_stopped",
            seconds=round(time.monotonic() - started, 3),
            events_read=self.tailer.stats.events,
            events_delivered=sender.stats.events_delivered,
            dead_letters=self.dead_letters.count,
            unacknowledged=self.acks.outstanding(),
        )
        return 0

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
        saved_version = -1
        while not await sleep_or_stop(done, interval):
            if self.acks.version != saved_version:
                saved_version = self.acks.version
                self._save()

    def _save(self) -> None:
        self.dead_letters.sync()  # a checkpoint may only move past lines durably dead-lettered
        self.store.save(self.tailer.checkpoints())

    def _install_signals(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop, sig.name)
        loop.add_signal_handler(signal.SIGHUP, self._reload_requested)

    def request_stop(self, why: str = "requested") -> None:
        if self.stopping.is_set():
            return
        log.info("agent_stopping", signal=why, timeout=self.config.shutdown_timeout)
        self.stopping.set()
        self.wake.set()
        if self._reading is not None:
            self._reading.cancel()  # it may be waiting for room in a full queue

    def _reload_requested(self) -> None:
        log.warning("reload_not_supported", detail="restart the agent to apply a new config")
