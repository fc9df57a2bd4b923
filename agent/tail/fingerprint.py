"""File identity: a checksum of the first bytes, which survives renames and inode reuse."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")

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


def head(fd: int) -> bytes:
    """The bytes every fingerprint of this file is taken from."""
    return os.pread(fd, FINGERPRINT_BYTES, 0)


def of_head(data: bytes) -> Fingerprint:
    """The fingerprint of a file whose `head()` is `data`."""
    return Fingerprint(_digest(data), len(data))


class FingerprintIndex(Generic[T]):
    """Finds the items whose fingerprint a file's first bytes match, without a read per item.

    Items are grouped by fingerprint length (a young file's fingerprint covers fewer than
    FINGERPRINT_BYTES bytes), so a lookup hashes the file's head once per distinct length,
    not once per known file: thousands of known files cost a dict lookup each.
    """

    def __init__(self) -> None:
        self._by_length: dict[int, dict[str, list[T]]] = {}

    def __repr__(self) -> str:
        return f"<FingerprintIndex lengths={len(self._by_length)} items={len(self)}>"

    def __len__(self) -> int:
        return sum(len(v) for d in self._by_length.values() for v in d.values())

    def add(self, fp: Fingerprint, item: T) -> None:
        if fp.length == 0:
            return  # an empty file says nothing about identity
        self._by_length.setdefault(fp.length, {}).setdefault(fp.digest, []).append(item)

    def matching(self, data: bytes) -> list[T]:
        """Items whose fingerprint `data` (a file's head) begins with, longest first."""
        found: list[T] = []
        for length in sorted(self._by_length, reverse=True):
            if length <= len(data):
                found += self._by_length[length].get(_digest(data[:length]), [])
        return found
