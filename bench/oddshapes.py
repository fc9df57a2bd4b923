"""The encoder alone on logs that look nothing like the bench's (issue 13): ms of CPU per MB.

    PYTHONPATH=. taskset -c 1 .venv/bin/python -m bench.oddshapes [--rounds N]

The bench generates one kind of JSON line; users' files also end their lines in CRLF, keep
their time as epoch numbers or as ``2026-12-03 10:00:00,123``, carry a raw stack trace or a
blank line among the JSON, or are short lines of a few fields. Each such shape that sent its
blocks line by line cost 7-35x the bench's own (`bench.encoders` has the shapes the end-to-end
bench runs; these are the ones it does not). Each figure is the least thread CPU of `--rounds`
rounds over about 7 MB, with the bench's JSON beside it; lines refused on purpose (the raw
lines among JSON) are counted, not an error.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from itertools import accumulate
from typing import Any, Literal

import orjson

from agent.config import SourceConfig
from agent.encode import EncodeLimits, LineEncoder, encoder_for
from bench.gen import LineGenerator

BLOCK_LINES = 1260  # about 368,000 bytes of the bench's lines: what the tailer reads at once
BLOCKS = 20
NOW = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
NOW_MS = int(time.time() * 1000)


@dataclass(frozen=True)
class OddShape:
    name: str
    options: dict[str, Any]
    blocks: Callable[[], list[bytes]]
    fresh: bool = False  # a new encoder at offset 0 each round (a file read from its start)


def _bench(fmt: Literal["json", "text"]) -> list[bytes]:
    generator = LineGenerator(fmt)
    return [generator.lines(i * BLOCK_LINES, BLOCK_LINES) for i in range(BLOCKS)]


def _rows(make: Callable[[int], dict[str, Any]], per_block: int) -> list[bytes]:
    return [
        b"".join(orjson.dumps(make(i)) + b"\n" for i in range(b * per_block, (b + 1) * per_block))
        for b in range(BLOCKS)
    ]


def _among(blocks: list[bytes], every: int, odd: bytes) -> list[bytes]:
    """`odd` after every `every`-th line."""
    out = []
    for block in blocks:
        lines = block.split(b"\n")[:-1]
        extra = [
            (line + b"\n" + odd) if i % every == every - 1 else line for i, line in enumerate(lines)
        ]
        out.append(b"\n".join(extra) + b"\n")
    return out


def _charset(blocks: list[bytes], charset: str, plain: bytes, odd: str) -> list[bytes]:
    """`blocks` written in `charset`, `plain` in each line made `odd` (a non-ASCII word)."""
    return [b.replace(plain, odd.encode("utf-8")).decode("utf-8").encode(charset) for b in blocks]


def _utf16le(blocks: list[bytes]) -> list[bytes]:
    """UTF-16LE text with a BOM, cut as the tailer cuts it: after the byte 0x0A, so each
    block ends in the first half of its newline and the next one starts with the other."""
    data = b"\xff\xfe" + b"".join(blocks).decode("utf-8").encode("utf-16-le")
    out, position = [], 0
    for size in accumulate(len(b.decode("utf-8")) for b in blocks):
        end = 2 * (size - 1) + 3  # just after the 0x0A of the block's last newline
        out.append(data[position:end])
        position = end
    return out


def _nginx(blocks: list[bytes]) -> list[bytes]:
    """The bench's lines as nginx access lines."""
    out = []
    for block in blocks:
        lines = []
        for seq, line in enumerate(block.split(b"\n")[:-1]):
            stamp = line[:19].decode()
            day = time.strptime(stamp, "%Y-%m-%dT%H:%M:%S")
            when = time.strftime("%d/%b/%Y:%H:%M:%S +0000", day).encode()
            lines.append(
                b'10.0.%d.%d - - [%s] "GET /caf\xe9/%d HTTP/1.1" 200 %d "-" "curl/8.4.0"\n'
                % (seq >> 8 & 255, seq & 255, when, seq, len(line))
            )
        out.append(b"".join(lines))
    return out


def _asctime(i: int) -> str:
    return NOW.replace("T", " ") + f",{i % 1000:03d}"


