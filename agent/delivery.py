"""The sending half of the agent as one unit: the events client, the compression threads, the
sender and the spool, built from the config once and reconfigured on reload.

A reload that changes `[polaris]` needs a new HTTP client (the URL, key and TLS settings are
fixed per aiohttp session): the sender moves to it at once and closes the old one as soon as
the requests still out on it have their answers, so reloads do not pile up clients until the
process ends.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import TracebackType

from agent.config import Config
from agent.reload import ReloadPlan
from agent.ship.compress import compression_threads, gzip_compressor
from agent.ship.http import EventsClient
from agent.ship.oauth import Access
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
        # One token provider and one rate-limit budget per organization, for every client.
        self.access = Access()
        self._client = self._events_client(config)
        self.sender = Sender(
            self._client,
            self.access.pacer(config.polaris),
            sender_settings(config),
            acks=acks,
            dead_letters=dead_letters,
            executor=self._executor,
            stopping=stopping,
            spool=self.spool,
            compress_threads=threads,
        )

    def __repr__(self) -> str:
        return f"<Delivery {self.sender!r} spool={self.spool!r}>"

    def _events_client(self, config: Config) -> EventsClient:
        return EventsClient(
            config.polaris,
            connections=config.sender.workers,
            credentials=self.access.credentials(config.polaris),
        )

    async def __aenter__(self) -> Delivery:
        await self._client.__aenter__()
        return self

    async def __aexit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            await self._client.aclose()
        finally:
            self._executor.shutdown(wait=False, cancel_futures=True)

    async def reconfigure(self, plan: ReloadPlan, new: Config) -> None:
        """Apply the reloaded `[polaris]`, `[sender]` and `[spool]` sections."""
        if "polaris" in plan:
            client = self._events_client(new)
            await client.__aenter__()
            self._client = client
            pacer = self.access.pacer(new.polaris)  # the new host's budget, not the old one's
            await self.sender.reconfigure(sender_settings(new), client, pacer)  # closes the old
        if "sender" in plan:
            await self.sender.reconfigure(sender_settings(new))
        if "spool" in plan and self.spool is not None:
            self.spool.reconfigure(new.spool)
