"""What an encoder hands the tailer, and the one protocol every encoder keeps.

An encoder turns a file's blocks of whole lines into *pieces*: runs of NDJSON events, each
carrying the file offset after its last line (what a checkpoint may move to once the piece is
safe), and the lines that cannot become events (dead letters). One encoder per file, whatever
the source's options: the tailer never asks which kind it holds.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import orjson

NOW = Callable[[], float]

ENCODER_FAILED = "encoder_failed"
"""The dead-letter reason of lines an encoder raised on (a defect of ours they found)."""
MAX_FAILURE_DETAIL = 200
"""An exception's text can quote the line: its head only (the line itself is in the letter)."""


def json_text(value: object) -> bytes:
    """`value` as JSON, in a bytes object of its own size, for what an encoder keeps for the
    life of its file (a key's JSON, the names it looks for): `orjson.dumps` returns every
    result in a buffer of at least 4 KiB, which 500 files' encoders kept at 15 MB."""
    return bytes(memoryview(orjson.dumps(value)))


def failure_detail(error: Exception) -> str:
    """What an encoder's exception says in the ``encoder_failed`` log line and dead letters,
    for files (`agent.tail.quarantine`) and journald sources alike."""
    return f"{type(error).__name__}: {str(error)[:MAX_FAILURE_DETAIL]}"


@dataclass(frozen=True, slots=True)
class Rejected:
    """A line that cannot become an event; it goes to a dead letter with `reason`."""

    reason: str
    offset: int  # where the line starts in its file
    data: bytes
    detail: str = ""


@dataclass(frozen=True, slots=True)
class EncodedPiece:
    data: bytes  # NDJSON, every event ending in a newline; may be empty
    events: int
    end_offset: int  # first file byte after the last line this piece covers
    offsets: Sequence[int]  # where each event's line starts, for dead letters of refused events


@dataclass(frozen=True, slots=True)
class Encoded:
    pieces: list[EncodedPiece]
    rejected: list[Rejected]
    blank: int  # empty lines: they carry nothing, so they are skipped (and counted)


NOTHING = Encoded([], [], 0)
"""What `flush` gives when nothing is held: no piece, so no ticket."""


class LineEncoder(Protocol):
    """One file's lines -> pieces. Not thread-safe: one instance per file.

    No piece's `end_offset` passes `pending_offset`, the start of the oldest line the encoder
    holds back (joining lines: a ``P`` fragment, a stack trace): at-least-once depends on it.
    """

    @property
    def pending_offset(self) -> int | None:
        """Start of the oldest line held back; None when nothing is held."""
        ...

    def encode(self, block: bytes, start_offset: int) -> Encoded:
        """`block` holds whole lines, each ending in a newline, starting at `start_offset`."""
        ...

    def flush(self, now: float | None = None, *, force: bool = False) -> Encoded:
        """Held lines whose timeout is up (all of them with `force`)."""
        ...

    def next_flush(self) -> float | None:
        """When (monotonic) `flush` will have something to release; None when nothing is held."""
        ...

    def take_counts(self) -> dict[str, int]:
        """Counter increments since the last call, only those that moved (``time_unparsed``,
        ``unmatched``...): files come and go, their source's totals must not."""
        ...


@runtime_checkable
class CarriesHeld(Protocol):
    """An encoder whose held lines can move to the next file of the same writer (a
    container's log rotated mid-record): see `agent.tail.handoff`."""

    def hand_over(self) -> dict[str, Any]: ...

    def restore(self, state: dict[str, Any]) -> None: ...
