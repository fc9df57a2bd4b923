"""JSON lines with event ids (``event_id = true`` and no other parsing option).

Such a source is a plain JSON source plus one member: each event is what the fast
`agent.encode.fast.Encoder` makes of its line (the line forwarded as written, validated, the
read time, its own time or static fields spliced before the closing brace) with
``"<id_field>":"<16 hex>",`` right after its opening brace. The id is what it always was
(`agent.parse.event.event_id`: blake2b-64 of ``<identity>:<line start>``), so a line read
again, before or after an upgrade, gets the same one.

`IdEncoder` wraps an `Encoder` and adds the ids to what it returns. The definition, and the
path for every block the whole-block path cannot vouch for, is `_one_by_one`: each event on
its own (`_event_with_id`). The whole-block path (`_spliced`) writes the same bytes with no
Python step per event: one ``splitlines``, one ``min`` and ``max`` (every event opens with
``{"``), one search for the id field, the ids made by ``map``, one ``join`` a piece; the
property tests compare the two (tests/unit/test_encode_ids.py). After the opening brace,
not before the closing one: an event's first bytes are found in C whatever it nests, its last
brace only when it holds no other (the search for a two-byte ``}\n`` costs more than the
whole path).

- The id is part of every event, so the wrapped `Encoder` is given a request limit that much
  smaller: a line that could not fit a request with its id is refused there
  (``line_too_long``, ``event_too_large``, the size said with the id) as any line that could
  not fit.
- A line that holds the id field already has it replaced, in place: that event is read and
  written again (``orjson``), as the parsing path did; a key twice would leave the value to
  the reader. One orjson reads wrong or not at all (an integer beyond 64 bits, 1e400) is
  written again by its top-level members, their values as written (msgspec). A static
  field of that name gives way to the id (dropped).
- The wrapped `Encoder` holds nothing back, nor does this: no flush, no hand-over.
"""

from __future__ import annotations

import hashlib
import re
import time
from array import array
from collections.abc import Callable, Sequence
from functools import partial
from itertools import accumulate, chain, repeat
from operator import add, attrgetter, getitem
from typing import Final, cast

import msgspec
import orjson

from agent.config import SourceConfig
from agent.encode.cut import cut_events
from agent.encode.fast import Encoder
from agent.encode.values import NOTHING, NOW, Encoded, EncodedPiece, Rejected, json_text
from agent.parse.settings import PARSING_KEYS

_BLAKE2B_64: Final = partial(hashlib.blake2b, digest_size=8)
_HEXDIGEST: Final = hashlib.blake2b.hexdigest
_HEX_DIGITS: Final = 16
UTF8_BOM: Final = b"\xef\xbb\xbf"
"""Dropped at offset 0 (Polaris refuses it); the first line's id stays that of offset 0, as
the parsing path numbered it."""
_CR: Final = b"\r"
_AFTER_BRACE: Final = slice(1, None)
_SLICE: Final = cast(Callable[[bytes, slice], bytes], getitem)
_TOO_LARGE: Final = "event_too_large"
_ENCODED_SIZE: Final = re.compile(r"(\d+)( bytes encoded.*)", re.DOTALL)
_SHORT_ESCAPES: Final = {'"': '"', "\\": "\\", "/": "/", "\b": "b", "\f": "f", "\n": "n"}
_SHORT_ESCAPES.update({"\r": "r", "\t": "t"})


def takes_ids(source: SourceConfig) -> bool:
    """A JSON source whose only parsing option is ``event_id`` (UTF-8, no parser): what
    `IdEncoder` encodes."""
    return (
        source.format == "json"
        and source.event_id is not None
        and source.model_fields_set & PARSING_KEYS == {"event_id"}
        and source.charset == "utf-8"
    )


