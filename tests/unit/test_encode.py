"""Lines become events with only the work the source's options require."""

from __future__ import annotations

import orjson

from agent.batch.encode import Encoder
from agent.config import SourceConfig

NOW = 1_764_028_800.0  # 2025-11-25T00:00:00Z


def encoder(piece_bytes: int = 1 << 16, **options: object) -> Encoder:
    source = SourceConfig.model_validate({"name": "s", "include": ["/x/*.log"], **options})
    return Encoder(source, max_event_bytes=1_000_000, piece_bytes=piece_bytes, now=lambda: NOW)


def test_a_json_line_with_its_time_is_forwarded_byte_for_byte() -> None:
    line = b'{ "timestamp" : "2026-01-01T00:00:00Z",  "b": [1, 2] }'
    encoded = encoder().encode(line + b"\n", 0)
    assert encoded.pieces[0].data == line + b"\n"


def test_missing_time_and_static_fields_are_spliced_in() -> None:
    encoded = encoder(fields={"env": "prod"}).encode(b'{"a":1}\n{}\n', 0)
    events = [orjson.loads(x) for x in encoded.pieces[0].data.splitlines()]
    assert events == [
        {"a": 1, "timestamp": "2025-11-25T00:00:00.000Z", "env": "prod"},
        {"timestamp": "2025-11-25T00:00:00.000Z", "env": "prod"},
    ]


def test_pieces_are_cut_at_lines_and_carry_the_file_offset_after_their_last_line() -> None:
    lines = b"".join(b'{"timestamp":1,"n":%d}\n' % n for n in range(100))
    encoded = encoder(piece_bytes=200).encode(lines, 1000)
    assert all(len(p.data) <= 200 for p in encoded.pieces)
    assert sum(p.events for p in encoded.pieces) == 100
    assert encoded.pieces[-1].end_offset == 1000 + len(lines)
    ends = [p.end_offset for p in encoded.pieces]
    assert ends == sorted(ends)
    assert b"".join(p.data for p in encoded.pieces) == lines


def test_bad_lines_are_rejected_with_their_offsets_and_blank_lines_skipped() -> None:
    block = b'{"timestamp":1}\nnope\n\n[1]\n'
    encoded = encoder().encode(block, 0)
    assert [(r.reason, r.offset) for r in encoded.rejected] == [
        ("invalid_json", 16),
        ("not_a_json_object", 22),
    ]
    assert encoded.blank == 1
    assert encoded.pieces[-1].end_offset == len(block)


def test_text_lines_are_wrapped_as_messages() -> None:
    encoded = encoder(format="text").encode(b'say "hi"\r\n', 0)
    assert orjson.loads(encoded.pieces[0].data) == {
        "message": 'say "hi"',
        "timestamp": "2025-11-25T00:00:00.000Z",
    }
