"""JSON lines with event ids (issue 13): each event is what the fast JSON `Encoder` makes of
its line plus its id, the same id the parsing path gave it; the whole-block path writes exactly
what `IdEncoder`'s one-event-at-a-time definition writes, for any lines, hostile ones too."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from agent.config import SourceConfig
from agent.encode import Encoded, EncodeLimits, encoder_for
from agent.encode.fast import Encoder
from agent.encode.ids import IdEncoder, takes_ids
from agent.parse.event import event_id

NOW = 1_764_028_800.0  # 2025-11-25T00:00:00Z
IDENTITY = "0123456789abcdef"
STAMP = b"2025-11-24T10:00:00.5+01:00"  # forwarded as written, not rewritten


def source(**options: object) -> SourceConfig:
    """The source; static fields set past validation, which refuses one named like the id
    (the encoder's own defence against it is tested too)."""
    fields = options.pop("fields", {})
    valid = SourceConfig.model_validate(
        {"name": "s", "include": ["/x/*.log"], "event_id": True, **options}
    )
    return valid.model_copy(update={"fields": fields}) if fields else valid


def ids(
    src: SourceConfig | None = None,
    *,
    piece_bytes: int = 300,
    max_event_bytes: int = 2000,
    whole_blocks: bool = True,
) -> IdEncoder:
    return IdEncoder(
        src or source(),
        path="/x/a.log",
        identity=lambda: IDENTITY,
        max_event_bytes=max_event_bytes,
        piece_bytes=piece_bytes,
        now=lambda: NOW,
        whole_blocks=whole_blocks,
    )


def flat(encoded: Encoded) -> tuple[object, ...]:
    pieces = [(p.data, p.events, p.end_offset, list(p.offsets)) for p in encoded.pieces]
    return (pieces, encoded.rejected, encoded.blank)


def events(encoded: Encoded) -> list[bytes]:
    return [e for p in encoded.pieces for e in p.data.splitlines()]


def no_repeated_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    assert len(keys) == len(set(keys)), f"a key twice: {keys}"
    return dict(pairs)


def read(event: bytes) -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads(event, object_pairs_hook=no_repeated_keys)
    return parsed


def line(n: int, stamp: bytes = STAMP) -> bytes:
    return b'{"timestamp":"%s","seq":%d,"msg":"hi"}\n' % (stamp, n)


def test_a_source_with_only_event_id_gets_the_id_encoder() -> None:
    limits = EncodeLimits.for_batch(1_000_000)
    made = encoder_for(source(), limits, path="/x/a.log", identity=lambda: "", start_offset=0)
    assert isinstance(made, IdEncoder)
    assert not takes_ids(source(parser="logfmt"))
    assert not takes_ids(source(format="text"))
    assert not takes_ids(source(event_id=False))


def test_each_line_is_forwarded_as_written_with_the_id_of_its_offset() -> None:
    block = line(1) + b'{"timestamp": "%s", "a": 1.50}\n' % STAMP
    got = events(ids().encode(block, 100))
    first = event_id(IDENTITY, 100)
    assert got == [
        b'{"event_id":"%s","timestamp":"%s","seq":1,"msg":"hi"}' % (first.encode(), STAMP),
        b'{"event_id":"%s","timestamp": "%s", "a": 1.50}'
        % (event_id(IDENTITY, 100 + len(line(1))).encode(), STAMP),
    ]


def test_a_line_read_again_gets_the_same_id_and_another_line_another() -> None:
    block = line(1) * 3
    once, again = events(ids().encode(block, 7)), events(ids().encode(block, 7))
    assert once == again
    assert len({read(e)["event_id"] for e in once}) == 3


@pytest.mark.parametrize(
    "held",
    [
        b'{"event_id":"mine","a":1}',
        b'{"a":1,"event_id":null}',
        b'{"event\\u005fid":"escaped","a":1}',
        b'{"\\u0065vent_id":2,"a":1}',
    ],
)
def test_a_line_that_holds_the_id_field_has_it_replaced_not_repeated(held: bytes) -> None:
    block = line(0) + held + b"\n" + line(2)
    got = ids().encode(block, 0)
    second = read(events(got)[1])  # no key twice
    assert second["event_id"] == event_id(IDENTITY, len(line(0)))
    assert second["a"] == 1
    assert flat(got) == flat(ids(whole_blocks=False).encode(block, 0))


def test_the_id_field_deeper_in_the_object_is_left_alone() -> None:
    block = b'{"x":{"event_id":"inner"},"timestamp":"%s"}\n' % STAMP
    (event,) = events(ids().encode(block, 0))
    assert read(event)["x"] == {"event_id": "inner"}
    assert read(event)["event_id"] == event_id(IDENTITY, 0)


def test_a_static_field_named_like_the_id_gives_way_to_the_id() -> None:
    (event,) = events(ids(source(fields={"event_id": "x", "env": "p"})).encode(line(0), 0))
    assert read(event)["event_id"] == event_id(IDENTITY, 0)
    assert read(event)["env"] == "p"


def test_the_first_line_after_a_bom_keeps_the_id_of_offset_0() -> None:
    """The parsing path numbered a file's first line 0 whether a BOM came before it."""
    got = ids().encode(b"\xef\xbb\xbf" + line(0) + line(1), 0)
    assert [read(e)["event_id"] for e in events(got)] == [
        event_id(IDENTITY, 0),
        event_id(IDENTITY, 3 + len(line(0))),
    ]
    assert list(got.pieces[0].offsets) == [3, 3 + len(line(0))]


def test_an_empty_object_or_spaces_take_the_id_as_valid_json() -> None:
    block = b'{ }\n {"a":1 }  \n{ "a":2}\n'
    encoded = ids().encode(block, 0)
    assert [sorted(read(e)) for e in events(encoded)] == [
        ["event_id", "timestamp"],
        ["a", "event_id", "timestamp"],
        ["a", "event_id", "timestamp"],
    ]
    assert ids().take_counts() == {}
    assert flat(encoded) == flat(ids(whole_blocks=False).encode(block, 0))


def test_a_line_that_fits_a_request_only_without_its_id_is_too_long() -> None:
    """A request carries at most 200 bytes: the id is part of every event, so a line must
    leave room for it (the head of a longer line is lettered, as for any line too long)."""
    room = 199 - len(b'"event_id":"0123456789abcdef",')
    fits = b'{"timestamp":"%s","p":"%s"}' % (STAMP, b"x" * 10)
    fits = fits[:-2] + b"x" * (room - len(fits)) + b'"}'
    over = fits[:-2] + b'x"}'
    got = ids(max_event_bytes=200).encode(fits + b"\n" + over + b"\n", 0)
    assert [len(e) for e in events(got)] == [199]
    ((reason, offset, data),) = [(r.reason, r.offset, r.data) for r in got.rejected]
    assert (reason, offset, data) == ("line_too_long", len(fits) + 1, over[:room])


def test_an_event_too_large_with_its_time_and_id_is_dead_lettered_with_that_size() -> None:
    room = 199 - len(b'"event_id":"0123456789abcdef",')
    line = b'{"p":"%s"}' % (b"x" * (room - 10))  # no time: the read time makes it too large
    got = ids(max_event_bytes=200).encode(line + b"\n", 5)
    ((reason, offset, data, detail),) = [
        (r.reason, r.offset, r.data, r.detail) for r in got.rejected
    ]
    read_time = len(b',"timestamp":"2025-11-25T00:00:00.000Z"')
    assert (reason, offset, data) == ("event_too_large", 5, line)
    assert detail == f"{len(line) + read_time + 30} bytes encoded"


def test_a_line_whose_id_replaces_a_shorter_value_is_measured_with_it() -> None:
    """Written again, the line grows (orjson writes 1e9 as 1000000000.0) past the limit."""
    encoder = ids(max_event_bytes=150)
    held = b'{"event_id":1,"timestamp":"%s","n":[1e9,1e9,1e9,1e9]}' % STAMP
    held = held[:-1] + b',"p":"%s"}' % (b"x" * (119 - len(held) - 7))
    assert len(held) == 119  # as long as a line may be: 150 less the newline and the id
    got = encoder.encode(held + b"\n", 0)
    assert got.rejected[0].reason == "event_too_large"
    assert got.rejected[0].data == held
    assert events(got) == []
    assert got.pieces[0].end_offset == len(held) + 1  # the checkpoint moves past it


def test_a_time_beyond_what_iso_can_write_is_dead_lettered() -> None:
    block = b'{"timestamp":"0001-01-01T00:30:00+23:59"}\n' * 3
    encoded = ids().encode(block, 0)
    assert [r.reason for r in encoded.rejected] == ["too_late"] * 3


def test_pieces_stay_within_piece_bytes_with_their_ids() -> None:
    block = b"".join(line(n) for n in range(40))
    encoded = ids(piece_bytes=300).encode(block, 10)
    assert all(len(p.data) <= 300 for p in encoded.pieces)
    assert sum(p.events for p in encoded.pieces) == 40
    assert encoded.pieces[-1].end_offset == 10 + len(block)
    for before, after in zip(encoded.pieces, encoded.pieces[1:], strict=False):
        assert before.end_offset == after.offsets[0]


def test_counts_are_the_fast_paths() -> None:
    encoder = ids()
    encoder.encode(b'{"a":1}\n{"a":2,"timestamp":"nope"}\n', 0)
    assert encoder.take_counts() == {"time_missing": 1, "time_unparsed": 1}
    assert encoder.pending_offset is None and encoder.next_flush() is None
    assert encoder.flush(force=True).pieces == []


def test_uniform_blocks_take_the_whole_block_path(monkeypatch: pytest.MonkeyPatch) -> None:
    for block in (
        b"".join(line(n) for n in range(150)),
        b"".join(b'{"n":%d,"x":{"y":[1,2.5,"\\u00e9\\""]}}\n' % n for n in range(50)),
        b'{"timestamp": "2025-11-24T10:00:00.123Z", "a": 1.50}\n' * 20,
    ):
        src = source(fields={"env": "prod"})
        encoder = ids(src)
        monkeypatch.setattr(encoder, "_one_by_one", None)  # a call would raise
        got = encoder.encode(block, 7)
        assert flat(got) == flat(ids(src, whole_blocks=False).encode(block, 7))


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=6),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=4), children, max_size=3)
    ),
    max_leaves=6,
)
_stamps = st.sampled_from(
    ["2025-11-24T10:00:00.123Z", "2025-11-24T10:00:00.5+01:00", "2015-11-24T10:00:00Z", "", "x"]
)
_hostile = st.sampled_from(
    [
        b"",
        b"   ",
        b"\r",
        b"{}",
        b"{ }",
        b" {}",
        b'{"a":1}\r',
        b'{"a":1\r}',
        b'{"event_id":"x"}',
        b'{"event\\u005Fid":"x"}',
        b'{"event_id":1e400}',
        b'{"a":1e400}',
        b'{"a":"\\ud800"}',
        b'{"a":"\xff"}',
        b'{"a":[' * 130 + b"]}" * 130,
        b'{"a":"' + b"x" * 1990 + b'"}',
        b'{"a":"' + b"x" * 3000 + b'"}',
        b"[1]",
        b'{"a":1',
        b'{"a":"}\\n{"}',
        b"\xef\xbb\xbf{}",
        b"\x00",
    ]
)


