"""Bytes -> text for one file: BOMs stripped, invalid bytes replaced *and counted*.

Polaris rejects a byte order mark, and silently replaced bytes are data quietly changed, so
both are counted. UTF-16 and UTF-32 need more than decoding: the tailer cuts lines at the byte
0x0A, which in those charsets is half a character (or part of an unrelated one), so
`WideFramer` glues the pieces back together and cuts again at the charset's real newline.
"""

from __future__ import annotations

import codecs
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

BOM: Final = "\ufeff"
_REPLACE_AND_COUNT: Final = "agent.parse.replace-and-count"
_tally = threading.local()


def _replace_and_count(error: UnicodeError) -> tuple[str, int]:
    if not isinstance(error, UnicodeDecodeError):
        raise error
    _tally.count = getattr(_tally, "count", 0) + (error.end - error.start)
    return "\ufffd", error.end


codecs.register_error(_REPLACE_AND_COUNT, _replace_and_count)


def decode(data: bytes, charset: str) -> tuple[str, int]:
    """`data` as text and how many bytes were invalid (each became one U+FFFD)."""
    try:
        return data.decode(charset), 0
    except UnicodeDecodeError:
        _tally.count = 0
        text = data.decode(charset, _REPLACE_AND_COUNT)
        return text, int(_tally.count)


@dataclass(frozen=True, slots=True)
class Frame:
    data: bytes  # one line in the wide charset, without its newline
    start: int
    end: int  # first byte after the newline


@dataclass(frozen=True, slots=True)
class WideBlock:
    """A block's wide lines at once (`WideFramer.frame_block`): what `push` and
    `release_open_line` would frame of it, and the framer's state once they had."""

    text: str  # the lines decoded, each ending in "\n"
    start: int  # where the first line starts in the file
    end: int  # where the next line starts (a little-endian newline's rest counted)
    charset: str  # the byte order they were read in
    skip: bytes  # the rest of the last newline, counted, still to come (little endian)


