"""Files of CRLF lines (Windows, or a service that ends its lines so) are read a block at a
time, with the line path's events and offsets.

Every block path refused a block holding a CR, so such a file went line by line: 12 ms/MB of
JSON against 2, 7.5 of text against 2.5. A block whose every line ends in CRLF is now read
with its CRs taken out (`agent.encode.crlf`); these properties compare what it makes, offsets
included, with the line path, for blocks of CRLF lines, and blocks where some line has no CR,
a CR elsewhere, or two."""

from __future__ import annotations

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from agent.encode import Encoded
from agent.encode.halves import LEAF_BYTES
from agent.records import Batch, Origin, Piece, Ticket
from tests.support.pieces import events_and_offsets, pieces_keep_their_rules
from tests.unit.test_encode_fuzz import encoder, line_groups
from tests.unit.test_encode_ids import ids
from tests.unit.test_encode_shapes import outcome

TIME = b'"2025-11-24T00:00:00Z"'
GOOD = [
    b'{"timestamp":' + TIME + b',"n":1}',
    b'{"n":2,"msg":"caf\xc3\xa9"}',
    b'{"ts":1763942400123,"n":3}',
    b"plain text \xe2\x80\xa8 line",
    b"",
    b"   ",
]
ENDINGS = [b"\r\n"] * 6 + [b"\n", b"\r\r\n", b"\r \n"]


lines = st.one_of(st.sampled_from(GOOD), line_groups.map(lambda group: group[0]))
blocks = st.lists(
    st.tuples(
        lines.map(lambda x: x.replace(b"\r", b"").replace(b"\n", b"")), st.sampled_from(ENDINGS)
    ),
    min_size=1,
    max_size=10,
).map(lambda pairs: b"".join(line + end for line, end in pairs))
OPTIONS = st.sampled_from([{}, {"fields": {"env": "prod"}}, {"format": "text"}])


@settings(
    max_examples=1500, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
@given(block=blocks, options=OPTIONS)
@example(block=b'{"timestamp":' + TIME + b',"n":1}\r\n' * 40, options={})
@example(block=b"a line\r\n" * 40, options={"format": "text"})
def test_a_block_of_crlf_lines_gives_the_line_paths_events_and_offsets(
    block: bytes, options: dict[str, object]
) -> None:
    fast, slow = encoder(**options), encoder(**options)
    got, want = fast.encode(block, 7), slow._line_by_line(block, 7)
    assert events_and_offsets(got) == events_and_offsets(want)  # halved: `test_encode_halves`
    if len(block) <= LEAF_BYTES:
        assert outcome(got) == outcome(want)
    pieces_keep_their_rules(got, 256)


@settings(
    max_examples=500, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
@given(block=blocks)
def test_ids_of_crlf_lines_are_those_of_their_offsets(block: bytes) -> None:
    fast, slow = ids(), ids(whole_blocks=False)
    got, want = fast.encode(block, 7), slow.encode(block, 7)
    assert [(p.data, p.end_offset, list(p.offsets)) for p in got.pieces] == [
        (p.data, p.end_offset, list(p.offsets)) for p in want.pieces
    ]
    assert got.rejected == want.rejected


def no_line_path(block: bytes, start_offset: int) -> Encoded:
    raise AssertionError("the block went line by line")


def test_crlf_blocks_take_the_block_path_and_a_joined_batch_still_places_each_event() -> None:
    """The properties above are only worth something if the block path takes such blocks;
    and the offsets must survive a batch joining its pieces (what a refused event's dead
    letter is placed by)."""
    block = b"".join(b'{"timestamp":%s,"n":%d}\r\n' % (TIME, n) for n in range(100))
    fast = encoder()
    fast._line_by_line = no_line_path  # type: ignore[method-assign]
    encoded = fast.encode(block, 1000)
    assert len(encoded.pieces) > 1, "cut into pieces of 256 bytes"
    batch = Batch(seq=1)
    for piece in encoded.pieces:
        batch.add(
            Piece(piece.data, piece.events, Ticket(1, piece.end_offset), Origin("a", piece.offsets))
        )
    body = batch.payload()
    starts = [1000 + n * len(b'{"timestamp":%s,"n":%d}\r\n' % (TIME, 0)) for n in range(10)]
    for n, start in enumerate(starts):
        position = body.index(b'"n":%d}' % n)
        assert batch.locate(body.rindex(b"\n", 0, position) + 1 if n else 0) == ("a", start)
    assert encoded.pieces[-1].end_offset == 1000 + len(block)
    text = encoder(format="text")
    text._line_by_line = no_line_path  # type: ignore[method-assign]
    assert text.encode(b"a line\r\n" * 100, 0).pieces[-1].end_offset == 800
