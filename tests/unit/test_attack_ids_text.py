"""Attacks on the event_id JSON path (`agent.encode.ids`) and the whole-text path
(`agent.encode.textblocks`): lines and batches shaped to make the fast forms differ from
what the line path (or the parsing path before it) would have done."""

from __future__ import annotations

import json
from typing import Any

import pytest

from agent.config import SourceConfig
from agent.encode import textblocks
from agent.encode.fast import Encoder
from agent.encode.ids import IdEncoder
from agent.encode.textblocks import TextStarts
from agent.parse.event import event_id
from agent.records import Batch, FileId, Origin, Piece, Ticket
from agent.ship.payload import Payload

NOW = 1_764_028_800.0  # 2025-11-25T00:00:00Z
IDENTITY = "0123456789abcdef"


def ids(whole_blocks: bool = True) -> IdEncoder:
    source = SourceConfig.model_validate({"name": "s", "include": ["/x/*.log"], "event_id": True})
    return IdEncoder(
        source,
        path="/x/a.log",
        identity=lambda: IDENTITY,
        max_event_bytes=2000,
        piece_bytes=1500,
        now=lambda: NOW,
        whole_blocks=whole_blocks,
    )


def shipped(block: bytes, *, whole_blocks: bool = True) -> list[bytes]:
    encoded = ids(whole_blocks).encode(block, 0)
    assert not encoded.rejected, encoded.rejected
    return [e for p in encoded.pieces for e in p.data.split(b"\n")[:-1]]


@pytest.mark.parametrize(
    "line",
    [
        b'{"msg":"event_id","n":1e400}',  # the id field's name as a value, not a key
        b'{"x":{"event_id":1},"n":1e400}',  # as a key deeper in the object
    ],
)
@pytest.mark.parametrize("whole_blocks", [True, False])
def test_a_line_beyond_orjson_that_only_mentions_the_id_field_is_shipped(
    line: bytes, whole_blocks: bool
) -> None:
    """The plain JSON path ships such a line as written (Polaris reads 1e400 as infinity);
    its id goes after the brace as for any line: nothing there needs writing again."""
    (event,) = shipped(line + b"\n", whole_blocks=whole_blocks)
    assert event.startswith(b'{"event_id":"%s",' % event_id(IDENTITY, 0).encode())
    assert event[len(b'{"event_id":"0123456789abcdef",') :].startswith(line[1:-1])


def read_exactly(event: bytes) -> dict[str, Any]:
    """The event's members, numbers as written (json keeps big integers exact), no key
    twice."""

    def once(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        assert len({k for k, _ in pairs}) == len(pairs), f"a key twice in {event!r}"
        return dict(pairs)

    parsed: dict[str, Any] = json.loads(event, object_pairs_hook=once)
    return parsed


@pytest.mark.parametrize("whole_blocks", [True, False])
@pytest.mark.parametrize(
    "line",
    [
        b'{"a":null,"event_id":null,"b":-9223372036854775809}',  # below int64
        b'{"event_id":"mine","b":123456789012345678901234567890}',  # beyond uint64
        b'{"event_id":"mine","n":1e400,"b":1.50}',  # beyond a double
    ],
)
def test_a_line_whose_own_id_is_replaced_keeps_its_numbers_as_written(
    line: bytes, whole_blocks: bool
) -> None:
    """Found by fuzzing (tests/unit/test_encode_ids.py's property failed on the first):
    written again by orjson, an integer beyond 64 bits became a float (…809 became
    -9.223372036854776e18) though the plain JSON path forwards it as written."""
    (event,) = shipped(line + b"\n", whole_blocks=whole_blocks)
    got = read_exactly(event)
    want = read_exactly(line)
    want["event_id"] = event_id(IDENTITY, 0)
    assert {k: v for k, v in got.items() if k != "timestamp"} == want
    for number in (b"-9223372036854775809", b"123456789012345678901234567890", b"1e400"):
        assert (number in line) == (number in event)


class _CountingPattern:
    """`agent.encode.textblocks._MESSAGE` counting its matches: one per event read back."""

    def __init__(self, pattern: Any) -> None:
        self.pattern = pattern
        self.matches = 0

    def match(self, data: bytes, position: int) -> Any:
        self.matches += 1
        return self.pattern.match(data, position)


def test_a_split_text_batch_reads_each_events_line_back_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """After a 413 the sender keeps the origins of the half it still holds, event by event
    (`agent.ship.payload._by_event`): each lookup read back every event of its piece, so a
    1 MB batch of short text lines cost ~15 s of CPU on the event loop (quadratic, each step
    a regex and an orjson.loads). Each piece's offsets are read back once, and stay right."""
    source = SourceConfig.model_validate({"name": "s", "include": ["/x/*.log"], "format": "text"})
    encoder = Encoder(source, max_event_bytes=1_000_000, piece_bytes=20_000, now=lambda: NOW)
    block = b"".join(b"short %05d\n" % n for n in range(2_000))
    encoder.encode(block, 0)  # the slices shrink to fit a piece
    pieces = encoder.encode(block, len(block)).pieces
    assert len(pieces) > 2 and all(isinstance(p.offsets, TextStarts) for p in pieces)
    batch = Batch(seq=1)
    for encoded in pieces:
        ticket = Ticket(FileId(1), encoded.end_offset)
        batch.add(Piece(encoded.data, encoded.events, ticket, Origin("/x/a.log", encoded.offsets)))
    payload = Payload.of_batch(batch, "")
    body = payload.body
    half = body.index(b"\n", len(body) // 2) + 1
    counting = _CountingPattern(textblocks._MESSAGE)
    monkeypatch.setattr(textblocks, "_MESSAGE", counting)

    rest = payload.rest(body, [(half, len(body))])

    kept = [
        o
        for origin in rest.origins.select(rest.body, [(0, len(rest.body))])
        for o in origin.offsets
    ]
    first = 2_000 - rest.events
    assert kept == [len(block) + n * len(b"short 00000\n") for n in range(first, 2_000)]
    assert counting.matches <= 2_000  # each event of each piece read back at most once
