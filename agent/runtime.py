"""The running agent: builds the stages once, runs them, and shuts them down in data-flow order.

    tailer ──► ByteQueue ──► Batcher ──► asyncio.Queue ──► Sender workers ──► Polaris
      ▲                                                        │   ▲
      │                                                  spool ▼   │ replayer
      └──── checkpoints ◄──── AckTracker ◄──── delivered, dead-lettered or spooled

Shutdown (SIGTERM/SIGINT): stop reading → seal the partial batch → drain the senders (no new
retries: what is not delivered goes to the spool; bounded by `shutdown_timeout`) → write
checkpoints. What was read but is neither delivered nor spooled stays behind the checkpoint
and is read again at the next start.

SIGHUP reloads the config file: each changed section goes to its component's `reconfigure`
(see `agent.reload`); a config with problems is refused with a logged reason and the old one
runs on. The runtime reads components through `snapshot()` and never sets their fields.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import signal
import sys
import time
from pathlib import Path
from typing import Any, Final

from agent.batch.batcher import Batcher
from agent.batch.queue import ByteQueue
from agent.config import Config, ConfigError, Problem, load_config, startup_warnings
from agent.delivery import Delivery
from agent.encode import EncodeLimits
from agent.kube import pod_cache
from agent.once import DEFAULT_ONCE_TIMEOUT, watch_stall
from agent.once import EVENTS as ONCE_EVENTS
from agent.once import outcome as once_outcome
from agent.ops.events import Event, Events, Label
from agent.ops.health import status_line
from agent.ops.logging import configure_logging
from agent.ops.sdnotify import Notifier, ping_watchdog
from agent.ops.snapshot import AgentSnapshot
from agent.readers import LazyJournals, file_sources
from agent.records import Batch, Piece
from agent.reload import (
    CONFIG_RELOADED,
    RELOAD_NEEDS_RESTART,
    RELOAD_REJECTED,
    RELOAD_SKIPPED,
    ReloadPlan,
    plan_reload,
)
from agent.reload import EVENTS as RELOAD_EVENTS
from agent.report import compose_snapshot, stop_summary
from agent.ship.retry import first_of, sleep_or_stop
from agent.state.acks import AckTracker
from agent.state.checkpoint import CHECKPOINT_EVENTS, CheckpointStore
from agent.state.deadletter import DeadLetterLimits, DeadLetters
from agent.state.files import UnsafeState, private_dir
from agent.state.layout import checkpoint_path, dead_letter_dir
from agent.tail.tailer import Tailer
from agent.tail.watch import watch_hints

STATUS_EVERY_SECS: Final = 10.0
SPOOL_SAVE_DELAY: Final = 0.01
EXIT_OK: Final = 0
EXIT_FAILED: Final = 1

AGENT_STARTED: Final = Event("agent_started", "The agent started its pipeline.")
AGENT_STOPPING: Final = Event(
    "agent_stopping",
    "A signal asked the agent to stop: reading ends, batches drain, checkpoints are saved.",
    labels=(
        Label(
            "signal",
            frozenset(
                {"SIGTERM", "SIGINT", "requested", "test", "once_timeout"}
                | {"auth_refused", "endpoint_refused"}
            ),
        ),
    ),
)
AGENT_STOPPED: Final = Event("agent_stopped", "The agent saved its checkpoints and stopped.")
DRAIN_TIMEOUT: Final = Event(
    "drain_timeout",
    "Senders did not finish within shutdown_timeout; what they held is read again at the "
    "next start (never lost, possibly sent twice).",
    level="warning",
)
CONFIG_WARNING: Final = Event(
    "config_warning",
    "A setting works but is risky, or a glob matches no file (see `polaris-agent check`).",
    level="warning",
)
ADMIN_LISTENING: Final = Event("admin_listening", "The admin endpoint is serving.")
ADMIN_FAILED: Final = Event(
    "admin_failed", "The admin endpoint could not listen on api.listen.", level="error"
)
EVENTS: Final = (
    AGENT_STARTED,
    AGENT_STOPPING,
    AGENT_STOPPED,
    DRAIN_TIMEOUT,
    CONFIG_WARNING,
    ADMIN_LISTENING,
    ADMIN_FAILED,
    *RELOAD_EVENTS,
    *CHECKPOINT_EVENTS,
    *ONCE_EVENTS,
)


def run_agent(
    config_path: Path, *, once: bool, once_timeout: float | None = DEFAULT_ONCE_TIMEOUT
) -> int:
    config = load_config(config_path)
    configure_logging(config.log)
    events = Events()
    for warning in startup_warnings(config_path, config):  # what `check` warns about, too
        events.emit(CONFIG_WARNING, key=warning.key, problem=warning.message)
    try:
        agent = Agent(config, config_path=config_path, events=events)
    except UnsafeState as exc:  # SPEC "Security": state the agent will not use is a config error
        raise ConfigError(str(config_path), [Problem("data_dir", str(exc))]) from None
    # What start-up built (modules, classes, the config) lives as long as the process: out of
    # the collector's sight, a full collection need not walk it again and again.
    gc.freeze()
    return asyncio.run(agent.run(once=once, once_timeout=once_timeout))


class Agent:
    """The whole object graph, built here once; `run` only starts and ends it."""

    def __init__(
        self,
        config: Config,
        *,
        config_path: Path | None = None,
        notifier: Notifier | None = None,
        events: Events | None = None,
    ) -> None:
        self.config = config
        self.config_path = config_path
        self.notifier = notifier or Notifier()
        self.events = events or Events()
        self.events.declare(*EVENTS)
        data_dir = private_dir(config.data_dir, follow=True)  # operators may link it elsewhere
        self.store = CheckpointStore(checkpoint_path(data_dir), events=self.events)
        self.acks = AckTracker()
        self.dead_letters = DeadLetters(dead_letter_dir(data_dir), dead_letter_limits(config))
        self.stopping = asyncio.Event()  # a signal arrived: no new reads, no new retries
        self.wake = asyncio.Event()  # look at the files now
        self.reload_requested = asyncio.Event()
        self.queue: ByteQueue[Piece] = ByteQueue(config.queue.max_bytes)
        # One sealed batch waits for a free worker; more would only hold megabytes in memory.
        self.batches: asyncio.Queue[Batch | None] = asyncio.Queue(1)
        self.batcher = Batcher(config.batch.max_bytes, config.batch.max_wait)
        self.pods = pod_cache(config, self.events)  # None unless a source asks the API
        self.tailer = Tailer(
            file_sources(config.sources),
            self.store.load(),
            acks=self.acks,
            dead_letters=self.dead_letters,
            emit=lambda piece: self.queue.put(piece, len(piece.data)),
            limits=EncodeLimits.for_batch(config.batch.max_bytes),
            pods=self.pods,
        )
        self.journals = LazyJournals(  # journald sources beside the tailer, loaded if any
            config.sources,
            data_dir,
            acks=self.acks,
            dead_letters=self.dead_letters,
            emit=lambda piece: self.queue.put(piece, len(piece.data)),
            piece_bytes=EncodeLimits.for_batch(config.batch.max_bytes).piece_bytes,
        )
        self.delivery = Delivery(
            config, data_dir, acks=self.acks, dead_letters=self.dead_letters, stopping=self.stopping
        )
        self._reading: asyncio.Task[None] | None = None
        self.started = time.monotonic()

    def __repr__(self) -> str:
        state = "stopping" if self.stopping.is_set() else "running"
        return f"<Agent {state} sources={len(self.config.sources)} {self.delivery!r}>"

    @property
    def reading(self) -> bool:
        """The reading task runs: /readyz's first condition."""
        return self._reading is not None and not self._reading.done()

    async def run(self, *, once: bool, once_timeout: float | None = DEFAULT_ONCE_TIMEOUT) -> int:
        self._install_signals()
        spool = self.delivery.spool
        self.events.emit(
            AGENT_STARTED,
            sources=[s.name for s in self.config.sources],
            endpoint=self.config.polaris.events_url(),
            mode="once" if once else "follow",
            spool=str(spool.directory) if spool is not None else None,
        )
        try:
            async with self.delivery, contextlib.AsyncExitStack() as stack:
                if self.config.api.listen and not await self._serve_admin(stack):
                    return EXIT_FAILED
                gave_up = await self._pipeline(once=once, once_timeout=once_timeout)
        finally:
            if not self.stopping.is_set():  # a signal already said STOPPING
                self.notifier.stopping()
            self._save()
            self.dead_letters.close()
            self.tailer.close()
        snap = self.snapshot()
        self.events.emit(AGENT_STOPPED, **stop_summary(snap, self.acks.outstanding()))
        if once:  # a backfill that did not deliver everything fails (agent/once.py)
            return once_outcome(
                snap, self.events, gave_up=gave_up, unacknowledged=self.acks.outstanding()
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
            self.events.emit(ADMIN_FAILED, error=str(exc))
            return False
        self.events.emit(ADMIN_LISTENING, url=admin.url)
        return True

    async def _pipeline(self, *, once: bool, once_timeout: float | None = None) -> bool:
        """Every stage in one TaskGroup, ended in data-flow order; True when `run --once`
        gave up (nothing delivered for `once_timeout` while data waited, or the key refused
        for `agent.once.AUTH_PATIENCE`)."""
        config, delivery = self.config, self.delivery
        done = asyncio.Event()  # the data has been made safe: background helpers end
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(self._save_every(config.checkpoint_interval, done))
            tasks.create_task(self._reload_on_request(done))
            tasks.create_task(delivery.sender.replay(done))
            tasks.create_task(ping_watchdog(self.notifier, done))
            tasks.create_task(self._status_every(done))
            stall = None
            if once and once_timeout:
                stall = tasks.create_task(
                    watch_stall(self.snapshot, self.events, self.request_stop, done, once_timeout)
                )
            if once and sys.stderr.isatty():
                from agent.ops.progress import show_progress  # a terminal's only

                tasks.create_task(show_progress(self.snapshot, done, sys.stderr))
            watcher: list[asyncio.Task[None]] = []

            def watch() -> None:
                """Start the filesystem hints (the first call does): a following agent at once,
                `run --once` when its tailer first waits - a backfill read to the end without
                waiting never loads watchfiles (40 ms of CPU, 1.5 MB)."""
                if not watcher:
                    hints = watch_hints(self.tailer.watch_roots, self.wake, done)
                    watcher.append(tasks.create_task(hints))

            if not once:
                watch()
            batcher = tasks.create_task(self.batcher.run(self.queue, self.batches))
            workers = [
                tasks.create_task(delivery.sender.work(self.batches))
                for _ in range(config.sender.workers)
            ]
            kube = tasks.create_task(self.pods.run()) if self.pods is not None else None
            if self.pods is not None:  # the pods already running: known before their lines
                await self.pods.wait_listed(config.kubernetes.startup_wait)
            tail = self.tailer.run(self.stopping, self.wake, once=once, before_waiting=watch)
            self._reading = tasks.create_task(self.journals.run_with(tail, once=once))
            self.notifier.ready(status_line(self.snapshot()))
            await asyncio.wait([self._reading])
            await self.queue.close()  # the batcher seals what is left and ends the stream
            await drain([batcher, *workers], self.stopping, config.shutdown_timeout, self.events)
            if once and delivery.spool is not None:
                await first_of(delivery.spool.wait_until_empty(), self.stopping.wait())
            done.set()
            for task in watcher:
                task.cancel()
            if kube is not None:
                kube.cancel()
        return stall is not None and stall.result()

    async def _save_every(self, interval: float, done: asyncio.Event) -> None:
        """Every `interval`, and right after batches were spooled: a spooled batch is read
        again after a crash until a checkpoint covers it, and then sent twice."""
        spooled = self.delivery.sender.spooled
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
        if self.dead_letters.unwritten:  # the disk refused some: their lines stay behind it
            return
        self.store.save(self.tailer.checkpoints())
        self.journals.save()  # the journald sources' cursors, only safe ones

    # -- what operators see --------------------------------------------------------------

    def snapshot(self) -> AgentSnapshot:
        """Everything /metrics, /readyz and the STATUS line show, read in one go."""
        return compose_snapshot(self)

    # -- signals and reload --------------------------------------------------------------

    def _install_signals(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop, sig.name)
        loop.add_signal_handler(signal.SIGHUP, self.reload_requested.set)

    def request_stop(self, why: str = "requested") -> None:
        if self.stopping.is_set():
            return
        self.events.emit(AGENT_STOPPING, signal=why, timeout=self.config.shutdown_timeout)
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
            self.events.emit(RELOAD_SKIPPED, reason="no config file")
            return False
        try:
            new = load_config(self.config_path)
        except ConfigError as exc:
            self.events.emit(RELOAD_REJECTED, problems=[str(p) for p in exc.problems])
            return False
        except OSError as exc:
            problems = [f"{self.config_path}: {exc.strerror}"]
            self.events.emit(RELOAD_REJECTED, problems=problems)
            return False
        old, self.config = self.config, new
        plan = plan_reload(old, new)
        await self._apply(plan, new)
        self.events.emit(CONFIG_RELOADED, applied=list(plan.live))
        if plan.later:
            self.events.emit(RELOAD_NEEDS_RESTART, keys=list(plan.later))
        return True

    async def _apply(self, plan: ReloadPlan, new: Config) -> None:
        """Hand each changed section to the component that owns it."""
        if "log" in plan:
            configure_logging(new.log)
        if "sources" in plan or "batch" in plan:
            limits = EncodeLimits.for_batch(new.batch.max_bytes)
            self.tailer.reconfigure(file_sources(new.sources), limits)
            self.journals.reconfigure(new.sources, limits.piece_bytes)
            self.wake.set()
        if "batch" in plan:
            self.batcher.reconfigure(new.batch)
        if "dead_letter" in plan:  # its directory follows data_dir: a restart moves it
            self.dead_letters.reconfigure(dead_letter_limits(new))
        await self.delivery.reconfigure(plan, new)


def dead_letter_limits(config: Config) -> DeadLetterLimits:
    bounds = config.dead_letter
    return DeadLetterLimits(bounds.max_size, bounds.max_age, bounds.log_interval)


async def drain(
    tasks: list[asyncio.Task[None]], stopping: asyncio.Event, grace: float, events: Events
) -> None:
    """Let the senders finish: unbounded in `--once` mode, bounded by `grace` once stopping
    (what they still hold is read again at the next start)."""
    work: asyncio.Future[Any] = asyncio.gather(*tasks, return_exceptions=True)
    stop_clock: asyncio.Future[Any] = asyncio.ensure_future(stopping.wait())
    try:
        await asyncio.wait([work, stop_clock], return_when=asyncio.FIRST_COMPLETED)
    finally:
        stop_clock.cancel()
    if work.done():
        return
    _done, pending = await asyncio.wait(tasks, timeout=grace)
    if pending:
        events.emit(DRAIN_TIMEOUT, abandoned_tasks=len(pending), seconds=grace)
        for task in pending:
            task.cancel()
        await asyncio.wait(pending)
