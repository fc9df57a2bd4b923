"""Letting go of files: one gone from its globs once read to its end and safe, a removed
source's files once their tickets are done. What a restart needs to find them again is
kept (`Identity.remember`)."""

from __future__ import annotations

import time

import structlog

from agent.state.acks import AckTracker
from agent.tail.encoders import FileEncoders
from agent.tail.identity import Identity
from agent.tail.reader import Reader
from agent.tail.registry import Registry
from agent.tail.stats import TailStats

log = structlog.get_logger("agent.tailer")

ROTATE_WAIT_SECS = 5.0  # a file gone from its globs is still read this long: late writers


class Release:
    """Decides when a tracked file is let go."""

    def __init__(
        self,
        registry: Registry,
        identity: Identity,
        acks: AckTracker,
        encoders: FileEncoders,
        stats: TailStats,
    ) -> None:
        self._registry = registry
        self._identity = identity
        self._acks = acks
        self._encoders = encoders
        self._stats = stats

    def __repr__(self) -> str:
        return f"<Release retired={len(self._registry.retired)}>"

    def settle_retired(self) -> None:
        """Forget removed sources' files once nothing waits on them (their records stay)."""
        for reader in list(self._registry.retired):
            if not self._acks.pending_bytes(reader.file_id):
                self._identity.dormant.remember(self._identity.record(reader, time.time()))
                self._acks.forget(reader.file_id)
                self._registry.retired.remove(reader)

    def missing(self, reader: Reader) -> None:
        """A file no longer found under its globs: let go once read to its end and safe."""
        now = time.monotonic()
        if reader.missing_since is None:
            reader.missing_since = now
        if now - reader.missing_since < ROTATE_WAIT_SECS:
            return
        if self._acks.pending_bytes(reader.file_id) or self._encoders.held(reader.file_id):
            return  # held lines go out by their flush timeout first
        deleted = False  # a closed file cannot be asked; its record costs little
        if reader.is_open:
            try:
                finished = reader.size() <= reader.offset + reader.held
                deleted = reader.deleted()
            except OSError:
                finished, deleted = True, True
            if not finished:
                return
        if not deleted:
            self._identity.dormant.remember(self._identity.record(reader, time.time()))
        self._report_unterminated(reader, deleted)
        self._acks.forget(reader.file_id)
        self._registry.remove(reader.key)
        log.info("file_released", path=reader.path, deleted=deleted)

    def _report_unterminated(self, reader: Reader, deleted: bool) -> None:
        """A file let go with a last line its writer never ended: it is not a line, so it is
        not shipped, but never silently: counted and logged once, with where it starts. (A
        kept record still points before it: should the file come back, it is read again.)"""
        left = reader.offset + reader.held - reader.line_offset
        if left <= 0:
            return
        self._stats.unterminated_lines += 1
        log.warning(
            "unterminated_line_released",
            path=reader.path,
            offset=reader.line_offset,
            bytes=left,
            deleted=deleted,
        )
