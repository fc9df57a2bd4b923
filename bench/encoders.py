"""The encoder alone, per shape: the steadier figure behind the shapes' table (issue 13).

    PYTHONPATH=. taskset -c 1 .venv/bin/python -m bench.encoders [SHAPE...] [--blocks N]

Encodes the bench's lines of each unparsed shape (`bench.shapes.SHAPES`) in blocks of about
368,000 bytes, the size the tailer reads, with the encoder a source of that shape gets
(`agent.encode.encoder_for`), and prints the least thread CPU per MB of `--rounds` rounds after
a warm-up: a figure that one busy neighbour moves far less than the agent's whole-run CPU-s/GB.
"""

from __future__ import annotations

import argparse
import sys
import time
import tomllib

from agent.config import SourceConfig
from agent.encode import EncodeLimits, encoder_for
from bench.gen import LineGenerator
from bench.shapes import BY_NAME, Shape

BLOCK_LINES = 1260  # about 368,000 bytes of the bench's JSON lines
DEFAULT_SHAPES = [
    "json-timestamp", "json-missing", "json-event_time", "json-@timestamp", "json-epoch-s",
    "json-epoch-ms", "json-timestamp-ms", "json-zap", "json-asctime", "json-crlf", "json-fields",
    "json-event_id", "text", "text-crlf",
]  # fmt: skip


def source_for(shape: Shape) -> SourceConfig:
    """The source options the bench gives this shape."""
    options: dict[str, object] = {
        "name": "bench",
        "include": ["/bench/*.log"],
        "format": "json" if shape.fmt == "json" else "text",
    }
    if shape.fields:
        options["fields"] = shape.fields
    options.update(tomllib.loads(shape.source))  # its lines of the [[sources]] entry
    return SourceConfig.model_validate(options)


def blocks_of(shape: Shape, count: int) -> list[bytes]:
    generator = LineGenerator("json" if shape.fmt == "json" else "text")
    blocks = []
    for index in range(count):
        first = index * BLOCK_LINES
        data = generator.lines(first, BLOCK_LINES)
        blocks.append(shape.transform(data, first) if shape.transform else data)
    return blocks


def ms_per_mb(shape: Shape, blocks: list[bytes], rounds: int) -> float:
    """The least thread CPU of encoding `blocks` once, per MB, over `rounds` rounds."""
    encoder = encoder_for(
        source_for(shape),
        EncodeLimits.for_batch(1_000_000),
        path="/bench/app.log",
        identity=lambda: "0123456789abcdef",
        start_offset=0,
    )
    best = float("inf")
    offset = 0
    for _ in range(rounds + 1):  # the first warms up
        started = time.thread_time()
        for block in blocks:
            encoded = encoder.encode(block, offset)
            offset += len(block)
            if encoded.rejected:
                raise SystemExit(f"{shape.name}: {encoded.rejected[0]}")
        best = min(best, time.thread_time() - started)
    return best / sum(map(len, blocks)) * 1e9


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.encoders")
    parser.add_argument("shapes", nargs="*", default=DEFAULT_SHAPES)
    parser.add_argument("--blocks", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=25)
    args = parser.parse_args(argv)
    for name in args.shapes:
        shape = BY_NAME[f"shape:{name}"]
        if shape.parsed:
            raise SystemExit(f"{name}: parsed shapes are measured by lines/s in the bench")
        blocks = blocks_of(shape, args.blocks)
        print(f"{name:16s} {ms_per_mb(shape, blocks, args.rounds):6.2f} ms/MB", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
