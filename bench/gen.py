"""Realistic application/access log lines, each with a unique integer ``seq``.

Fast enough for millions of lines without numpy: every field that does not have to be unique
is pre-rendered into a pool of line "middles" once; a line is then one ``bytes %`` of a short
template (timestamp, seq, latency, size, trace id and a pooled middle), about 1 µs each.

JSON lines look like::

    {"timestamp":"2025-11-26T01:30:00.123Z","seq":42,"level":"info","service":"checkout",...}

Text lines carry the same data as ``2025-11-26T01:30:00.123Z INFO checkout ... seq=42 ...``.
The endpoint finds ``"seq":N`` (JSON, also inside OTLP string values as ``\\"seq\\":N``) or
``seq=N`` (text) with one regular expression per body.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Format = Literal["json", "text"]

POOL_SIZE = 8192
CHUNK_LINES = 100_000

_SERVICES = [
    "checkout",
    "cart",
    "payments",
    "search",
    "catalog",
    "auth",
    "gateway",
    "inventory",
    "shipping",
    "recommendations",
]
_LEVELS = ["info"] * 80 + ["debug"] * 8 + ["warn"] * 8 + ["error"] * 4
_METHODS = ["GET"] * 70 + ["POST"] * 20 + ["PUT"] * 6 + ["DELETE"] * 4
_PATHS = [
    "/api/v1/orders/{id}",
    "/api/v1/orders/{id}/items",
    "/api/v1/cart/{id}",
    "/api/v2/products/{id}",
    "/api/v2/products/{id}/reviews",
    "/api/v1/users/{id}",
    "/api/v1/search?q=item{n}",
    "/healthz",
    "/api/v1/payments/{id}/capture",
    "/static/js/app.{n}.js",
]
_STATUSES = [200] * 82 + [201] * 5 + [204] * 3 + [301] + [304] * 3 + [400, 401, 403] + [404] * 2
_STATUSES += [500, 502, 503]
_AGENTS = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/120.0",
    "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Firefox/121.0",
    "curl/8.4.0",
    "okhttp/4.12.0",
    "python-requests/2.31.0",
    "Go-http-client/2.0",
    "kube-probe/1.28",
]
_MESSAGES = {
    "info": ["request completed", "cache hit", "order placed", "session refreshed"],
    "debug": ["cache lookup", "query plan: index scan"],
    "warn": ["slow upstream response, retrying", "rate limit nearly reached for client"],
    "error": ["upstream timed out after 3 attempts", "database connection reset by peer"],
}

_JSON_LINE = (
    b'{"timestamp":"%s.%03dZ","seq":%d,%s,"latency_ms":%d.%d,"trace_id":"%016x","message":"%s"}\n'
)
_TEXT_LINE = b"%s.%03dZ seq=%d %s %d.%dms trace=%016x %s\n"


@dataclass(frozen=True, slots=True)
class _Middle:
    json: bytes
    text: bytes
    message: bytes


def _middles(seed: int) -> list[_Middle]:
    rng = random.Random(seed)
    pool = []
    for _ in range(POOL_SIZE):
        level = rng.choice(_LEVELS)
        service = rng.choice(_SERVICES)
        host = f"{service}-{rng.randrange(1, 40):02d}"
        method = rng.choice(_METHODS)
        path = rng.choice(_PATHS).format(id=rng.randrange(10**6), n=rng.randrange(1000))
        status = rng.choice(_STATUSES)
        agent = rng.choice(_AGENTS)
        message = rng.choice(_MESSAGES[level])
        js = (
            f'"level":"{level}","service":"{service}","host":"{host}","method":"{method}",'
            f'"path":"{path}","status":{status},"user_agent":"{agent}"'
        )
        text = f'{level.upper()} {service} {host} {method} {path} {status} "{agent}"'
        pool.append(_Middle(js.encode(), text.encode(), message.encode()))
    return pool


class LineGenerator:
    """Deterministic lines for `seq` numbers; the timestamp advances 1 ms per line from `t0`."""

    def __init__(self, fmt: Format = "json", *, seed: int = 7, t0: float | None = None) -> None:
        self.fmt = fmt
        self._pool = _middles(seed)
        self._t0 = int(time.time() - 3600) if t0 is None else int(t0)
        self._seconds: dict[int, bytes] = {}

    def _second(self, second: int) -> bytes:
        text = self._seconds.get(second)
        if text is None:
            text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(self._t0 + second)).encode()
            if len(self._seconds) > 4096:
                self._seconds.clear()
            self._seconds[second] = text
        return text

    def lines(self, first_seq: int, count: int) -> bytes:
        """`count` lines for seq numbers first_seq, first_seq+1, ... joined, each ending in \\n."""
        pool = self._pool
        size = len(pool)
        json = self.fmt == "json"
        template = _JSON_LINE if json else _TEXT_LINE
        middles = [m.json if json else m.text for m in pool]
        messages = [m.message for m in pool]
        out: list[bytes] = []
        seq, end = first_seq, first_seq + count
        while seq < end:
            stop = min(end, (seq // 1000 + 1) * 1000)  # one timestamp second at a time
            prefix = self._second(seq // 1000)
            for q in range(seq, stop):
                mix = ((q + 1) * 2654435761) & 0xFFFFFFFF
                out.append(
                    template
                    % (
                        prefix,
                        q % 1000,
                        q,
                        middles[mix % size],
                        mix % 900,
                        mix % 10,
                        ((q + 1) * 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF,
                        messages[mix % size],
                    )
                )
            seq = stop
        return b"".join(out)

    def line_at(self, seq: int, write_time: float) -> bytes:
        """One line stamped with the wall-clock `write_time` (the latency scenario)."""
        line = self.lines(seq, 1)
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(write_time)).encode()
        millis = int(write_time * 1000) % 1000
        head = b"%s.%03dZ" % (stamp, millis)
        if self.fmt == "json":
            return line[:14] + head + line[14 + len(head) :]
        return head + line[len(head) :]


@dataclass(frozen=True, slots=True)
class Written:
    paths: list[Path]
    lines: int
    bytes: int


def file_ranges(total: int, files: int) -> Iterator[tuple[int, int, int]]:
    """(file index, first seq, count): `total` seq numbers spread over `files` files."""
    base, extra = divmod(total, files)
    first = 0
    for index in range(files):
        count = base + (1 if index < extra else 0)
        yield index, first, count
        first += count


def write_logs(
    directory: Path,
    total_lines: int,
    *,
    files: int = 1,
    fmt: Format = "json",
    seed: int = 7,
    prefix: str = "app",
) -> Written:
    """Write `total_lines` lines (seq 0..total_lines-1) over `files` files named prefix-N.log."""
    directory.mkdir(parents=True, exist_ok=True)
    gen = LineGenerator(fmt, seed=seed)
    paths = []
    written = 0
    for index, first, count in file_ranges(total_lines, files):
        path = directory / f"{prefix}-{index:04d}.log"
        with path.open("wb") as out:
            for start in range(first, first + count, CHUNK_LINES):
                data = gen.lines(start, min(CHUNK_LINES, first + count - start))
                out.write(data)
                written += len(data)
        paths.append(path)
    return Written(paths, total_lines, written)
