"""Coverage-guided fuzzing of the encoder (atheris): not part of `make test`.

The property of tests/unit/test_encode_fuzz.py, driven by coverage instead of strategies:
for any block of bytes, encoding never raises, and the whole-block fast path gives exactly
what the line-by-line path gives (events, bytes, offsets, dead letters, counts).

    .venv/bin/pip install atheris
    .venv/bin/python bench/fuzz_encode.py -max_total_time=300 -max_len=4096
"""

from __future__ import annotations

import sys

import atheris  # type: ignore[import-untyped]

with atheris.instrument_imports():
    from agent.config import SourceConfig
    from agent.encode import Encoded, Encoder

NOW = 1_764_028_800.0
SEEDS = [
    b'{"timestamp":"2025-11-24T00:00:00Z","n":1}\n',
    b'{"timestamp":"2025-11-24T00:00:00Z","x":[[1\n2]]}\n{"timestamp":"t"}],[{"timestamp":"t"}\n',
]


def encoders() -> list[tuple[Encoder, Encoder]]:
    pairs = []
    for fields in ({}, {"env": "prod"}):
        source = SourceConfig.model_validate(
            {"name": "s", "include": ["/x/*.log"], "fields": fields}
        )
        pairs.append(
            tuple(
                Encoder(source, max_event_bytes=4096, piece_bytes=256, now=lambda: NOW)
                for _ in range(2)
            )
        )
    return pairs  # type: ignore[return-value]


PAIRS = encoders()


def outcome(encoded: Encoded) -> tuple[object, ...]:
    pieces = [(p.data, list(p.offsets)) for p in encoded.pieces if p.events]
    return pieces, encoded.pieces[-1].end_offset, encoded.rejected, encoded.blank


def one_input(data: bytes) -> None:
    block = data.replace(b"\r", b"")
    if not block.endswith(b"\n"):
        block += b"\n"
    for fast_encoder, line_encoder in PAIRS:
        fast = fast_encoder.encode(block, 3)
        slow = line_encoder._line_by_line(block, 3)
        if outcome(fast) != outcome(slow):
            raise AssertionError(f"paths disagree on {block!r}")
        if fast_encoder.take_counts() != line_encoder.take_counts():
            raise AssertionError(f"counts disagree on {block!r}")


if __name__ == "__main__":
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()
