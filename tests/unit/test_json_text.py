"""What an encoder keeps for the life of its file is kept at its own size."""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable

import orjson

from agent.config import SourceConfig
from agent.encode import EncodeLimits, encoder_for
from agent.encode.values import json_text


def allocated(make: Callable[[], object]) -> int:
    """Bytes held by what `make()` returns (tracemalloc)."""
    tracemalloc.start()
    try:
        kept = make()
        size, _peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    del kept
    return size


def test_a_kept_json_text_is_its_own_size_not_orjsons_buffer() -> None:
    assert json_text("timestamp") == orjson.dumps("timestamp") == b'"timestamp"'
    assert allocated(lambda: orjson.dumps("timestamp")) >= 4000  # why json_text exists
    assert allocated(lambda: json_text("timestamp")) < 200


def test_five_hundred_files_encoders_keep_little_each() -> None:
    """A DaemonSet's node has hundreds of files: their encoders kept ~30 KB each."""
    source = SourceConfig.model_validate({"name": "s", "include": ["/x/*.log"]})

    def encoders() -> list[object]:
        return [
            encoder_for(
                source,
                EncodeLimits.for_batch(1_000_000),
                path=f"/x/{n}.log",
                identity=lambda: "0123456789abcdef",
                start_offset=0,
            )
            for n in range(500)
        ]

    encoder_for(
        source,
        EncodeLimits.for_batch(1_000_000),
        path="/x/warm.log",
        identity=lambda: "f",
        start_offset=0,
    )  # shared decoders built once
    assert allocated(encoders) / 500 < 5_000