@st.composite
def lines(draw: st.DrawFn) -> bytes:
    kind = draw(st.integers(0, 9))
    if kind == 0:  # anything at all
        return draw(st.binary(max_size=40)).replace(b"\n", b"")
    if kind == 1:
        return draw(_hostile)
    obj = draw(st.dictionaries(st.sampled_from(["a", "b", "env", "event_id"]), _json_values))
    if kind < 7:
        obj["timestamp"] = draw(_stamps)
    elif kind == 7:
        obj["timestamp"] = draw(_json_values)
    try:
        text = json.dumps(obj, separators=draw(st.sampled_from([(",", ":"), (", ", ": ")])))
    except ValueError:
        text = "{}"
    return text.encode()


@settings(
    max_examples=400, derandomize=True, deadline=None, suppress_health_check=list(HealthCheck)
)
@given(
    st.lists(st.lists(lines(), min_size=1, max_size=8), min_size=1, max_size=3),
    st.sampled_from([{}, {"env": "prod"}, {"event_id": "static"}]),
    st.sampled_from([200, 2000]),
)
@example([[b'{"a":1}'] * 3, [b'{"event_id":"x","a":2}']], {}, 200)
@example([[b"\xef\xbb\xbf{}"]], {}, 200)  # the oracle once gave it the id of offset 3
def test_the_block_path_writes_what_the_definition_writes(
    blocks: list[list[bytes]], fields: dict[str, str], piece_bytes: int
) -> None:
    """And each event is the fast JSON path's event of its line with one key more (or
    replaced), the id of its offset; every line is shipped, dead-lettered or blank."""
    src = source(fields=fields)
    fast = ids(src, piece_bytes=piece_bytes)
    definition = ids(src, piece_bytes=piece_bytes, whole_blocks=False)
    plain = Encoder(
        src.model_copy(update={"fields": {k: v for k, v in fields.items() if k != "event_id"}}),
        max_event_bytes=2000 - len(b'"event_id":"0123456789abcdef",'),
        piece_bytes=piece_bytes,
        now=lambda: NOW,
        strip_bom=True,
    )
    offset = 0
    for block_lines in blocks:
        block = b"".join(raw + b"\n" for raw in block_lines)
        got = fast.encode(block, offset)
        assert flat(got) == flat(definition.encode(block, offset))
        assert all(len(p.data) <= piece_bytes or p.events == 1 for p in got.pieces)
        shipped = sum(p.events for p in got.pieces)
        assert shipped + len(got.rejected) + got.blank == len(block_lines)
        reference = plain.encode(block, offset)
        plain_events = dict(zip(_offsets(reference), events(reference), strict=True))
        bom = offset == 0 and block.startswith(b"\xef\xbb\xbf")
        for start, event in zip(_offsets(got), events(got), strict=True):
            expected = json.loads(plain_events.pop(start))
            # the line after a BOM keeps the id of offset 0, as the parsing path numbered it
            expected["event_id"] = event_id(IDENTITY, 0 if bom and start == 3 else start)
            assert read(event) == expected
        assert set(plain_events) <= {r.offset for r in got.rejected}
        offset += len(block)
    assert fast.take_counts() == definition.take_counts()


def _offsets(encoded: Encoded) -> list[int]:
    return [o for p in encoded.pieces for o in p.offsets]
