"""Lines an encoder failed on: dead-lettered with the reason, and the file read on.

An exception out of an encoder is a defect of ours that some line found (this round's
attacks found four: an OverflowError writing a time, ``int(inf)`` of an epoch...). Before,
it left the tailer, ended `run` with exit 1, and every restart read the same line again: one
line stopped every file for good. Now the lines the encoder was given, and those it held back
from earlier blocks (a stack trace, a ``P`` fragment), become dead letters ``encoder_failed``
with the exception's type, and the file goes on with a fresh encoder. Nothing is lost (a dead
letter can be replayed once the defect is fixed: ``polaris-agent dead-letters replay``) and
nothing else stops; the error log line and the dead-letter count say it happened.
"""

from __future__ import annotations

import os
from typing import Final

import structlog

from agent.encode import Encoded, EncodedPiece, LineEncoder, Rejected
from agent.encode.values import ENCODER_FAILED, failure_detail
from agent.tail.reader import Reader

log = structlog.get_logger("agent.tailer")

MAX_REREAD: Final = 8 << 20
"""At most this much of what an encoder held is read again (a held record is bounded by the
event size, but a long line skipped meanwhile lies in the same range)."""


def quarantined(
    reader: Reader, held_from: int | None, start: int, data: bytes, error: Exception
) -> Encoded:
    """Every line from `held_from` (what the encoder held, read again from the file; None:
    nothing held) through `data` (whole lines at `start`) as a dead letter, and an empty
    piece ending after them, so the checkpoint passes them once the letters are written."""
    begin = start if held_from is None or held_from > start else held_from
    detail = failure_detail(error)
    span = start - begin
    if span > MAX_REREAD:  # a long line skipped while records were held: its head only
        detail += f"; {span - MAX_REREAD} held bytes before offset {start} not kept"
    try:
        held = os.pread(reader.fd, min(span, MAX_REREAD), begin) if span else b""
    except OSError:  # the held lines cannot be read again: the letters say from where
        held = b""
    rejected = [*_letters(held, begin, detail), *_letters(data, start, detail)]
    done = EncodedPiece(b"", 0, start + len(data), ())
    return Encoded([done], rejected, 0)


def _letters(lines: bytes, offset: int, detail: str) -> list[Rejected]:
    """Each line of `lines` (the file's bytes at `offset`) as an ``encoder_failed`` letter."""
    letters: list[Rejected] = []
    position = 0
    while position < len(lines):
        newline = lines.find(b"\n", position)
        end = len(lines) if newline == -1 else newline
        letters.append(Rejected(ENCODER_FAILED, offset + position, lines[position:end], detail))
        position = end + 1
    return letters


def quarantine(
    reader: Reader, encoder: LineEncoder, error: Exception, start: int, data: bytes = b""
) -> Encoded:
    """What `encoder` held and `data` (whole lines at `start`; empty when a flush failed:
    `start` is then the read offset) as dead letters, logged once as ``encoder_failed``."""
    try:
        held = encoder.pending_offset
    except Exception:  # its state is what failed: from the block on
        held = None
    log.error(
        "encoder_failed",
        path=reader.path,
        offset=start if held is None else min(held, start),
        error=type(error).__name__,
        detail=failure_detail(error),
    )
    return quarantined(reader, held, start, data, error)
