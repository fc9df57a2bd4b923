"""The payload value: held as NDJSON or gzip, it locates its events and keeps their origins
through compression, a split and a spool write; and the one Authorization header."""

from __future__ import annotations

import base64

from pydantic import SecretStr

from agent.polaris.api import basic_auth as setup_auth
from agent.records import Batch, FileId, LineStarts, Origin, Piece, Ticket
from agent.ship.auth import basic_auth
from agent.ship.compress import gzip_compressor
from agent.ship.payload import EventOrigins, Payload, PieceOrigins


def two_piece_batch() -> tuple[Batch, bytes]:
    """Events from two files: a.log's start at offset 100 each, b.log's listed."""
    a = b'{"a":1}\n{"a":22}\n{"a":333}\n'
    b = b'{"b":1}\n{"b":2}\n'
    batch = Batch(1)
    batch.add(Piece(a, 3, Ticket(FileId(1), 100 + len(a)), Origin("a.log", LineStarts(a, 100))))
    batch.add(Piece(b, 2, Ticket(FileId(2), 50), Origin("b.log", [10, 30])))
    return batch, a + b


def test_a_compressed_batch_payload_still_locates_every_event() -> None:
    batch, body = two_piece_batch()
    payload = Payload.of_batch(batch, "logs")
    zipped = payload.compressed(gzip_compressor(1)(payload.body))
    del batch

    assert zipped.gzipped is not None and zipped.size == len(body)
    expected = [("a.log", 100), ("a.log", 108), ("a.log", 117), ("b.log", 10), ("b.log", 30)]
    starts = [0, *(i + 1 for i, c in enumerate(body[:-1]) if c == ord("\n"))]
    assert [zipped.locate(at) for at in starts] == expected
    assert zipped == payload  # the same events, however held


def test_the_rest_of_a_split_keeps_its_events_origins() -> None:
    batch, body = two_piece_batch()
    payload = Payload.of_batch(batch, "logs")
    second = body.index(b'{"a":22}')
    last = body.index(b'{"b":2}')

    rest = payload.rest(body, [(second, second + 9), (last, len(body))])

    assert rest.body == b'{"a":22}\n{"b":2}\n' and rest.events == 2
    assert rest.origins == EventOrigins((Origin("a.log", [108]), Origin("b.log", [30])))


def test_a_whole_payload_lists_its_origins_from_the_ndjson() -> None:
    batch, body = two_piece_batch()
    payload = Payload.of_batch(batch, "logs")
    assert isinstance(payload.origins, PieceOrigins)

    whole = payload.origins.select(body, [(0, len(body))])

    assert [(o.path, list(o.offsets)) for o in whole] == [
        ("a.log", [100, 108, 117]),
        ("b.log", [10, 30]),
    ]


def test_both_clients_send_the_key_the_same_way() -> None:
    header = basic_auth(SecretStr("pok_secret"))
    assert header == setup_auth("pok_secret") == basic_auth("pok_secret")
    assert base64.b64decode(header.removeprefix("Basic ")) == b"pok_secret:"
