"""Lines -> pieces: the encoding stage, between the tailer (files -> lines) and the batcher.

One `LineEncoder` per file for every source (`encoder_for`): the fast `Encoder` for sources
that only forward JSON or wrap text, an `IdEncoder` (that `Encoder` plus an id per event) for
JSON sources whose only parsing option is ``event_id``, a `ParsedEncoder` (the parsing
library, imported only when some source needs it) for the rest.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from agent.config import SourceConfig
from agent.encode.fast import Encoder, line_limit
from agent.encode.ids import IdEncoder, takes_ids
from agent.encode.values import (
    NOTHING,
    CarriesHeld,
    Encoded,
    EncodedPiece,
    LineEncoder,
    Rejected,
)
from agent.parse.settings import needs_parsing

if TYPE_CHECKING:
    from agent.parse.kubernetes import PodDirectory

__all__ = [
    "NOTHING",
    "PIECES_PER_BATCH",
    "CarriesHeld",
    "EncodeLimits",
    "Encoded",
    "EncodedPiece",
    "Encoder",
    "IdEncoder",
    "LineEncoder",
    "Rejected",
    "encoder_for",
    "line_limit",
]


PIECES_PER_BATCH = 8
"""Pieces are an eighth of a batch (125,000 bytes of a full 1,000,000), so eight fill it to
the byte; fewer, larger pieces cost less per byte on the way (a ticket, a queue hand-off, a
batch slot each)."""


@dataclass(frozen=True, slots=True)
class EncodeLimits:
    """Sizes that come from the batch settings, not from a source: a reload may change them.

    `max_event_bytes`: the longest event a request can carry (with its newline);
    `piece_bytes`: how much one piece holds (a fraction of a batch).
    """

    max_event_bytes: int
    piece_bytes: int

    @classmethod
    def for_batch(cls, max_bytes: int) -> EncodeLimits:
        """The limits for batches of at most `max_bytes` (`batch.max_bytes`)."""
        return cls(max_bytes, max(max_bytes // PIECES_PER_BATCH, 1024))


def encoder_for(
    source: SourceConfig,
    limits: EncodeLimits,
    *,
    path: str,
    identity: Callable[[], str],
    start_offset: int,
    now: Callable[[], float] = time.time,
    pods: PodDirectory | None = None,
    head: Callable[[], bytes] | None = None,
) -> LineEncoder:
    """The encoder of one file of `source`, reading from `start_offset`.

    `identity` gives the file's stable identity for event ids, asked once, when the first
    block is encoded (only sources with event ids use it); `head` its first bytes, asked
    once when a UTF-16/32 file is read from past them (the BOM's byte order).
    """
    if not needs_parsing(source):
        return Encoder(
            source,
            max_event_bytes=limits.max_event_bytes,
            piece_bytes=limits.piece_bytes,
            now=now,
            strip_bom=True,
        )
    if takes_ids(source):
        return IdEncoder(
            source,
            path=path,
            identity=identity,
            max_event_bytes=limits.max_event_bytes,
            piece_bytes=limits.piece_bytes,
            now=now,
        )
    from agent.encode.parsed import ParsedEncoder  # the parsing library, when used

    return ParsedEncoder(
        source,
        path=path,
        identity=identity,
        max_event_bytes=limits.max_event_bytes,
        piece_bytes=limits.piece_bytes,
        start_offset=start_offset,
        now=now,
        pods=pods,
        head=head,
    )
