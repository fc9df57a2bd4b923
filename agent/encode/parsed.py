"""Raw lines -> NDJSON events for sources with parsing options (issue 6).

`Encoder` is the fast path for sources that only forward JSON or wrap text; a source that asks
for more (a parser, time options, late/early windows, container formats, multiline, a charset,
event ids) gets a `ParsedEncoder` *per file*, because joining lines keeps state per file:

    block of lines ──► Assembler (charset, CRI/Docker P…F, multiline) ──► Records
                   ──► EventBuilder (fields, normalized time, windows, id) ──► pieces | Rejected

It keeps the `LineEncoder` contract (`Encoded` of pieces, rejections, blank count) so the
tailer issues tickets and writes dead letters the same way, with one difference that
at-least-once depends on: the assembler holds lines back (a ``P`` fragment, a stack trace
waiting for its next start line), so no piece's `end_offset` passes `pending_offset`, the
start of the oldest held line. Joined records of different streams complete out of order,
so a piece also ends before the start of any record that goes out in a later piece.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, replace
from itertools import accumulate, compress, repeat
from operator import add, attrgetter, ge, methodcaller
from typing import Any, Final

import msgspec
import orjson

from agent.config import SourceConfig
from agent.encode.crlf import crlf_block
from agent.encode.cut import cut_events
from agent.encode.halves import in_halves
from agent.encode.scan import (
    BLANK_LINE,
    MAX_NESTING_DEPTH,
    ROW_SEPARATOR,
    TOO_DEEPLY_NESTED,
    lines_within,
    nesting_depth,
    unremarkable,
)
from agent.encode.transcode import single_byte, single_byte_lines, wide_lines
from agent.encode.values import NOW, Encoded, EncodedPiece, Rejected
from agent.parse.assemble import Assembler, Record
from agent.parse.charset import BOM
from agent.parse.event import EventBuilder, Rejection
from agent.parse.kubernetes import PodDirectory
from agent.parse.parsers import BlockParse, block_parser
from agent.parse.settings import WIDE_CHARSETS, ParserOptions, SourceParsing


def _library_options(source: SourceConfig) -> SourceParsing:
    """Without a `parser`, ``format = "json"`` parses each record as a JSON object."""
    if source.parser is None and source.format == "json":
        return source.model_copy(update={"parser": ParserOptions(type="json")})
    return source


class ParsedEncoder:
    """One file's lines -> pieces of at most `piece_bytes`; not thread-safe, one per file.

    `identity` gives the file's stable identity for event ids (see
    `agent.tail.handoff.event_identity`), asked once, at the first block (when the file's first
    line is surely complete); `start_offset` where reading starts, so that a piece never claims
    less than the file's checkpoint already covers. `now` is the wall clock (read time,
    windows), `clock` the monotonic one the flush timeouts are measured on.
    """

    def __init__(
        self,
        source: SourceConfig,
        *,
        path: str,
        identity: Callable[[], str],
        max_event_bytes: int,
        piece_bytes: int,
        start_offset: int = 0,
        now: NOW = time.time,
        clock: Callable[[], float] = time.monotonic,
        environ: Mapping[str, str] | None = None,
        pods: PodDirectory | None = None,
        head: Callable[[], bytes] | None = None,
    ) -> None:
        """`head`: the file's first bytes, read once if the first block starts past them
        (a UTF-16/32 file's byte order is its BOM's)."""
        self.source = source  # what it was built from: a reloaded source needs a new one
        options = _library_options(source)
        self._assembler = Assembler(options, path=path, clock=clock, head=head)
        self._builder = EventBuilder(
            options, path=path, now=now, fields=source.fields, environ=environ, pods=pods
        )
        self._identity: Callable[[], str] | None = identity
        self._json = options.parser is not None and options.parser.type == "json"
        self._max_event = max_event_bytes - 1  # room for the newline
        self._max_line = min(source.max_line_bytes, self._max_event)
        self._piece_bytes = piece_bytes
        self._position = start_offset  # end of the last line fed
        self._reported: dict[str, int] = {}
        self._block_parse = _block_parser(options)
        self._docker = _docker_blocks(options)
        self._cri = _cri_blocks(options)  # the longest joined record, or None
        self._charset = _charset_blocks(options)
        self._options_charset = options.charset
        self._plain_text = (
            options.parser is None
            and options.event_id is None
            and (options.time.field or options.time_field) != "message"
        )
        self._charset_parse = None if options.parser is None else block_parser(options.parser)

    def __repr__(self) -> str:
        return f"<ParsedEncoder {self._assembler.path} pending={self.pending_offset}>"

    @property
    def pending_offset(self) -> int | None:
        """Start of the oldest line held back (None: nothing held): no checkpoint passes it."""
        return self._assembler.pending_offset

    def next_flush(self) -> float | None:
        """When (monotonic) `flush` will have something to release; None when nothing is held."""
        return self._assembler.next_flush()

    def encode(self, block: bytes, start_offset: int) -> Encoded:
        """`block` holds whole lines, each ending in a newline, starting at `start_offset`.

        A source whose lines are each one record (`_block_parse`: no joining, so no state
        from line to line) has a block it cannot parse whole halved until its odd lines are
        found (`agent.encode.halves`), and CRLF lines read as LF lines (`agent.encode.crlf`):
        one unmatched line in a thousand, or Windows line ends, made an nginx file go line
        by line, at 60-70k lines/s instead of 160k-240k."""
        if self._assembler.pending_offset is None:
            if self._charset == _SINGLE_BYTE:
                return in_halves(
                    self._charset_block, self._by_line, block, start_offset, self._piece_bytes
                )
            if self._charset == _WIDE:  # not halved: a cut after a 0x0A may be mid-character
                encoded = self._charset_block(block, start_offset)
                return self._by_line(block, start_offset) if encoded is None else encoded
            if self._block_parse is not None:
                return in_halves(
                    self._parsed_block, self._by_line, block, start_offset, self._piece_bytes
                )
            encoded = None
            if self._docker:
                encoded = self._docker_block(block, start_offset)
            elif self._cri is not None:
                encoded = self._cri_block(block, start_offset)
            if encoded is not None:
                return encoded
        return self._by_line(block, start_offset)

    def _parsed_block(self, block: bytes, start_offset: int) -> Encoded | None:
        """`_whole_block`, for CRLF lines too: read as the LF block, its offsets moved back
        (`crlf_block`), the read position then the CRLF block's end (the LF block's was
        short a byte a line: a forced flush after it ended a piece there and moved the
        checkpoint back). Not with event ids, which `build_parsed` makes from the LF
        block's offsets (line k's id would be that of its offset less k)."""
        if b"\r" in block and self.source.event_id is None:
            found = crlf_block(self._whole_block, block, start_offset)
            if found is not None:
                self._position = start_offset + len(block)
                self._assembler.skip_to(self._position)
                return found
        return self._whole_block(block, start_offset)

    def _by_line(self, block: bytes, start_offset: int) -> Encoded:
        """`block` record by record: the definition the block paths are compared with."""
        lines: list[tuple[bytes, int, int]] = []
        rejected: list[Rejected] = []
        offset = start_offset
        for line in block.split(b"\n")[:-1]:
            line_start = offset
            offset += len(line) + 1
            if len(line) > self._max_line:
                detail = f"longer than max_line_bytes={self._max_line}; head kept"
                rejected.append(
                    Rejected("line_too_long", line_start, line[: self._max_line], detail)
                )
                continue
            lines.append((line, line_start, offset))
        self._position = offset
        self._resolve_identity()
        return self._encode(self._assembler.feed(lines), rejected)

    def _whole_block(self, block: bytes, start_offset: int) -> Encoded | None:
        """A block of plain lines every one of which the parser matches, parsed with one
        scan of its pattern over each slice of the block and built by
        `EventBuilder.build_parsed`: the same events `encode` makes line by line
        (tests/unit/test_parsed_blocks.py), without a record per line. None for any other
        block (a long, blank or non-ASCII line, a CR, a line the parser does not match, a
        time that needs the line path): line by line."""
        assert self._block_parse is not None
        if not block.isascii() or b"\r" in block or block[:1].isspace():
            return None
        if BLANK_LINE.search(block) or not lines_within(block, self._max_line):
            return None
        return self._sliced(block, start_offset, self._parsed_slice)

    def _parsed_slice(self, block: bytes, start_offset: int) -> _Slice | None:
        assert self._block_parse is not None
        text = block.decode("ascii")
        lines = text.split("\n")
        lines.pop()
        parsed = self._block_parse(text, len(lines))
        if parsed is None:
            return None
        starts = list(accumulate(map(add, map(len, lines), repeat(1)), initial=start_offset))
        built = self._builder.build_parsed(parsed, starts)
        return None if built is None else _Slice(built[0], starts, 0, built[1])

    def _charset_block(self, block: bytes, start_offset: int) -> Encoded | None:
        """A block in a charset other than UTF-8 decoded at once (`agent.encode.transcode`),
        its lines made records as the line path makes them and built without a record each
        (`_charset_events`), offsets those of the file's own bytes: the same events, counts
        and framer state `encode` gives line by line (tests/unit/test_s5_charset_blocks.py).
        None for a block with a line over ``max_line_bytes`` (measured on the file's bytes,
        as the line path measures it), that the charset cannot vouch for at once (see
        `wide_lines`), whose lines all are blank, or whose events need the line path (a
        line the parser does not match, a time it must read, an event too large)."""
        if not lines_within(block, self._max_line):
            return None
        assembler = self._assembler
        if self._charset == _WIDE:
            assert assembler.framer is not None
            found = wide_lines(assembler.framer, block, start_offset)
        else:
            found = single_byte_lines(block, start_offset, self._options_charset)
        if found is None:
            return None
        self._resolve_identity()
        chunks: list[bytes] = []
        sizes: list[int] = []
        starts: list[int] = []
        blank = missing = 0
        for first in range(0, len(found.lines), _CHARSET_SLICE):
            lines = found.lines[first : first + _CHARSET_SLICE]
            line_starts = found.starts[first : first + len(lines)]
            kept = list(map(bool, map(str.strip, lines)))
            if not all(kept):  # a blank record is no event
                blank += len(kept) - sum(kept)
                lines, line_starts = list(compress(lines, kept)), list(compress(line_starts, kept))
            if not lines:
                continue
            built = self._charset_events(lines, line_starts)
            if built is None:
                return None
            sizes += map(len, built[0])
            chunks.append(b"\n".join(built[0]))
            starts += line_starts
            missing += built[1]
        encoded = self._cut(chunks, sizes, starts, start_offset + len(block), blank, missing)
        if encoded is not None:
            assembler.counters.invalid_bytes += found.invalid
            assembler.counters.bom_stripped += found.boms
            if found.wide is not None:
                assert assembler.framer is not None
                assembler.framer.take(found.wide)
        return encoded

    def _charset_events(
        self, lines: list[str], starts: list[int]
    ) -> tuple[list[bytes], int] | None:
        """The events of records `lines` (none blank) from `starts`, as `EventBuilder.build`
        makes each (`build_parsed`), and how many had no time; None when a record needs the
        line path."""
        if self._charset_parse is not None:
            parsed = self._charset_parse("\n".join(lines) + "\n", len(lines))
        elif self._json:
            parsed = _json_objects(lines)
        elif self._plain_text:
            return self._text_events(lines, starts)
        else:
            parsed = [{"message": line} for line in lines]
        if parsed is None:
            return None
        try:
            return self._builder.build_parsed(parsed, starts)
        except (orjson.JSONEncodeError, RecursionError):
            return None  # the line path dead-letters it

    def _text_events(self, lines: list[str], starts: list[int]) -> tuple[list[bytes], int] | None:
        """`_charset_events` of text records whose event is their message in one and the same
        frame (no parser, no id, a time that is not the message): the event `build_parsed`
        makes of a DEL, its DEL replaced by each message as `orjson.dumps` writes it, all
        messages escaped by one call (DEL, which JSON writes as itself, joining them, as
        `TextBlocks._whole_text` does). None when a message holds a DEL."""
        joined = _DEL.join(lines)
        if joined.count(_DEL) != len(lines) - 1:
            return None
        found = self._builder.build_parsed([{"message": _DEL}], starts[:1])
        if found is None or found[0][0].count(b"\x7f") != 1:
            return None
        head, _, tail = found[0][0].partition(b"\x7f")
        escaped = orjson.dumps(joined)[1:-1].replace(b"\x7f", tail + b"\n" + head)
        return (head + escaped + tail).split(b"\n"), found[1] * len(lines)

    def _docker_block(self, block: bytes, start_offset: int) -> Encoded | None:
        """A block of Docker json-file lines, each a whole line (its ``log`` ends in a
        newline), each slice decoded by one msgspec call (`DOCKER_ROWS`, rows as the JSON
        fast path reads them: `JsonBlocks.probe`) and built by
        `EventBuilder.build_container_lines`: the same events `encode` makes line by line
        (tests/unit/test_parsed_blocks.py). None for any other block (a partial line, a line
        that is not such an object, a long line, a CR, a time that needs the line path)."""
        if b"\r" in block or not lines_within(block, self._max_line) or not unremarkable(block):
            return None
        return self._sliced(block, start_offset, self._docker_slice)

    def _docker_slice(self, block: bytes, start_offset: int) -> _Slice | None:
        rows_text = block.replace(b"\n", ROW_SEPARATOR)
        count = (len(rows_text) - len(block)) // (len(ROW_SEPARATOR) - 1)
        try:
            rows = DOCKER_ROWS.decode(b"".join((b"[[", rows_text, _LAST_ROW)))
        except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
            return None
        rows.pop()
        if len(rows) != count:  # no nesting to bound: the row's types hold none deeper than 2
            return None
        lines = list(map(_LINE, rows))
        del rows
        logs = list(map(_LOG, lines))
        if not all(map(_WHOLE, logs)):
            return None  # a partial line: joined line by line
        messages = [log[:-1].removesuffix("\r") for log in logs]
        del logs
        raw = block.split(b"\n")
        raw.pop()
        starts = list(accumulate(map(add, map(len, raw), repeat(1)), initial=start_offset))
        streams, times = list(map(_STREAM, lines)), list(map(_TIME, lines))
        kept = list(map(bool, map(str.strip, messages)))  # a blank message is no event
        blank = count - sum(kept)
        if blank:
            messages = list(compress(messages, kept))
            streams, times = list(compress(streams, kept)), list(compress(times, kept))
            starts = [*compress(starts, kept), starts[-1]]
        built = self._builder.build_container_lines(messages, streams, times, starts)
        return None if built is None else _Slice(built[0], starts, blank, built[1])

    def _sliced(
        self,
        block: bytes,
        start_offset: int,
        encode_slice: Callable[[bytes, int], _Slice | None],
    ) -> Encoded | None:
        """`block` a slice of about `SLICE_BYTES` at a time (its per-line objects are many,
        and a slice at a time keeps their peak memory small; so does joining each slice's
        events at once: `orjson.dumps` gives each a 4 KiB buffer however short it is, a
        block's worth of them was 13 MB of nginx events), the events of all slices cut
        as `_pieces` cuts (nothing is held, so each piece ends where the next begins). None
        when a slice is None (nothing is counted then), when no line makes an event or one
        is too large: the caller goes line by line."""
        self._resolve_identity()
        chunks: list[bytes] = []  # each slice's events, joined at once (`_joined`)
        sizes: list[int] = []
        starts: list[int] = []
        blank = missing = position = 0
        while position < len(block):
            end = block.rfind(b"\n", position, position + SLICE_BYTES) + 1 or len(block)
            found = encode_slice(block[position:end], start_offset + position)
            if found is None:
                return None
            if found.events:
                sizes += map(len, found.events)
                chunks.append(b"\n".join(found.events))
            del found.starts[-1]  # the next slice's first line
            starts += found.starts
            blank += found.blank
            missing += found.missing
            position = end
        return self._cut(chunks, sizes, starts, start_offset + len(block), blank, missing)

    def _cut(
        self,
        chunks: list[bytes],
        sizes: list[int],
        starts: list[int],
        end: int,
        blank: int,
        missing: int,
    ) -> Encoded | None:
        """A block's events (`chunks` of them joined by newlines, each of `sizes`, from the
        lines at `starts`) cut as `_pieces` cuts, nothing being held (each piece ends where
        the next begins, the last at `end`); None when there is no event or one is too
        large. Counts the block's missing times, and moves reading to `end`."""
        if not sizes or max(sizes) > self._max_event:
            return None
        starts.append(end)
        self._builder.counters.time_missing += missing
        self._position = end
        self._assembler.skip_to(end)
        chunks.append(b"")  # the last event's newline, without a copy of the whole
        data = b"\n".join(chunks)
        del chunks  # before the pieces are cut from `data`: two copies at a time, not three
        ends = list(accumulate(map(add, sizes, repeat(1))))
        pieces = cut_events(data, ends, starts, self._piece_bytes)
        # offsets as lists, as the line path gives them
        return Encoded([replace(p, offsets=list(p.offsets)) for p in pieces], [], blank)

    def _cri_block(self, block: bytes, start_offset: int) -> Encoded | None:
        """A block of CRI lines (containerd, CRI-O) whose ``P`` fragments all find their
        ``F`` in the block: a slice at a time (`SLICE_BYTES`), one scan of `CRI_LINES`
        over it, the fragments joined per stream as `_PartialJoiner` joins them (across
        slices), the events built by `EventBuilder.build_container_lines` and joined at
        once: the same events `encode` makes line by line (tests/unit/test_parsed_blocks.py).
        None for any other block (a line that is not CRI, a CR or BOM, bytes that are not
        UTF-8, a long line, a fragment left open at the end or grown past
        ``partial_max_bytes``, records that complete out of order, a time that needs the
        line path)."""
        if b"\r" in block or not lines_within(block, self._max_line):
            return None
        self._resolve_identity()
        held: dict[str, tuple[list[str], int, str]] = {}
        chunks: list[bytes] = []
        sizes: list[int] = []
        starts: list[int] = []
        blank = missing = joined = position = 0
        while position < len(block):
            end = block.rfind(b"\n", position, position + SLICE_BYTES) + 1 or len(block)
            found = self._cri_slice(block[position:end], start_offset + position, held)
            if found is None:
                return None
            messages, streams, times, slice_starts, slice_joined = found
            if starts and slice_starts and slice_starts[0] <= starts[-1]:
                return None  # records completing out of order
            starts += slice_starts
            joined += slice_joined
            kept = list(map(bool, map(str.strip, messages)))  # a blank message is no event
            if not all(kept):
                blank += len(kept) - sum(kept)
                messages = list(compress(messages, kept))
                streams, times = list(compress(streams, kept)), list(compress(times, kept))
                del starts[len(starts) - len(kept) :]
                starts += compress(slice_starts, kept)
            if messages:
                built = self._builder.build_container_lines(
                    messages, streams, times, starts[len(starts) - len(messages) :]
                )
                if built is None:
                    return None
                sizes += map(len, built[0])
                chunks.append(b"\n".join(built[0]))
                missing += built[1]
            position = end
        if held:
            return None  # a fragment still open: the line path holds it
        encoded = self._cut(chunks, sizes, starts, start_offset + len(block), blank, missing)
        if encoded is not None:
            self._assembler.counters.partial_joined += joined
        return encoded

    def _cri_slice(
        self, block: bytes, start_offset: int, held: dict[str, tuple[list[str], int, str]]
    ) -> tuple[list[str], list[str], list[str], list[int], int] | None:
        """The records the lines of `block` complete (messages, streams, times, starts, how
        many were joined), `held` keeping the fragments still open per stream."""
        assert self._cri is not None
        try:
            text = block.decode("utf-8")
        except UnicodeDecodeError:
            return None
        if BOM in text:
            return None
        found = CRI_LINES.findall(text)
        raw = block.split(b"\n")
        raw.pop()
        if len(found) != len(raw):
            return None
        line_starts = accumulate(map(add, map(len, raw), repeat(1)), initial=start_offset)
        messages: list[str] = []
        streams: list[str] = []
        times: list[str] = []
        starts: list[int] = []
        joined = 0
        for (stamp, stream, tag, message), start in zip(found, line_starts, strict=False):
            fragments = held.get(stream)
            if fragments is None:
                if tag == "F":
                    messages.append(message)
                    streams.append(stream)
                    times.append(stamp)
                    starts.append(start)
                    continue
                fragments = held[stream] = ([], start, stamp)
            parts = fragments[0]
            parts.append(message)
            if tag == "P":
                if sum(map(len, parts)) >= self._cri:
                    return None  # released by size: the line path counts it
                continue
            del held[stream]
            messages.append("".join(parts))
            streams.append(stream)
            times.append(fragments[2])
            starts.append(fragments[1])
            joined += len(parts) > 1
        if any(map(ge, starts, starts[1:])):
            return None  # records completing out of order
        return messages, streams, times, starts, joined

    def flush(self, now: float | None = None, *, force: bool = False) -> Encoded:
        """Records whose flush timeout is up, or with `force` everything held (a backfill's
        end, a reloaded source): their pieces end where reading stands, or before what is
        still held."""
        records = self._assembler.flush(now, force=force)
        if records:
            self._resolve_identity()
        return self._encode(records, [])

    def hand_over(self) -> dict[str, Any]:
        """What this file holds, for the next file of the same container (a rotation)."""
        return self._assembler.hand_over()

    def restore(self, state: dict[str, Any]) -> None:
        """Hold what the previous file of the container held, at this file's read position."""
        self._assembler.restore(state, at=self._position)

    def take_counts(self) -> dict[str, int]:
        """Counter increments since the last call (only those that moved), for the source's
        stats: files come and go, the source's totals must not."""
        current = {**asdict(self._assembler.counters), **asdict(self._builder.counters)}
        moved = {k: v - self._reported.get(k, 0) for k, v in current.items()}
        self._reported = current
        return {k: v for k, v in moved.items() if v}

    def _resolve_identity(self) -> None:
        if self._identity is not None:
            self._builder.identity = self._identity()
            self._identity = None

    def _encode(self, records: list[Record], rejected: list[Rejected]) -> Encoded:
        events: list[tuple[bytes, int]] = []
        blank = 0
        for record in records:
            if not record.text or record.text.isspace():
                blank += 1
                continue
            built = self._build(record)
            if isinstance(built, Rejected):
                rejected.append(built)
            else:  # with its newline: a copy of its size (orjson.dumps' buffer is 4 KiB)
                events.append((built + b"\n", record.start_offset))
        return Encoded(self._pieces(events), rejected, blank)

    def _build(self, record: Record) -> bytes | Rejected:
        if self._json and _too_deep(record.text):
            data = record.text.encode("utf-8", "replace")
            detail = f"nested deeper than {MAX_NESTING_DEPTH}"
            return Rejected(TOO_DEEPLY_NESTED, record.start_offset, data, detail)
        try:
            event = self._builder.build(record)
        except (orjson.JSONEncodeError, RecursionError) as exc:  # bounded above; never raise
            data = record.text.encode("utf-8", "replace")
            return Rejected("unencodable", record.start_offset, data, str(exc)[:200])
        if isinstance(event, Rejection):
            data = record.text.encode("utf-8", "replace")
            return Rejected(event.reason, record.start_offset, data, event.detail)
        if len(event) > self._max_event:
            data = record.text.encode("utf-8", "replace")
            return Rejected(
                "event_too_large", record.start_offset, data, f"{len(event)} bytes encoded"
            )
        return event

    def _safe_end(self) -> int:
        pending = self._assembler.pending_offset
        return self._position if pending is None else min(self._position, pending)

    def _pieces(self, events: list[tuple[bytes, int]]) -> list[EncodedPiece]:
        """Events (each with its newline) in release order, cut at `piece_bytes`; each piece
        ends before every later piece's records and every held line (always one piece, maybe
        empty: its ticket moves the checkpoint over lines that became nothing, such as
        blanks)."""
        groups: list[list[tuple[bytes, int]]] = [[]]
        size = 0
        for event, start in events:
            if groups[-1] and size + len(event) > self._piece_bytes:
                groups.append([])
                size = 0
            groups[-1].append((event, start))
            size += len(event)
        end = self._safe_end()
        pieces: list[EncodedPiece] = []
        for group in reversed(groups):
            data = b"".join(event for event, _ in group)
            starts = [start for _, start in group]
            pieces.append(EncodedPiece(data, len(group), end, starts))
            end = min([end, *starts])
        pieces.reverse()
        return pieces


