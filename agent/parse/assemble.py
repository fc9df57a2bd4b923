"""Physical lines -> logical records, per file, before any event is built.

    bytes lines ──► charset (re-framing, BOM, invalid bytes) ──► container format (CRI/Docker,
    P…F joined per stream) ──► multiline (start pattern, timeout, size cap) ──► Records

An `Assembler` holds lines back: a CRI ``P`` fragment waits for its ``F``, a stack trace for
its next start line. Held lines are not delivered, so **a file's checkpoint must never pass
`Assembler.pending_offset`** — otherwise a crash loses them. Records of different streams are
released in the order they complete, so their offsets may interleave; each record carries its
own `start_offset` and `end_offset`.

When a container's log rotates, a ``P`` fragment may sit at the end of the old file and its
``F`` at the start of the new one: carry `state()` from the old file's assembler to the new
file's (`restore`) when both have the same `container_key`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Final

from agent.parse.charset import BOM, WideFramer, decode
from agent.parse.kubernetes import ContainerLine, decode_cri, decode_docker
from agent.parse.settings import WIDE_CHARSETS, SourceParsing
from agent.parse.userregex import PatternTimeout, UserPattern, compile_user, search_within

STATE_VERSION: Final = 1


@dataclass(frozen=True, slots=True)
class Record:
    """One logical log record: a line, or several joined (fragments, a stack trace).

    `start_offset` is where its first line *in this file* starts, `end_offset` the first byte
    after its last line. `stream` and `time` come from a container format (CRI or Docker),
    `time` as the runtime wrote it; `lines` counts the physical lines joined.
    """

    text: str
    start_offset: int
    end_offset: int
    stream: str | None = None
    time: str | None = None
    lines: int = 1


@dataclass(slots=True)
class AssemblyCounters:
    """What the assembler changed or could not read; every field only grows."""

    invalid_bytes: int = 0  # replaced by U+FFFD
    bom_stripped: int = 0
    container_unparsed: int = 0  # not a CRI/Docker line: passed on as it is
    partial_joined: int = 0  # records made of more than one P fragment
    partial_flushed: int = 0  # fragments released by timeout or size, without an F
    multiline_joined: int = 0  # records made of more than one line
    multiline_split: int = 0  # events cut because they reached multiline.max_bytes
    start_pattern_timeout: int = 0  # start_pattern took too long on a line: taken as a start


@dataclass(slots=True)
class _Held:
    """Lines waiting to be joined; `start` None = they came from a restored state."""

    parts: list[str]
    start: int | None
    end: int
    time: str | None
    size: int
    since: float
    lines: int = 1

    def add(self, text: str, end: int, now: float, lines: int = 1) -> None:
        self.parts.append(text)
        self.end = end
        self.size += len(text)
        self.since = now
        self.lines += lines

    def to_state(self) -> dict[str, Any]:
        return {"parts": self.parts, "time": self.time, "lines": self.lines}


def _restore_held(value: dict[str, Any], position: int, now: float) -> _Held:
    """Inherited lines are placed at `position`, where this file's next line starts: that pins
    this file's checkpoint there until they are released, so the hand-over can tell when they
    are out (and a record they end up in still starts at its first line in this file)."""
    parts = [str(p) for p in value["parts"]]
    return _Held(
        parts, position, position, value.get("time"), sum(map(len, parts)), now, int(value["lines"])
    )


class _PartialJoiner:
    """CRI ``P`` / Docker newline-less fragments joined per stream until the final piece."""

    def __init__(self, max_bytes: int, timeout: float, counters: AssemblyCounters) -> None:
        self._max = max_bytes
        self.timeout = timeout
        self._counters = counters
        self.held: dict[str, _Held] = {}

    def push(self, line: ContainerLine, start: int, end: int, now: float) -> Record | None:
        held = self.held.get(line.stream)
        if held is None:
            if not line.partial:
                return Record(line.message, start, end, line.stream, line.time)
            held = _Held([], start, end, line.time, 0, now, 0)
            self.held[line.stream] = held
        if held.start is None:
            held.start = start
        held.add(line.message, end, now)
        if line.partial and held.size < self._max:
            return None
        del self.held[line.stream]
        if line.partial:
            self._counters.partial_flushed += 1
        elif held.lines > 1:
            self._counters.partial_joined += 1
        return _record(held, line.stream, "")

    def flush(self, now: float, force: bool) -> list[Record]:
        due = [s for s, h in self.held.items() if force or now - h.since >= self.timeout]
        self._counters.partial_flushed += len(due)
        return [_record(self.held.pop(stream), stream, "") for stream in due]


class _MultilineJoiner:
    """Continuation lines joined to the line that starts their event, per stream."""

    def __init__(
        self, start: UserPattern, max_bytes: int, timeout: float, counters: AssemblyCounters
    ) -> None:
        self._pattern = start
        self._max = max_bytes
        self.timeout = timeout
        self._counters = counters
        self.held: dict[str, _Held] = {}

    def push(self, record: Record, now: float) -> Iterable[Record]:
        key = record.stream or ""
        held = self.held.get(key)
        if held is not None and not self._starts(record.text):
            if held.size + 1 + len(record.text) <= self._max:
                if held.start is None:
                    held.start = record.start_offset
                held.add(record.text, record.end_offset, now, record.lines)
                return ()
            self._counters.multiline_split += 1
        self.held[key] = _Held(
            [record.text],
            record.start_offset,
            record.end_offset,
            record.time,
            len(record.text),
            now,
            record.lines,
        )
        return () if held is None else (self._release(held, record.stream),)

    def _starts(self, text: str) -> bool:
        """Whether `text` starts an event; a line the pattern takes too long on does (it is
        shipped, as its own event or with the lines that follow it, and counted): a line
        cannot stall the file, and nothing is lost either way."""
        try:
            return search_within(self._pattern, text) is not None
        except PatternTimeout:
            self._counters.start_pattern_timeout += 1
            return True

    def flush(self, now: float, force: bool) -> list[Record]:
        due = [k for k, h in self.held.items() if force or now - h.since >= self.timeout]
        return [self._release(self.held.pop(key), key or None) for key in due]

    def _release(self, held: _Held, stream: str | None) -> Record:
        if held.lines > 1:
            self._counters.multiline_joined += 1
        return _record(held, stream, "\n")


def _record(held: _Held, stream: str | None, separator: str) -> Record:
    start = held.end if held.start is None else held.start
    return Record(separator.join(held.parts), start, held.end, stream, held.time, held.lines)


class Assembler:
    """One file's line-level stage. Not thread-safe; one per file, like its reader.

    `feed` and `flush` take `now` from one monotonic clock (``time.monotonic`` by default):
    it only measures how long lines have been held.
    """

    def __init__(
        self,
        options: SourceParsing,
        *,
        path: str = "",
        clock: Callable[[], float] = time.monotonic,
        head: Callable[[], bytes] | None = None,
    ) -> None:
        """`head`: the file's first bytes, for a wide charset's byte order (`WideFramer`)."""
        self.path = path
        self.counters = AssemblyCounters()
        self._clock = clock
        self._charset = options.charset
        wide = options.charset in WIDE_CHARSETS
        self._framer = WideFramer(options.charset, head) if wide else None
        self._strict_utf8 = options.charset in ("utf-8", "utf-8-sig")
        kubernetes = options.kubernetes
        self._container: Callable[[str], ContainerLine | None] | None = None
        self._partial: _PartialJoiner | None = None
        if kubernetes is not None and kubernetes.format is not None:
            self._container = decode_cri if kubernetes.format == "cri" else decode_docker
            self._partial = _PartialJoiner(
                kubernetes.partial_max_bytes, kubernetes.partial_flush_timeout, self.counters
            )
        multiline = options.multiline
        self._multiline = (
            None
            if multiline is None
            else _MultilineJoiner(
                compile_user(multiline.start_pattern),
                multiline.max_bytes,
                multiline.flush_timeout,
                self.counters,
            )
        )
        self._position = 0  # end of the last line fed: where restored records are placed

    def __repr__(self) -> str:
        return f"<Assembler {self.path} pending={self.pending_offset}>"

    @property
    def pending_offset(self) -> int | None:
        """Start offset of the oldest line held back, None when nothing is held.

        The file's checkpoint must not move past it: those lines are not in any record yet.
        """
        starts = [h.start for h in self._held() if h.start is not None]
        if self._framer is not None and self._framer.held_offset is not None:
            starts.append(self._framer.held_offset)
        return min(starts, default=None)

    @property
    def framer(self) -> WideFramer | None:
        """The re-framing of a UTF-16/32 file's lines, None for any other charset: a
        whole-block decode (`agent.encode.transcode`) reads and moves its state."""
        return self._framer

    def feed(
        self, lines: Iterable[tuple[bytes, int, int]], now: float | None = None
    ) -> list[Record]:
        """Lines as ``(bytes without the newline, start offset, end offset)``, in file order."""
        clock = self._clock() if now is None else now
        records: list[Record] = []
        for data, start, end in lines:
            self._position = end
            if self._framer is None:
                self._line(data, start, end, clock, records)
                continue
            for frame in self._framer.push(data, start, end):
                self._line(frame.data, frame.start, frame.end, clock, records)
        if self._framer is not None:
            for frame in self._framer.release_open_line():
                self._line(frame.data, frame.start, frame.end, clock, records)
        return records

    def skip_to(self, end: int) -> None:
        """Lines up to `end` were made into records elsewhere (a whole-block parse, when
        nothing is held): reading stands there now."""
        self._position = end

    def flush(self, now: float | None = None, *, force: bool = False) -> list[Record]:
        """Records whose time is up (flush timeouts), or everything held when `force`.

        Forcing is for a file that is finished for good (deleted, or rotated with nothing to
        carry its state to); at shutdown do not force: held lines are read again at restart.
        """
        clock = self._clock() if now is None else now
        records: list[Record] = []
        if self._partial is not None:
            for record in self._partial.flush(clock, force):
                self._joined(record, clock, records)
        if self._multiline is not None:
            records.extend(self._multiline.flush(clock, force))
        return records

    def next_flush(self) -> float | None:
        """When (on `flush`'s clock) the oldest held record's timeout is up; None if none is.

        Lets the caller sleep until exactly then instead of polling: a flush timeout shorter
        than the tailer's scan interval must still be kept.
        """
        due: list[float] = []
        if self._partial is not None:
            due += [h.since + self._partial.timeout for h in self._partial.held.values()]
        if self._multiline is not None:
            due += [h.since + self._multiline.timeout for h in self._multiline.held.values()]
        return min(due, default=None)

    def state(self) -> dict[str, Any]:
        """What must survive a rotation: held fragments and events, and a detected byte order.

        JSON-able and small (bounded by the max_bytes options); offsets are not kept, as they
        mean nothing in the next file.
        """
        state: dict[str, Any] = {"version": STATE_VERSION}
        if self._framer is not None:
            state["charset"] = self._framer.charset
        if self._partial is not None and self._partial.held:
            state["partial"] = {k: h.to_state() for k, h in self._partial.held.items()}
        if self._multiline is not None and self._multiline.held:
            state["multiline"] = {k: h.to_state() for k, h in self._multiline.held.items()}
        return state

    def hand_over(self) -> dict[str, Any]:
        """`state()`, and forget what it holds: the next file of the container holds it now.

        Lines read later from this file (a late writer) start afresh here.
        """
        state = self.state()
        for joiner in (self._partial, self._multiline):
            if joiner is not None:
                joiner.held.clear()
        return state

    def restore(
        self, state: dict[str, Any], now: float | None = None, *, at: int | None = None
    ) -> None:
        """Take over what `state()` of the previous file of the same container held.

        Restored lines wait (for their ``F``, their continuation, their timeout) as if they
        had been read here, at `at` (where this file's reading stands; by default the end of
        the last line fed): `pending_offset` is `at` until they are released, so this file's
        checkpoint cannot pass the record they end up in. That record starts at `at`.
        """
        if state.get("version") != STATE_VERSION:
            raise ValueError(f"unknown assembler state version {state.get('version')!r}")
        clock = self._clock() if now is None else now
        if at is not None:
            self._position = at
        if self._framer is not None and "charset" in state:
            self._framer.charset = str(state["charset"])
        if self._partial is not None:
            for stream, held in state.get("partial", {}).items():
                self._partial.held[stream] = _restore_held(held, self._position, clock)
        if self._multiline is not None:
            for key, held in state.get("multiline", {}).items():
                self._multiline.held[key] = _restore_held(held, self._position, clock)

    def _held(self) -> list[_Held]:
        held = list(self._partial.held.values()) if self._partial is not None else []
        if self._multiline is not None:
            held.extend(self._multiline.held.values())
        return held

    def _line(self, data: bytes, start: int, end: int, now: float, out: list[Record]) -> None:
        text = self._text(data)
        if self._container is None:
            self._joined(Record(text, start, end), now, out)
            return
        line = self._container(text)
        if line is None:
            self.counters.container_unparsed += 1
            self._joined(Record(text, start, end), now, out)
            return
        assert self._partial is not None
        record = self._partial.push(line, start, end, now)
        if record is not None:
            self._joined(record, now, out)

    def _joined(self, record: Record, now: float, out: list[Record]) -> None:
        if self._multiline is None:
            out.append(record)
        else:
            out.extend(self._multiline.push(record, now))

    def _text(self, data: bytes) -> str:
        if self._strict_utf8:
            try:
                text = data.decode()
            except UnicodeDecodeError:
                text, invalid = decode(data, "utf-8")
                self.counters.invalid_bytes += invalid
        else:
            charset = self._framer.charset if self._framer is not None else self._charset
            text, invalid = decode(data, charset)
            self.counters.invalid_bytes += invalid
        if text.startswith(BOM):
            text = text[1:]
            self.counters.bom_stripped += 1
        return text[:-1] if text.endswith("\r") else text