class IdEncoder:
    """One file's JSON lines -> pieces of events with ids. Not thread-safe: one per file."""

    def __init__(
        self,
        source: SourceConfig,
        *,
        path: str,
        identity: Callable[[], str],
        max_event_bytes: int,
        piece_bytes: int,
        now: NOW = time.time,
        whole_blocks: bool = True,
    ) -> None:
        """`whole_blocks`: False sends every block through `_one_by_one`, the definition the
        property tests compare the whole-block path with."""
        assert source.event_id is not None
        self._whole = whole_blocks
        self._path = path
        self._identity_of: Callable[[], str] | None = identity
        self._format = b""
        self._id_field = source.event_id
        self._opening = b"{" + orjson.dumps(self._id_field) + b':"'
        self._growth = len(self._opening) - 1 + _HEX_DIGITS + 2
        """What the id adds to an event (`{` is there already, `",` closes the member)."""
        self._key = IdKey(self._id_field)
        self._max_event = max_event_bytes - 1  # room for the newline
        self._piece_bytes = piece_bytes
        fields = {k: v for k, v in source.fields.items() if k != self._id_field}
        self._encoder = Encoder(
            source.model_copy(update={"fields": fields}),
            max_event_bytes=max_event_bytes - self._growth,
            piece_bytes=piece_bytes,
            now=now,
        )

    def __repr__(self) -> str:
        return f"<IdEncoder {self._path} id={self._id_field!r} {self._encoder!r}>"

    @property
    def max_line_bytes(self) -> int:
        """The longest line that can become an event with its id."""
        return self._encoder.max_line_bytes

    @property
    def pending_offset(self) -> int | None:
        return None  # one event per line, none held (nor by the wrapped Encoder)

    def next_flush(self) -> float | None:
        return None

    def flush(self, now: float | None = None, *, force: bool = False) -> Encoded:
        return NOTHING

    def take_counts(self) -> dict[str, int]:
        """The wrapped `Encoder`'s counts (``time_missing``, ``time_unparsed``)."""
        return self._encoder.take_counts()

    def encode(self, block: bytes, start_offset: int) -> Encoded:
        """`block` holds whole lines, each ending in a newline, starting at `start_offset`:
        by `_spliced` when it can vouch for the block, else by `_one_by_one` (the
        definition)."""
        bom = start_offset == 0 and block.startswith(UTF8_BOM)
        if bom:
            block, start_offset = block[len(UTF8_BOM) :], len(UTF8_BOM)
        encoded = self._encoder.encode(block, start_offset)
        rejected = list(map(self._with_id_size, encoded.rejected))
        end = encoded.pieces[-1].end_offset if encoded.pieces else start_offset + len(block)
        count = sum(p.events for p in encoded.pieces)
        if not count:
            return Encoded([EncodedPiece(b"", 0, end, [])], rejected, encoded.blank)
        blank = encoded.blank
        data = b"".join(p.data for p in encoded.pieces)
        # the events with their newlines (no CR in them: `splitlines` would split there)
        lines = data.splitlines(keepends=True) if _CR not in data else None
        if lines is not None and data == block:  # every line forwarded as written
            bounds = list(accumulate(map(len, lines), initial=start_offset))
            starts = bounds[:-1]
        else:
            starts = _line_starts(block, start_offset, encoded.pieces, count)
            bounds = []
        del encoded  # its pieces: `data` holds their bytes (memory: one block less at the peak)
        items = self._id_items(starts, bom=bom)
        if (
            self._whole
            and lines is not None
            and len(lines) == count
            and self._spliceable(data, lines)
        ):
            del data  # `lines` holds its bytes
            if not bounds:  # where each event ends in `data`
                bounds = list(accumulate(map(len, lines), initial=0))
            pieces = self._spliced(lines, items, bounds, starts, end)
        else:
            pieces, refused = self._one_by_one(data, starts, items, end, block, start_offset)
            if refused:
                rejected = sorted(rejected + refused, key=attrgetter("offset"))
        return Encoded(pieces, rejected, blank)

    def _id_items(self, starts: list[int], *, bom: bool) -> list[bytes]:
        """``{"<id_field>":"<id>",`` for each event whose line starts at `starts[i]`, the
        id as 16 hex digits (made by ``map``, cut apart by one ``split``); the line after a
        dropped `bom` keeps the id of offset 0."""
        if not self._format:  # asked once, at the first block (the file's identity is set)
            assert self._identity_of is not None
            self._format = self._identity_of().encode().replace(b"%", b"%%") + b":%d"
            self._identity_of = None
        offsets: Sequence[int] = starts
        if bom and starts[0] == len(UTF8_BOM):
            offsets = [0, *starts[1:]]
        digests = map(_HEXDIGEST, map(_BLAKE2B_64, map(self._format.__mod__, offsets)))
        opening = self._opening.decode()
        text = opening + f'",\0{opening}'.join(digests) + '",'
        return text.encode().split(b"\0")

    def _spliceable(self, data: bytes, lines: list[bytes]) -> bool:
        """Whether every event of `data` (its `lines`) takes its id right after its first
        byte, as `_event_with_id` writes it: each opens with ``{"`` (no space, not empty:
        one ``min`` and one ``max``, in C) and none can hold the id field."""
        return min(lines) >= b'{"' and max(lines) < b"{#" and not self._key.maybe_in(data)

    def _spliced(
        self,
        lines: list[bytes],
        items: list[bytes],
        bounds: list[int],
        starts: list[int],
        end: int,
    ) -> list[EncodedPiece]:
        """The events `lines` (each opening with ``{"``, ending in its newline; event k
        from ``bounds[k]`` to ``bounds[k + 1]``, whatever the origin) with their id `items`
        in place of their ``{``, cut as `cut_events` cuts (a piece's events within
        `piece_bytes`, or its one event), each piece joined once."""
        pieces: list[EncodedPiece] = []
        first, begin = 0, 0
        while first < len(lines):
            last = _last_within(bounds, self._growth, first, begin + self._piece_bytes)
            # a piece at a time: the lines' copies without their brace are one piece's worth
            joined: list[bytes] = [b""] * (2 * (last + 1 - first))
            joined[0::2] = items[first : last + 1]
            joined[1::2] = map(_SLICE, lines[first : last + 1], repeat(_AFTER_BRACE))
            data = b"".join(joined)
            del joined
            offsets = array("q", starts[first : last + 1])
            stop = starts[last + 1] if last + 1 < len(starts) else end
            pieces.append(EncodedPiece(data, last - first + 1, stop, offsets))
            first, begin = last + 1, begin + len(data)
        return pieces

    def _one_by_one(
        self,
        data: bytes,
        starts: list[int],
        items: list[bytes],
        end: int,
        block: bytes,
        start_offset: int,
    ) -> tuple[list[EncodedPiece], list[Rejected]]:
        """The events of `data` (one a line, from the lines starting at `starts`) with their
        ids, each on its own (`_event_with_id`), cut into pieces by `cut_events`; the
        events refused, as dead letters of their lines."""
        events: list[bytes] = []
        kept: list[int] = []
        refused: list[Rejected] = []
        for event, start, item in zip(data.split(b"\n"), starts, items, strict=False):
            made = self._event_with_id(event, item)
            if isinstance(made, str) or len(made) > self._max_event:
                line = _line_at(block, start - start_offset)
                if isinstance(made, str):
                    refused.append(Rejected(made, start, line))
                else:
                    detail = f"{len(made)} bytes encoded"
                    refused.append(Rejected(_TOO_LARGE, start, line, detail))
                continue
            events.append(made)
            kept.append(start)
        if not events:
            return [EncodedPiece(b"", 0, end, [])], refused
        ends = list(accumulate(map(add, map(len, events), repeat(1))))
        data = b"\n".join(events) + b"\n"
        return cut_events(data, ends, [*kept, end], self._piece_bytes), refused

    def _event_with_id(self, event: bytes, item: bytes) -> bytes | str:
        """`event` (a JSON object) with its id: `item` (``{"<id_field>":"<id>",``) in place
        of its opening brace (without the comma in an empty object); or, when the object
        holds the id field already, the id set in its place and the event written again
        (``orjson``), so that no key is there twice; an event orjson would read wrong or
        not at all (an integer beyond 64 bits, 1e400) is written again by its top-level
        members, their values as written (`_rewritten_as_written`)."""
        if self._key.maybe_in(event):
            identifier = item[len(self._opening) : -2].decode()
            try:
                obj = orjson.loads(event)
            except orjson.JSONDecodeError:
                obj = None  # a number beyond a double's range: read by msgspec below
            if obj is None or (self._id_field in obj and _lossy(obj, event)):
                written = self._rewritten_as_written(event, identifier)
                if written is not None:
                    return written
            elif self._id_field in obj:
                obj[self._id_field] = identifier
                return orjson.dumps(obj)
        brace = event.index(b"{") + 1
        rest = event[brace:]
        if rest.lstrip().startswith(b"}"):
            return event[: brace - 1] + item[:-1] + rest
        return event[: brace - 1] + item + rest

    def _rewritten_as_written(self, event: bytes, identifier: str) -> bytes | str | None:
        """`event` with `identifier` in place of its own id member, every other member's
        value kept as written, for an event orjson reads wrong or not at all (an integer
        beyond 64 bits becomes a float, 1e400 an error; the fast path forwards both as
        written): its top-level members read by msgspec, values left raw. None when the
        event holds no id member of its own (it merely mentions the name: the id goes after
        its brace as for any other); ``invalid_json`` when even msgspec cannot read it."""
        try:
            members = msgspec.json.decode(event, type=dict[str, msgspec.Raw])
        except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
            return "invalid_json"
        if self._id_field not in members:
            return None
        members[self._id_field] = msgspec.Raw(orjson.dumps(identifier))
        return msgspec.json.encode(members)

    def _with_id_size(self, rejected: Rejected) -> Rejected:
        """A line the wrapped `Encoder` found too large, with the size it has with its id."""
        if rejected.reason != _TOO_LARGE:
            return rejected
        size = _ENCODED_SIZE.fullmatch(rejected.detail)
        if size is None:
            return rejected
        detail = f"{int(size[1]) + self._growth}{size[2]}"
        return Rejected(rejected.reason, rejected.offset, rejected.data, detail)