def _block_parser(options: SourceParsing) -> BlockParse | None:
    """The whole-block parse of a source whose lines are each one record (no container
    format, no multiline, UTF-8) and whose parser has one (`block_parser`)."""
    if options.parser is None:
        return None
    if options.kubernetes is not None or options.multiline is not None:
        return None
    if options.charset != "utf-8":
        return None
    return block_parser(options.parser)


_DEL: Final = "\x7f"
_SINGLE_BYTE: Final = "single-byte"
_WIDE: Final = "wide"
_CHARSET_SLICE: Final = 256
"""Records of a charset block built at a time: their dicts and events are many, and a slice
at a time keeps their peak memory small (`SLICE_BYTES`)."""


def _charset_blocks(options: SourceParsing) -> str | None:
    """How a source's blocks may be decoded at once (`_SINGLE_BYTE`, `_WIDE`), when it is in
    a charset other than UTF-8 and each of its lines is one record (no container format, no
    multiline) built from the line alone (no parser, JSON, or a parser with a block form)."""
    if options.kubernetes is not None or options.multiline is not None:
        return None
    parser = options.parser
    if parser is not None and parser.type != "json" and block_parser(parser) is None:
        return None
    if options.charset in WIDE_CHARSETS:
        return _WIDE
    if options.charset != "utf-8" and single_byte(options.charset):
        return _SINGLE_BYTE
    return None


