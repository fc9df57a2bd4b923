"""A read of the default size (default line limit) fills whole pieces: no tail of a few lines
after every read."""

from __future__ import annotations

import os
from pathlib import Path

from agent.config import SourceConfig
from agent.encode import EncodeLimits, encoder_for
from agent.records import FileId
from agent.tail.fingerprint import fingerprint
from agent.tail.reader import Block, Reader
from bench.gen import LineGenerator


def test_a_read_of_json_lines_becomes_three_pieces_at_the_default_batch_size(
    tmp_path: Path,
) -> None:
    path = tmp_path / "app.log"
    path.write_bytes(LineGenerator("json").lines(0, 3500))  # the bench's lines, ~1 MB
    fd = os.open(path, os.O_RDONLY)
    reader = Reader(
        FileId(1), "app", str(path), fd, 0, fingerprint(fd, 0), max_line_bytes=256 * 1024
    )
    source = SourceConfig.model_validate({"name": "app", "include": [str(path)], "format": "json"})
    limits = EncodeLimits.for_batch(1_000_000)
    encoder = encoder_for(source, limits, path=str(path), identity=lambda: "id", start_offset=0)

    block = reader.read()
    assert isinstance(block, Block)
    encoded = encoder.encode(block.data, block.start)

    assert not encoded.rejected
    assert [p.end_offset for p in encoded.pieces][-1] == block.end
    assert len(encoded.pieces) == 3, [len(p.data) for p in encoded.pieces]
    reader.close()
