"""The sending half of the agent as one unit: the events client, the compression threads, the
sender and the spool, built from the config once and reconfigured on reload.

A reload that changes `[polaris]` needs a new HTTP client (the URL, key and TLS settings are
fixed per aiohttp session): the sender moves to it at once, and the old one is closed as soon
as no request can still be using it (one `polaris.request_timeout` later, or at exit), so
reloads do not pile up clients until the process ends.
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import TracebackType

from agent.config import Config
from agent.reload import ReloadPlan
from agent.ship.compress import compression_threads, gzip_compressor
from agent.ship.http import EventsClient
from agent.ship.ratelimit import Pacer
from agent.ship.retry import first_of, sleep_or_stop
from agent.ship.sender import Sender, SenderSettings
from agent.ship.spool import Spool
from agent.state.acks import AckTracker
from agent.state.deadletter import DeadLetters
from agent.state.layout import spool_dir


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


class Delivery:
    """Owns what the ship stage needs for the life of `run`: enter it to open the client,
    leave it to close every client and stop the compression threads."""

    def __init__(
        self,
        config: Config,
        data_dir: Path,
        *,
        acks: AckTracker,
        dead_letters: DeadLetters,
        stopping: asyncio.Event,
    ) -> None:
        self.spool = (
            Spool(spool_dir(data_dir), config.spool.max_size, config.spool.when_full)
            if config.spool.enabled
            else None
        )
        threads = compression_threads(config.sender.workers)
        self._executor = ThreadPoolExecutor(threads, thread_name_prefix="compress")
        self._client = EventsClient(config.polaris, connections=config.sender.workers)
        self.sender = Sender(
            self._client,
            Pacer(),
            sender_settings(config),
            acks=acks,
            dead_letters=dead_letters,
            executor=self._executor,
            stopping=stopping,
            spool=self.spool,
            compress_threads=threads,
        )
        self._retired: list[tuple[EventsClient, float]] = []  # (client, close at monotonic)
        self._retiring = asyncio.Event()

    def __repr__(self) -> str:
        return f"<Delivery {self.sender!r} spool={self.spool!r} retired={len(self._retired)}>"

    async def __aenter__(self) -> Delivery:
        await self._client.__aenter__()
        return self

    async def __aexit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            for client in [self._client, *(c for c, _ in self._retired)]:
                await client.__aexit__(None, None, None)
            self._retired.clear()
        finally:
            self._executor.shutdown(wait=False, cancel_futures=True)

    async def reconfigure(self, plan: ReloadPlan, new: Config) -> None:
        """Apply the reloaded `[polaris]`, `[sender]` and `[spool]` sections."""
        if "polaris" in plan:
            client = EventsClient(new.polaris, connections=new.sender.workers)
            await client.__aenter__()
            old, self._client = self._client, client
            await self.sender.reconfigure(sender_settings(new), client)
            self._retire(old, new.polaris.request_timeout)
        if "sender" in plan:
            await self.sender.reconfigure(sender_settings(new))
        if "spool" in plan and self.spool is not None:
            self.spool.reconfigure(new.spool)

    def _retire(self, client: EventsClient, grace: float) -> None:
        """Close `client` once every request that may be on it has ended: each ends within
        its timeout, and no new one starts on it."""
        self._retired.append((client, time.monotonic() + grace))
        self._retiring.set()

    async def close_retired(self, done: asyncio.Event) -> None:
        """Close replaced clients when their grace ends; until `done` (exit closes the rest)."""
        while not done.is_set():
            if not self._retired:
                self._retiring.clear()
                await first_of(self._retiring.wait(), done.wait())
                continue
            client, close_at = self._retired[0]
            if await sleep_or_stop(done, max(0.0, close_at - time.monotonic())):
                return
            self._retired.pop(0)
            await client.__aexit__(None, None, None)