SHAPES = [
    OddShape("bench JSON (timestamp)", {}, lambda: _bench("json")),
    OddShape(
        "JSON, CRLF line ends", {}, lambda: [b.replace(b"\n", b"\r\n") for b in _bench("json")]
    ),
    OddShape(
        "text, CRLF line ends",
        {"format": "text"},
        lambda: [b.replace(b"\n", b"\r\n") for b in _bench("text")],
    ),
    OddShape(
        "pino: time_field = time (epoch ms)",
        {"time_field": "time"},
        lambda: _rows(
            lambda i: {
                "level": 30,
                "time": NOW_MS + i,
                "pid": 1,
                "hostname": "web-1",
                "msg": f"request {i} done",
            },
            4000,
        ),
    ),
    OddShape(
        "zap: time_field = ts (epoch s)",
        {"time_field": "ts"},
        lambda: _rows(
            lambda i: {
                "level": "info",
                "ts": NOW_MS / 1000 + i / 1000,
                "caller": "main.go:42",
                "msg": f"ok {i}",
            },
            4000,
        ),
    ),
    OddShape(
        "timestamp in epoch seconds",
        {},
        lambda: _rows(
            lambda i: {
                "timestamp": NOW_MS // 1000 + i // 100,
                "level": "info",
                "msg": f"hello {i}",
            },
            4000,
        ),
    ),
    OddShape(
        "python-json-logger asctime",
        {"time_field": "asctime"},
        lambda: _rows(
            lambda i: {
                "asctime": _asctime(i),
                "levelname": "INFO",
                "name": "app",
                "message": f"hello {i}",
            },
            4000,
        ),
    ),
    OddShape(
        "JSON + a raw line per 1000",
        {},
        lambda: _among(_bench("json"), 1000, b"java.lang.IllegalStateException: boom"),
    ),
    OddShape(
        "JSON + a raw line per 100",
        {},
        lambda: _among(_bench("json"), 100, b"\tat com.example.Main.run(Main.java:7)"),
    ),
    OddShape("JSON + a blank line per 500", {}, lambda: _among(_bench("json"), 500, b"")),
    OddShape(
        "JSON + a null time per 100",
        {},
        lambda: _among(_bench("json"), 100, b'{"timestamp":null,"msg":"x"}'),
    ),
    OddShape(
        "text + bad UTF-8 per 1000",
        {"format": "text"},
        lambda: _among(_bench("text"), 1000, b"caf\xe9"),
    ),
    OddShape(
        "short JSON lines (~70 B)",
        {},
        lambda: _rows(
            lambda i: {"timestamp": f"{NOW}.{i % 1000:03d}Z", "level": "info", "msg": f"ok {i}"},
            6000,
        ),
    ),
    OddShape(
        "Kubernetes audit (nested)",
        {},
        lambda: _rows(
            lambda i: {
                "timestamp": f"{NOW}Z",
                "kind": "Event",
                "verb": "get",
                "objectRef": {
                    "resource": "pods",
                    "namespace": "ns",
                    "name": f"p{i}",
                    "apiVersion": "v1",
                },
                "user": {
                    "username": "system:serviceaccount:kube-system:x",
                    "groups": ["system:authenticated"],
                },
                "sourceIPs": [f"10.0.0.{i % 255}"],
                "responseStatus": {"metadata": {}, "code": 200},
                "annotations": {"authorization.k8s.io/decision": "allow"},
            },
            700,
        ),
    ),
    OddShape(
        "text, CJK",
        {"format": "text"},
        lambda: [b.replace(b"request", "请求已完成".encode()) for b in _bench("text")],
    ),
    OddShape(
        "latin-1 text",
        {"format": "text", "charset": "latin-1"},
        lambda: _charset(_bench("text"), "latin-1", b"request", "requête"),
    ),
    OddShape(
        "windows-1252 nginx",
        {"format": "text", "charset": "windows-1252", "parser": {"type": "nginx"}},
        lambda: _nginx(_bench("text")),
    ),
    OddShape(
        "UTF-16LE text, BOM",
        {"format": "text", "charset": "utf-16"},
        lambda: _utf16le(_bench("text")),
        fresh=True,
    ),
    OddShape(
        "UTF-16LE JSON, BOM",
        {"charset": "utf-16"},
        lambda: _utf16le(_bench("json")),
        fresh=True,
    ),
]


def ms_per_mb(shape: OddShape, blocks: list[bytes], rounds: int) -> tuple[float, int]:
    """The least thread CPU of encoding `blocks` once, per MB; lines refused per round."""
    source = SourceConfig.model_validate(
        {"name": "odd", "include": ["/odd/*.log"], **shape.options}
    )

    def encoder() -> LineEncoder:
        return encoder_for(
            source,
            EncodeLimits.for_batch(1_000_000),
            path="/odd/app.log",
            identity=lambda: "0123456789abcdef",
            start_offset=0,
        )

    best, offset, refused, reading = float("inf"), 0, 0, encoder()
    for _ in range(rounds + 1):  # the first warms up
        refused = 0
        if shape.fresh:
            reading, offset = encoder(), 0
        started = time.thread_time()
        for block in blocks:
            refused += len(reading.encode(block, offset).rejected)
            offset += len(block)
        best = min(best, time.thread_time() - started)
    return best / sum(map(len, blocks)) * 1e9, refused


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.oddshapes")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("only", nargs="*", help="shapes whose name holds one of these words")
    args = parser.parse_args(argv)
    for shape in SHAPES:
        if args.only and not any(word in shape.name for word in args.only):
            continue
        blocks = shape.blocks()
        cost, refused = ms_per_mb(shape, blocks, args.rounds)
        note = f"  ({refused} lines refused, on purpose)" if refused else ""
        print(f"{shape.name:36s} {cost:6.2f} ms/MB{note}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
