"""JSON lines with event ids a block at a time (issue 13): `IdEncoder` writes exactly what the
parsing path (`ParsedEncoder`, line by line) writes, for any lines, hostile ones included."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.config import SourceConfig
from agent.encode import Encoded, EncodeLimits, encoder_for
from agent.encode import ids as id_encoder
from agent.encode.ids import IdEncoder, takes_ids
from agent.encode.parsed import ParsedEncoder

NOW = 1_764_028_800.0  # 2025-11-25T00:00:00Z
IDENTITY = "0123456789abcdef"


def source(**options: object) -> SourceConfig:
    return SourceConfig.model_validate(
        {"name": "s", "include": ["/x/*.log"], "event_id": True, **options}
    )


def both(src: SourceConfig, piece_bytes: int = 300) -> tuple[IdEncoder, ParsedEncoder]:
    common: dict[str, object] = {
        "path": "/x/a.log",
        "identity": lambda: IDENTITY,
        "max_event_bytes": 2000,
        "piece_bytes": piece_bytes,
        "start_offset": 0,
        "now": lambda: NOW,
    }
    return IdEncoder(src, **common), ParsedEncoder(src, **common)  # type: ignore[arg-type]


def flat(encoded: Encoded) -> tuple[object, ...]:
    pieces = [(p.data, p.events, p.end_offset, list(p.offsets)) for p in encoded.pieces]
    return (pieces, encoded.rejected, encoded.blank)


def line(n: int, stamp: str = "2025-11-24T10:00:00.123Z") -> bytes:
    return b'{"timestamp":"%s","seq":%d,"msg":"hi"}\n' % (stamp.encode(), n)


def test_a_source_with_only_event_id_gets_the_block_encoder() -> None:
    limits = EncodeLimits.for_batch(1_000_000)
    made = encoder_for(source(), limits, path="/x/a.log", identity=lambda: "", start_offset=0)
    assert isinstance(made, IdEncoder)
    assert not takes_ids(source(parser="logfmt"))
    assert not takes_ids(source(format="text"))
    assert not takes_ids(source(event_id=False))


def test_ids_are_blake2b_of_identity_and_offset_and_the_block_path_vouched() -> None:
    ids, _ = both(source())
    block = line(1) + line(2)
    assert ids._whole_block(block, 100) is not None
    events = [json.loads(e) for p in ids.encode(block, 100).pieces for e in p.data.splitlines()]
    first = hashlib.blake2b(f"{IDENTITY}:100".encode(), digest_size=8).hexdigest()
    assert events[0] == {
        "timestamp": "2025-11-24T10:00:00.123Z",
        "seq": 1,
        "msg": "hi",
        "event_id": first,
    }
    assert events[1]["event_id"] != first


def test_no_time_anywhere_gets_the_read_time_and_is_counted_as_the_parsing_path_counts() -> None:
    ids, parsed = both(source(fields={"env": "prod"}))
    block = b'{"a":1}\n{"a":2,"env":"mine"}\n'
    assert ids._whole_block(block, 0) is not None
    ids, parsed = both(source(fields={"env": "prod"}))
    assert flat(ids.encode(block, 0)) == flat(parsed.encode(block, 0))
    assert ids.take_counts() == parsed.take_counts() == {"time_missing": 2}


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=6),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=4), children, max_size=3)
    ),
    max_leaves=6,
)
_stamps = st.sampled_from(
    [
        "2025-11-24T10:00:00.123Z",
        "2025-11-24T10:00:00Z",
        "2025-02-30T10:00:00.000Z",
        "2015-11-24T10:00:00.000Z",
        "2025-11-24T10:00:00.123+01:00",
        "",
    ]
)


@st.composite
def lines(draw: st.DrawFn) -> bytes:
    kind = draw(st.integers(0, 9))
    if kind == 0:  # anything at all
        return draw(st.binary(max_size=40)).replace(b"\n", b"")
    obj = draw(st.dictionaries(st.sampled_from(["a", "b", "env", "event_id"]), _json_values))
    if kind < 7:
        obj["timestamp"] = draw(_stamps) if kind > 2 else "2025-11-24T10:00:00.123Z"
    elif kind == 7:
        obj["timestamp"] = draw(_json_values)
    try:
        text = json.dumps(obj, separators=draw(st.sampled_from([(",", ":"), (", ", ": ")])))
    except ValueError:
        text = "{}"
    if draw(st.integers(0, 20)) == 0:
        text = "[" * 130 + "]" * 130  # too deep
    return text.encode()


@settings(
    max_examples=300, derandomize=True, deadline=None, suppress_health_check=list(HealthCheck)
)
@given(
    st.lists(st.lists(lines(), min_size=1, max_size=8), min_size=1, max_size=3),
    st.sampled_from([{}, {"env": "prod"}]),
    st.sampled_from([200, 2000]),
    st.sampled_from([1, 64, 65536]),
)
def test_the_block_path_writes_what_the_parsing_path_writes(
    blocks: list[list[bytes]], fields: dict[str, str], piece_bytes: int, slice_bytes: int
) -> None:
    ids, parsed = both(source(fields=fields), piece_bytes)
    offset = 0
    with slices_of(slice_bytes):  # a block read in slices of that many bytes (a line each at 1)
        for block_lines in blocks:
            block = b"".join(raw + b"\n" for raw in block_lines)
            assert flat(ids.encode(block, offset)) == flat(parsed.encode(block, offset))
            offset += len(block)
    assert ids.take_counts() == parsed.take_counts()


@contextmanager
def slices_of(size: int) -> Iterator[None]:
    saved, id_encoder._SLICE_BYTES = id_encoder._SLICE_BYTES, size
    try:
        yield
    finally:
        id_encoder._SLICE_BYTES = saved


@pytest.mark.parametrize("slice_bytes", [65536, 100, 1])
def test_uniform_blocks_of_every_kind_take_the_block_path_and_agree(slice_bytes: int) -> None:
    for block in (
        b"".join(line(n) for n in range(150)),  # more than one slice of events
        b"".join(b'{"n":%d,"x":{"y":[1,2.5,"\\u00e9\\""]}}\n' % n for n in range(50)),
        b'{"timestamp": "2025-11-24T10:00:00.123Z", "a": 1.50}\n' * 20,  # re-serialized
    ):
        with slices_of(slice_bytes):
            ids, parsed = both(source(fields={"env": "prod"}))
            assert ids._whole_block(block, 7) is not None
            ids, parsed = both(source(fields={"env": "prod"}))
            assert flat(ids.encode(block, 7)) == flat(parsed.encode(block, 7))
