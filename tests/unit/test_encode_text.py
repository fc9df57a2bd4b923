"""Text lines a whole slice at a time: one escape of the slice's text, offsets read back
from the events only when a refused event needs its line (`agent.encode.textblocks`)."""

from __future__ import annotations

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.config import SourceConfig
from agent.encode import Encoder
from agent.encode.textblocks import TextStarts
from agent.records import Batch, FileId, Origin, Piece, Ticket

NOW = 1_764_028_800.0  # 2025-11-25T00:00:00Z


def encoder(piece_bytes: int = 1 << 16, **options: object) -> Encoder:
    source = SourceConfig.model_validate(
        {"name": "s", "include": ["/x/*.log"], "format": "text", **options}
    )
    return Encoder(source, max_event_bytes=1_000_000, piece_bytes=piece_bytes, now=lambda: NOW)


# Tidy lines: no CR, not blank; every character JSON escapes (quotes, backslashes, controls,
# U+2028, astral), a lone DEL now and then (the one the whole-text form leaves alone).
tidy_lines = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\n\r"),
    min_size=1,
    max_size=40,
).filter(lambda line: not line.isspace() and not line[0].isspace()) | st.sampled_from(
    ['say "hi"', "C:\\temp\\", 'end",', "\\", "tab\there", "\u2028", "\U0001f600 ok", "del\x7f"]
)


@settings(max_examples=300, deadline=None)
@given(
    lines=st.lists(tidy_lines, min_size=1, max_size=30),
    fields=st.sampled_from([{}, {"env": "prod", "message_of": 'a"b'}]),
    start=st.integers(0, 10_000),
)
def test_a_tidy_slice_is_encoded_whole_as_line_by_line(
    lines: list[str], fields: dict[str, object], start: int
) -> None:
    block = "".join(line + "\n" for line in lines).encode()
    enc = encoder(fields=fields)

    fast = enc.encode(block, start)
    slow = enc._line_by_line(block, start)

    assert [p.data for p in fast.pieces] == [p.data for p in slow.pieces]
    assert [list(p.offsets) for p in fast.pieces] == [list(p.offsets) for p in slow.pieces]
    assert [(p.events, p.end_offset) for p in fast.pieces] == [
        (p.events, p.end_offset) for p in slow.pieces
    ]
    if "\x7f" not in block.decode():
        assert isinstance(fast.pieces[0].offsets, TextStarts)  # the whole-text form was taken


def test_a_refused_event_in_a_batch_is_traced_to_its_line() -> None:
    """The offsets are computed from the batch's body, after the pieces are joined and freed."""
    first = b'GET /a "curl" \\ 200\nna\xc3\xafve caf\xc3\xa9 \xe2\x80\xa8 line\n'
    second = b'last "line", with a quote and comma\n'
    enc = encoder()
    pieces = [*enc.encode(first, 100).pieces, *enc.encode(second, 100 + len(first)).pieces]
    assert all(isinstance(p.offsets, TextStarts) for p in pieces)
    batch = Batch(seq=1)
    for encoded in pieces:
        ticket = Ticket(FileId(1), encoded.end_offset)
        batch.add(Piece(encoded.data, encoded.events, ticket, Origin("/x/a.log", encoded.offsets)))

    body = batch.payload()
    event_starts = [0, *(i + 1 for i, byte in enumerate(body) if byte == ord("\n"))][:-1]

    located = [batch.locate(position) for position in event_starts]
    assert located == [("/x/a.log", 100), ("/x/a.log", 120), ("/x/a.log", 100 + len(first))]
    messages = [orjson.loads(event)["message"] for event in body.splitlines()]
    assert messages[1] == "naïve café \u2028 line"


def test_a_slice_too_big_for_one_piece_is_cut_into_pieces_line_by_line_alike() -> None:
    block = b"".join(b'line %d "quoted"\n' % n for n in range(40))
    enc = encoder(piece_bytes=300)

    fast = enc.encode(block, 7)
    slow = enc._line_by_line(block, 7)

    assert len(fast.pieces) > 1
    assert [(p.data, list(p.offsets)) for p in fast.pieces] == [
        (p.data, list(p.offsets)) for p in slow.pieces
    ]


def test_short_lines_shrink_the_slices_until_each_fits_one_piece() -> None:
    """A 10-byte line becomes a ~60-byte event: a 64 KiB slice of them would need six pieces
    and be escaped line by line; the slices shrink so the rest are escaped whole."""
    block = b"".join(b"short %03d\n" % (n % 1000) for n in range(30_000))
    enc = encoder(piece_bytes=125_000)

    first = enc.encode(block, 0)
    second = enc.encode(block, len(block))

    assert all(len(p.data) <= 125_000 for p in first.pieces + second.pieces)
    assert all(isinstance(p.offsets, TextStarts) for p in second.pieces)
    assert b"".join(p.data for p in second.pieces) == b"".join(p.data for p in first.pieces)