class IdKey:
    """Whether a JSON text may hold a key named `name`: a superset, found by a scan in C.

    The key is written as `orjson.dumps` writes it, or with escapes; any escaped form
    holds an escape of one of its characters (``\\u0065`` for ``e``, ``\\/`` for ``/``...),
    looked for only where the text holds a backslash."""

    def __init__(self, name: str) -> None:
        self._plain = json_text(name)
        forms = {_escape(c) for c in name}
        forms |= {re.escape("\\" + _SHORT_ESCAPES[c]) for c in name if c in _SHORT_ESCAPES}
        self._escapes = re.compile("|".join(sorted(forms)).encode(), re.IGNORECASE)

    def maybe_in(self, text: bytes) -> bool:
        if self._plain in text:
            return True
        return b"\\" in text and self._escapes.search(text) is not None


def _lossy(obj: object, event: bytes) -> bool:
    """Whether orjson's reading of `event` (`obj`) differs from its exact value: orjson
    reads an integer beyond 64 bits as a float, so writing `obj` again would change it
    (msgspec keeps such an integer exact)."""
    try:
        return bool(obj != msgspec.json.decode(event))
    except (msgspec.DecodeError, RecursionError):
        return True


def _escape(char: str) -> str:
    """``\\uXXXX`` for `char` as a pattern (for a character beyond the BMP: its first
    surrogate, which any escape of it starts with)."""
    code = ord(char)
    if code > 0xFFFF:
        code = 0xD800 + ((code - 0x10000) >> 10)
    return re.escape("\\u") + f"{code:04x}"