class WideFramer:
    """Re-cuts UTF-16/32 byte lines at the charset's own newline, at aligned offsets.

    ``utf-16``/``utf-32`` without an endianness take it from the BOM at offset 0 (little
    endian when there is none, as Windows writes); `charset` tells the decoder which one.

    Little endian puts the 0x0A *first* in its newline (``0A 00``), so the tailer cuts before
    the ``00`` and holds it back as an unfinished line until more is written. To release a
    file's last line now, a line ending in an aligned 0x0A is taken as complete, its end
    offset counts the ``00`` to come, and that byte is dropped when it arrives. This is
    only done at the end of a batch, when the next byte is not there to tell. (Only a
    character U+xx0A that straddles a tailer cut, such as U+010A, could be mistaken.)
    """

    def __init__(self, charset: str, head: Callable[[], bytes] | None = None) -> None:
        """`head`: the file's first bytes, read when the first line pushed starts past
        them (a new agent resuming at its checkpoint), for the BOM's byte order: without
        it a big-endian file was read as little endian after a restart, no newline found,
        its lines held forever."""
        self.charset = charset if charset.endswith(("-le", "-be")) else charset + "-le"
        self._auto = not charset.endswith(("-le", "-be"))
        self._head = head if self._auto else None
        self._unit = 4 if charset.startswith("utf-32") else 2
        self._buffer = b""
        self._start = 0
        self._skip = b""  # the rest of a newline already counted (little endian), if due

    @property
    def newline(self) -> bytes:
        return "\n".encode(self.charset)

    @property
    def held_offset(self) -> int | None:
        return self._start if self._buffer else None

    def push(self, data: bytes, start: int, end: int) -> list[Frame]:
        """One byte line from the tailer (0x0A removed) -> the whole wide lines it completes."""
        self._resume(start)
        data, start = self._skipped(data, start)
        self._skip = b""
        if self._buffer and start != self._start + len(self._buffer):
            self._buffer = b""  # the file was rewound or truncated: start over where we are
        if not self._buffer:
            self._start = start
            if start == 0 and self._auto:
                self._detect(data)
        self._buffer += data + b"\n" * max(0, min(1, end - start - len(data)))
        return self._cut()

    def _skipped(self, data: bytes, start: int) -> tuple[bytes, int]:
        """`data` at `start` without the rest of a newline already counted, if it is due: it
        starts where that newline's first byte ended (`len(skip)` before the line after it;
        once ``start + 1``, true for UTF-16 alone: UTF-32's next line began with three NULs).
        A new framer (the agent restarted, its checkpoint where the last one released such a
        line) sees the same bytes one past an aligned offset, where no line can start: they
        were taken as the start of a line, and every character after them read misaligned."""
        skip = self._skip
        if skip and start + len(skip) == self._start and data.startswith(skip):
            return data[len(skip) :], start + len(skip)
        rest = self.newline[1:]
        resumed = not self._buffer and start % self._unit == 1 and self.newline[0] == 0x0A
        if resumed and data.startswith(rest):  # a new framer where the last one stopped
            return data[len(rest) :], start + len(rest)
        return data, start

    def _resume(self, start: int) -> None:
        """Before the first line read past offset 0: the byte order of the file's BOM."""
        head, self._head = self._head, None
        if head is not None and start > 0:
            self.charset = self._detected(head())

    def _detect(self, head: bytes) -> None:
        self.charset = self._detected(head)

    def _detected(self, head: bytes) -> str:
        family = self.charset[:-3]
        if head.startswith((b"\xfe\xff", b"\x00\x00\xfe\xff")):
            return family + "-be"
        if head.startswith((b"\xff\xfe", b"\xff\xfe\x00\x00")):
            return family + "-le"
        return self.charset

    def frame_block(self, block: bytes, start: int) -> WideBlock | None:
        """The wide lines of `block` (byte lines at `start`, as the tailer cuts them) at once:
        one decode instead of a `push` per byte line, for a block that leaves nothing held.
        None (push it line by line) when something is held already, or the block is not
        whole aligned lines that decode without an error once a little-endian newline cut
        after its 0x0A is completed as `release_open_line` completes it. Changes nothing:
        `take` the result once it has been used."""
        if self._buffer:
            return None
        self._resume(start)
        data, start = self._skipped(block, start)
        if start % self._unit:
            return None
        charset = self._detected(data) if start == 0 and self._auto else self.charset
        newline = "\n".encode(charset)
        skip = b""
        if not data.endswith(newline) and newline[0] == 0x0A and data.endswith(b"\n"):
            skip = newline[1:]
            data += skip
        if len(data) % self._unit or not data.endswith(newline):
            return None
        try:
            text = data.decode(charset)
        except UnicodeDecodeError:
            return None
        return WideBlock(text, start, start + len(data), charset, skip)

    def take(self, block: WideBlock) -> None:
        """The framer's state once `block`'s byte lines have been pushed and released."""
        self.charset = block.charset
        self._buffer = b""
        self._start = block.end
        self._skip = block.skip

    def _cut(self) -> list[Frame]:
        frames: list[Frame] = []
        newline, unit = self.newline, self._unit
        position = (-self._start) % unit  # first aligned index in the buffer
        while True:
            found = self._buffer.find(newline, position)
            if found < 0:
                return frames
            if (self._start + found) % unit:
                position = found + 1
                continue
            end = found + len(newline)
            frames.append(Frame(self._buffer[:found], self._start, self._start + end))
            self._buffer = self._buffer[end:]
            self._start += end
            position = 0

    def release_open_line(self) -> list[Frame]:
        """At the end of what the tailer has read: a buffer ending in an aligned 0x0A."""
        frames: list[Frame] = []
        newline = self.newline
        last = len(self._buffer) - 1
        if newline[0] != 0x0A or last < 0 or self._buffer[last] != 0x0A:
            return frames
        if (self._start + last) % self._unit:
            return frames
        end = last + len(newline)
        frames.append(Frame(self._buffer[:last], self._start, self._start + end))
        self._skip = newline[1:]
        self._buffer = b""
        self._start += end
        return frames