def _json_objects(lines: list[str]) -> list[dict[str, Any]] | None:
    """Each line as the JSON object the json parser reads it as; None when one is not an
    object (the parser does not match it: the line path counts it) or is nested too deep
    (the line path dead-letters it)."""
    if any(map(_too_deep, lines)):
        return None
    try:
        values = list(map(orjson.loads, lines))
    except orjson.JSONDecodeError:
        return None
    if set(map(type, values)) != {dict}:
        return None
    return values


SLICE_BYTES: Final = 16 * 1024
"""How much of a block the whole-block paths parse at a time: the agent's peak RSS on the
parsed bench shapes was 1.6-2.7 MB lower than with 64 KiB slices (8 KiB: no lower), the
encoder's CPU the same within the noise."""


@dataclass(slots=True)
class _Slice:
    """A slice's events, the starts of the lines they came from (one more: where the line
    after the slice's last one starts), its blank lines and the times it found missing."""

    events: list[bytes]
    starts: list[int]
    blank: int
    missing: int


class DockerLine(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    """A Docker json-file line as `decode_docker` reads it: its keys only, every value
    checked (msgspec would skip another key's value where orjson refuses a number that
    overflows), ``attrs`` (``--log-opt labels=...``) read and left out, as there."""

    log: str
    stream: str = ""
    time: str = ""
    attrs: dict[str, str] = msgspec.field(default_factory=dict)


class DockerRow(msgspec.Struct, array_like=True, forbid_unknown_fields=True, gc=False):
    """``[line]``: one line's row."""

    line: DockerLine


DOCKER_ROWS: Final = msgspec.json.Decoder(list[DockerRow])
"""``[[line]\n,[line]\n,...]``: one row per line, as `JsonBlocks.probe` reads them."""
_LAST_ROW: Final = b'{"log":"\\n"}]]'
"""The row after the last separator (popped)."""
_LINE = attrgetter("line")
_LOG = attrgetter("log")
_STREAM = attrgetter("stream")
_TIME = attrgetter("time")
_WHOLE = methodcaller("endswith", "\n")


CRI_LINES: Final = re.compile(r"^(\S+) (stdout|stderr) ([PF])(?: ([^\n]*))?$", re.M)
"""`decode_cri`'s pattern over a block: each match one whole line (``[^\n]`` for DOTALL's
``.``: no line holds a newline)."""


def _cri_blocks(options: SourceParsing) -> int | None:
    """``partial_max_bytes`` when a source's blocks may be read as CRI lines at once: the CRI
    format and nothing after it but building events (no parser, no multiline, UTF-8)."""
    kubernetes = options.kubernetes
    if kubernetes is None or kubernetes.format != "cri":
        return None
    if options.parser is None and options.multiline is None and options.charset == "utf-8":
        return kubernetes.partial_max_bytes
    return None


def _docker_blocks(options: SourceParsing) -> bool:
    """Whether a source's blocks may be read as whole Docker json-file lines at once: the
    Docker format and nothing after it but building events (no parser, no multiline,
    UTF-8)."""
    kubernetes = options.kubernetes
    if kubernetes is None or kubernetes.format != "docker":
        return False
    return options.parser is None and options.multiline is None and options.charset == "utf-8"


def _too_deep(text: str) -> bool:
    """A JSON record nested deeper than `MAX_NESTING_DEPTH`: the builder re-serializes every
    event, and orjson.dumps stops at 255 levels. Counted exactly only for a record with that
    many ``[``/``{``."""
    if text.count("[") + text.count("{") <= MAX_NESTING_DEPTH:
        return False
    return nesting_depth(text.encode("utf-8", "replace")) > MAX_NESTING_DEPTH
