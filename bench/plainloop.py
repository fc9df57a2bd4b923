"""The plain-loop baseline: what a careful script that ships a file to the Events API costs.

    python -m bench.plainloop --url http://127.0.0.1:PORT/v1/projects/p/events/c --key K FILE...

Reads big chunks, cuts batches of at most 1 MB at newlines, gzips each with isal, posts them
with aiohttp over a few keep-alive connections (Basic auth as the agent sends it). No
checkpoints, no validation, no time handling, no retry: the floor every shape of the agent is
compared against (`bench/shapes.py`), in the same run and on the same cores.

With ``--text`` (the text shape) each line is first wrapped as a script must for Polaris,
whose Events API takes JSON rows only: ``{"timestamp": <read time>, "message": <the line>}``,
one ``msgspec.json.encode`` of a dict per line, about 600 KB of text a batch. Posting text as
it is would be refused by Polaris (the issue's own text baseline, at 14.4 CPU-s/GB against 6.4
for JSON, wrapped its lines).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import aiohttp
import msgspec
from isal import isal_zlib

CHUNK = 4 * 1024 * 1024
BATCH = 1_000_000
WORKERS = 4


def chunks(paths: list[str]) -> Iterator[bytes]:
    """Runs of whole lines, read CHUNK bytes at a time (a last line without its newline
    gets one)."""
    for path in paths:
        rest = b""
        with open(path, "rb") as file:
            while chunk := file.read(CHUNK):
                data = rest + chunk
                cut = data.rfind(b"\n") + 1
                if cut:
                    yield data[:cut]
                rest = data[cut:]
        if rest:
            yield rest + b"\n"


TEXT_BATCH = 600_000
"""Raw text per batch: about 1 MB once each line is a JSON row."""
_ROWS = msgspec.json.Encoder()


def wrapped(data: bytes) -> bytes:
    """Each text line of `data` as a JSON row with the read time (msgspec: orjson keeps each
    result in a 4 KiB buffer, and a batch of rows then costs 5x in page faults)."""
    now = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + "Z"
    lines = data.decode("utf-8", "replace").split("\n")
    lines.pop()
    rows = [_ROWS.encode({"timestamp": now, "message": line}) for line in lines]
    return b"\n".join(rows) + b"\n"


def batches(
    paths: list[str], transform: Callable[[bytes], bytes] | None = None, limit: int = BATCH
) -> Iterator[bytes]:
    """Runs of whole lines of at most `limit` bytes, each passed through `transform`; what is
    left of a chunk joins the next one, so batches are full whatever the chunk size."""
    rest = b""
    for chunk in chunks(paths):
        data = rest + chunk
        start = 0
        while len(data) - start > limit:
            end = data.rfind(b"\n", start, start + limit) + 1
            if end <= start:  # one line longer than a batch: sent alone
                end = data.index(b"\n", start + limit) + 1
            yield transform(data[start:end]) if transform else data[start:end]
            start = end
        rest = data[start:]
    if rest:
        yield transform(rest) if transform else rest


def gzip(body: bytes) -> bytes:
    compressor = isal_zlib.compressobj(1, isal_zlib.DEFLATED, 31)
    return compressor.compress(body) + compressor.flush()


async def ship(url: str, key: str, paths: list[str], *, text: bool = False) -> int:
    auth = "Basic " + base64.b64encode(f"{key}:".encode()).decode()
    headers = {
        "Authorization": auth,
        "Content-Type": "application/x-ndjson",
        "Content-Encoding": "gzip",
    }
    queue: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=WORKERS * 2)
    loop = asyncio.get_running_loop()
    failures = 0

    async def post(session: aiohttp.ClientSession) -> None:
        nonlocal failures
        while (body := await queue.get()) is not None:
            async with session.post(url, data=body, headers=headers) as response:
                await response.read()
                failures += response.status >= 300

    connector = aiohttp.TCPConnector(limit=WORKERS)
    with ThreadPoolExecutor(2) as threads:
        async with aiohttp.ClientSession(connector=connector) as session:
            senders = [asyncio.create_task(post(session)) for _ in range(WORKERS)]
            wrap = (wrapped, TEXT_BATCH) if text else (None, BATCH)
            for batch in batches(paths, *wrap):
                await queue.put(await loop.run_in_executor(threads, gzip, batch))
            for _ in senders:
                await queue.put(None)
            await asyncio.gather(*senders)
    return failures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.plainloop")
    parser.add_argument("--url", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--text", action="store_true", help="wrap each line as a JSON row")
    parser.add_argument("paths", nargs="+")
    args = parser.parse_args(argv)
    failures = asyncio.run(ship(args.url, args.key, args.paths, text=args.text))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
