"""A batch holds its bytes once: joined, with its events' files and offsets read off the body."""

from __future__ import annotations

from agent.records import Batch, FileId, LineStarts, Origin, Piece, Ticket


def piece(lines: list[bytes], base: int, path: str) -> Piece:
    data = b"".join(line + b"\n" for line in lines)
    return Piece(
        data, len(lines), Ticket(FileId(1), base + len(data)), Origin(path, LineStarts(data, base))
    )


def test_a_joined_batch_finds_every_events_file_and_offset() -> None:
    batch = Batch(1)
    batch.add(piece([b'{"n":1}', b'{"n":22}'], 100, "/a.log"))
    batch.add(piece([b'{"n":333}'], 5000, "/b.log"))
    body = batch.payload()

    assert batch.chunks == []
    found = [batch.locate(body.index(b'{"n":%d' % n)) for n in (1, 22, 333)]
    assert found == [("/a.log", 100), ("/a.log", 108), ("/b.log", 5000)]


def test_joining_frees_the_pieces_and_keeps_their_offsets() -> None:
    batch = Batch(1)
    batch.add(piece([b"a", b"bb"], 7, "/x.log"))
    batch.add(piece([b"ccc"], 20, "/x.log"))

    body = batch.payload()

    assert body == b"a\nbb\nccc\n" and batch.chunks == []
    assert [list(o.offsets) for o in batch.origins if o is not None] == [[7, 9], [20]]


def test_offsets_are_read_back_once_per_piece_however_often_they_are_asked_for() -> None:
    """A 413 split looks up every event of the half it keeps: walking the piece from its
    start for each lookup was quadratic (~1 s of CPU for a 1 MB batch of JSON pieces)."""
    data = b"".join(b'{"n":%d}\n' % n for n in range(50))
    starts = LineStarts(data, 1000, growth=3)
    assert starts[4] == 1000 + data.index(b'{"n":4}') - 4 * 3

    moved = starts.within(b"", 0)  # rebound to a body with nothing left to walk...
    assert [moved[n] for n in (0, 4, 49)] == [starts[0], starts[4], starts[49]]  # ...known
    assert len(moved) == 50
    assert list(moved) == list(starts)
