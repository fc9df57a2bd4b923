"""gzip for payloads: `isal` (several times faster, releases the GIL) with stdlib fallback."""

from __future__ import annotations

import asyncio
import gzip
import os
from collections.abc import Callable
from concurrent.futures import Executor
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from agent.ship.payload import Payload

try:
    from isal import igzip

    IMPLEMENTATION = "isal"
except ImportError:  # pragma: no cover - exercised only where isal cannot be installed
    IMPLEMENTATION = "zlib"


def gzip_compressor(level: int) -> Callable[[bytes], bytes]:
    """A compress function at `level` (isal knows 0-3; higher levels map to its best)."""
    if IMPLEMENTATION == "isal":
        isal_level = min(level, 3)

        def compress_isal(data: bytes) -> bytes:
            result: bytes = igzip.compress(data, compresslevel=isal_level)
            return result

        return compress_isal

    def compress_zlib(data: bytes) -> bytes:
        return gzip.compress(data, compresslevel=level)

    return compress_zlib


def compression_threads(workers: int) -> int:
    """How many threads compress for `workers` senders. isal's ~1 GB/s a thread outruns the
    event loop that reads and validates the lines several times over: a second thread only
    adds a batch being compressed and a malloc arena (measured: same MB/s, 1.6 MB more
    RSS). The stdlib's zlib is slower than the loop, so it gets one thread per core."""
    if IMPLEMENTATION == "isal":
        return 1
    return max(1, min(workers, os.cpu_count() or 1))


def gunzip(data: bytes) -> bytes:
    """Undo `gzip_compressor`: for spooled payloads that must be split or inspected."""
    if IMPLEMENTATION == "isal":
        result: bytes = igzip.decompress(data)  # type: ignore[no-untyped-call]
        return result
    return gzip.decompress(data)


class Compressor:
    """Makes a payload ready for the wire: gzip (in the compression threads) when the
    sender compresses, NDJSON when it does not. A payload already in that form passes."""

    def __init__(self, compress: Callable[[bytes], bytes] | None, executor: Executor) -> None:
        self.compress = compress
        self._executor = executor

    def __repr__(self) -> str:
        return f"<Compressor {'gzip' if self.compress is not None else 'none'}>"

    async def __call__(self, payload: Payload) -> Payload:
        if self.compress is None:
            return payload.inflated()
        if payload.gzipped is not None:
            return payload
        loop = asyncio.get_running_loop()
        return payload.compressed(
            await loop.run_in_executor(self._executor, self.compress, payload.body)
        )
