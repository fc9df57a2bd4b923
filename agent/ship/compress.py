"""gzip for payloads: `isal` (several times faster, releases the GIL) with stdlib fallback."""

from __future__ import annotations

import gzip
from collections.abc import Callable

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


def gunzip(data: bytes) -> bytes:
    """Undo `gzip_compressor`: for spooled payloads that must be split or inspected."""
    if IMPLEMENTATION == "isal":
        result: bytes = igzip.decompress(data)  # type: ignore[no-untyped-call]
        return result
    return gzip.decompress(data)