def _line_starts(
    block: bytes, start_offset: int, pieces: list[EncodedPiece], count: int
) -> list[int]:
    """Where each event's line starts: every line's start when every line became an event
    (the common case: one split, one accumulate, in C), else the pieces' own offsets."""
    lines = block.split(b"\n")
    if len(lines) - 1 == count:
        starts = list(accumulate(map(add, map(len, lines), repeat(1)), initial=start_offset))
        del starts[-2:]  # after the last line, and after the empty tail of the split
        return starts
    return list(chain.from_iterable(p.offsets for p in pieces))


def _last_within(bounds: list[int], growth: int, first: int, limit: int) -> int:
    """The last event k (from `first`) that ends within `limit` once every event grew by
    `growth` (at ``bounds[k + 1] - bounds[0] + (k + 1) * growth``), or `first` when even it
    does not: `cut_events`' rule, by bisection over `bounds` (no list of the grown ends)."""
    low, high = first + 1, len(bounds) - 2
    while low <= high:
        middle = (low + high) // 2
        if bounds[middle + 1] - bounds[0] + (middle + 1) * growth <= limit:
            low = middle + 1
        else:
            high = middle - 1
    return low - 1


def _line_at(block: bytes, position: int) -> bytes:
    """The line at `position` in `block`, without its newline and a CR before it (as the line
    path letters it)."""
    line = block[position : block.index(b"\n", position)]
    return line[:-1] if line.endswith(b"\r") else line


__all__ = ["IdEncoder", "IdKey", "takes_ids"]
