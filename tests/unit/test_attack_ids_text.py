"""Attacks on the event_id JSON path (`agent.encode.ids`) and the whole-text path
(`agent.encode.textblocks`): lines and batches shaped to make the fast forms differ from
what the line path (or the parsing path before it) would have done."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from agent.config import SourceConfig
from agent.encode import Encoded, textblocks
from agent.encode.fast import Encoder
from agent.encode.ids import IdEncoder
from agent.encode.textblocks import TextStarts
from agent.parse.event import event_id
from agent.records import Batch, FileId, Origin, Piece, Ticket
from agent.ship.payload import Payload

NOW = 1_764_028_800.0  # 2025-11-25T00:00:00Z
IDENTITY = "0123456789abcdef"


def ids(whole_blocks: bool = True, source: SourceConfig | None = None) -> IdEncoder:
    if source is None:
        source = SourceConfig.model_validate(
            {"name": "s", "include": ["/x/*.log"], "event_id": True}
        )
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


# Id fields named as operators name them, and lines that hold them in every escaped form.
_ID_FIELDS = ["event_id", "id", 'a"b', "é", "\U0001f600x", "/", "%d", "e\\", "\x01"]
_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=5),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=3), children, max_size=3)
    ),
    max_leaves=5,
)


def _escaped(text: str, name: str) -> str:
    """`text` with the first written form of `name` (as a JSON string's inside) escaped
    character by character."""
    written = json.dumps(name)[1:-1]
    escaped = "".join(f"\\u{ord(c):04x}" if ord(c) < 0x10000 else c for c in name)
    return text.replace(written, escaped, 1)


@st.composite
def _id_lines(draw: st.DrawFn, name: str) -> bytes:
    kind = draw(st.integers(0, 5))
    if kind == 0:
        return draw(st.binary(max_size=30)).replace(b"\n", b"")
    if kind == 1:
        mention = json.dumps(name).encode()
        return draw(
            st.sampled_from(
                [
                    b"",
                    b" ",
                    b" { } ",
                    b'{"a":1e400,"x":' + mention + b"}",
                    b"{" + mention + b':"own","n":1e400}',
                    b"{" + mention + b":1," + mention + b":2}",
                    b"\xef\xbb\xbf{}",
                    b'{"a":"\\ud800"}',
                    b'{\r"a":1}',
                ]
            )
        )
    keys = st.sampled_from(["a", name, "timestamp", "env"])
    obj = draw(st.dictionaries(keys, _values, max_size=4))
    try:
        text = json.dumps(obj, ensure_ascii=draw(st.booleans()))
    except ValueError:
        text = "{}"
    return (_escaped(text, name) if draw(st.booleans()) else text).encode()


@settings(
    max_examples=250, derandomize=True, deadline=None, suppress_health_check=list(HealthCheck)
)
@given(
    st.data(),
    st.sampled_from(_ID_FIELDS),
    st.sampled_from(["0123456789abcdef", "%s%d%%"]),
    st.booleans(),
    st.sampled_from([150, 2000]),
    st.booleans(),
)
def test_any_id_field_name_any_line_the_block_path_is_the_definition_and_no_key_is_twice(
    data: st.DataObject,
    name: str,
    identity: str,
    static: bool,
    piece_bytes: int,
    bom: bool,
) -> None:
    source = SourceConfig.model_validate({"name": "s", "include": ["/x/*.log"], "event_id": name})
    if static:  # config refuses a static field named like the id; the encoder copes anyway
        source = source.model_copy(update={"fields": {name: "static", "env": "p"}})

    def encoder(whole_blocks: bool) -> IdEncoder:
        return IdEncoder(
            source,
            path="/x/a.log",
            identity=lambda: identity,
            max_event_bytes=400,
            piece_bytes=piece_bytes,
            now=lambda: NOW,
            whole_blocks=whole_blocks,
        )

    fast, definition = encoder(True), encoder(False)
    blocks = data.draw(st.lists(st.lists(_id_lines(name), min_size=1, max_size=8), max_size=3))
    offset = 0
    for number, lines in enumerate(blocks):
        block = b"".join(line + b"\n" for line in lines)
        if number == 0 and bom:
            block = b"\xef\xbb\xbf" + block
        got = fast.encode(block, offset)
        assert _flat(got) == _flat(definition.encode(block, offset))
        shipped = sum(p.events for p in got.pieces)
        assert shipped + len(got.rejected) + got.blank == block.count(b"\n")
        assert got.pieces[-1].end_offset == offset + len(block)
        for piece in got.pieces:
            assert len(piece.data) <= piece_bytes or piece.events == 1
            for start, event in zip(piece.offsets, piece.data.split(b"\n")[:-1], strict=True):
                assert len(event) < 400
                first_line = offset == 0 and block.startswith(b"\xef\xbb\xbf") and start == 3
                want = event_id(identity, 0 if first_line else start)
                assert read_exactly(event)[name] == want  # and no key twice
        offset += len(block)


def _flat(encoded: Encoded) -> tuple[object, ...]:
    pieces = [(p.data, p.events, p.end_offset, list(p.offsets)) for p in encoded.pieces]
    return (pieces, encoded.rejected, encoded.blank)


_text_lines = st.one_of(
    st.text(st.characters(blacklist_characters="\n"), max_size=30).map(
        lambda text: text.encode("utf-8", "surrogatepass")
    ),
    st.binary(max_size=20).map(lambda raw: raw.replace(b"\n", b"")),
    st.sampled_from(
        [b"", b" ", b"\r", b"\x0b", b"\x7f", b"a\r", b"\xef\xbb\xbf", b"\xe2\x80\xa8", b"x" * 300]
    ),
)


@settings(
    max_examples=200, derandomize=True, deadline=None, suppress_health_check=list(HealthCheck)
)
@given(
    st.lists(st.lists(_text_lines, min_size=1, max_size=40), min_size=1, max_size=4),
    st.sampled_from([1024, 1 << 16]),
    st.sampled_from([400, 1_000_000]),
    st.booleans(),
)
def test_text_blocks_in_a_row_joined_and_split_trace_each_event_to_its_line(
    blocks: list[list[bytes]], piece_bytes: int, max_event_bytes: int, bom: bool
) -> None:
    """Whatever a text file holds: the block path writes what the line path writes, its
    pieces fit, and each event is traced to its line's start from the joined batch and
    from the half a 413 split keeps."""
    source = SourceConfig.model_validate({"name": "s", "include": ["/x/*.log"], "format": "text"})
    encoder = Encoder(
        source,
        max_event_bytes=max_event_bytes,
        piece_bytes=piece_bytes,
        now=lambda: NOW,
        strip_bom=True,
    )
    batch, starts, offset = Batch(seq=1), [], 0 if bom else 9
    for number, lines in enumerate(blocks):
        block = b"".join(line + b"\n" for line in lines)
        if number == 0 and bom:
            block = b"\xef\xbb\xbf" + block
        got = encoder.encode(block, offset)
        lined = block[3:] if block.startswith(b"\xef\xbb\xbf") and offset == 0 else block
        reference = encoder._line_by_line(lined, offset + len(block) - len(lined))
        assert b"".join(p.data for p in got.pieces) == b"".join(p.data for p in reference.pieces)
        got_starts = [o for p in got.pieces for o in p.offsets]
        assert got_starts == [o for p in reference.pieces for o in p.offsets]
        assert (got.rejected, got.blank) == (reference.rejected, reference.blank)
        for piece in got.pieces:
            assert len(piece.data) <= piece_bytes or piece.events == 1
            if piece.events:
                ticket = Ticket(FileId(1), piece.end_offset)
                batch.add(Piece(piece.data, piece.events, ticket, Origin("/a", piece.offsets)))
        starts += got_starts
        offset += len(block)
    if not batch.events:
        return
    payload = Payload.of_batch(batch, "")
    body = payload.body
    positions = [0, *(i + 1 for i, byte in enumerate(body) if byte == ord("\n"))][:-1]
    assert [batch.locate(p)[1] for p in positions] == starts
    assert [payload.locate(p)[1] for p in positions] == starts
    half = positions[len(positions) // 2]
    if half:
        kept = payload.rest(body, [(0, half)])
        kept_body = kept.body
        kept_positions = [0, *(i + 1 for i, b in enumerate(kept_body) if b == ord("\n"))][:-1]
        assert [kept.locate(p)[1] for p in kept_positions] == starts[: len(kept_positions)]


def _source_or_refused(**options: object) -> SourceConfig | None:
    """The source, or None when the config refuses it (as it should, for these)."""
    try:
        return SourceConfig.model_validate({"name": "s", "include": ["/x/*.log"], **options})
    except ValidationError:
        return None


@pytest.mark.parametrize("form", ["json", "text"])
def test_a_static_field_named_like_the_time_field_is_refused_or_encoded(form: str) -> None:
    source = _source_or_refused(format=form, fields={"timestamp": "2025-11-24T00:00:00Z"})
    if source is None:
        return
    encoder = Encoder(source, max_event_bytes=10_000, piece_bytes=5_000, now=lambda: NOW)
    (event,) = encoder.encode(b'{"a":1}\n', 0).pieces[0].data.splitlines()
    read_exactly(event)  # no key twice


def test_a_text_sources_static_field_named_message_is_refused_or_not_a_key_twice() -> None:
    source = _source_or_refused(format="text", fields={"message": "static"})
    if source is None:
        return
    encoder = Encoder(source, max_event_bytes=10_000, piece_bytes=5_000, now=lambda: NOW)
    (event,) = encoder.encode(b"hello\n", 0).pieces[0].data.splitlines()
    assert read_exactly(event)["message"] == "hello"


def test_an_id_field_named_like_the_time_field_is_refused_or_keeps_the_time() -> None:
    source = _source_or_refused(event_id="timestamp")
    if source is None:
        return
    encoder = ids(source=source)
    line = b'{"timestamp":"2025-11-24T10:00:00Z","a":1}\n'
    (event,) = encoder.encode(line, 0).pieces[0].data.splitlines()
    assert read_exactly(event)["timestamp"] == "2025-11-24T10:00:00Z"
