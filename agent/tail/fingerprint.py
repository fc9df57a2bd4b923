"""File identity: a checksum of the first bytes, which survives renames and inode reuse."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

FINGERPRINT_BYTES = 1024


@dataclass(frozen=True, slots=True)
class Fingerprint:
    digest: str
    length: int  # bytes covered; grows with a young file until FINGERPRINT_BYTES

    @property
    def complete(self) -> bool:
        return self.length >= FINGERPRINT_BYTES


def _digest(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=8).hexdigest()


def fingerprint(fd: int, size: int) -> Fingerprint:
    data = os.pread(fd, min(size, FINGERPRINT_BYTES), 0)
    return Fingerprint(_digest(data), len(data))


def starts_with(fd: int, known: Fingerprint) -> bool:
    """Whether the open file begins with the bytes `known` was taken from."""
    if known.length == 0:
        return False  # an empty file says nothing about identity
    data = os.pread(fd, known.length, 0)
    return len(data) == known.length and _digest(data) == known.digest
