"""The plain-loop baseline: what a careful script that ships a file to the Events API costs.

    python -m bench.plainloop --url http://127.0.0.1:PORT/v1/projects/p/events/c --key K FILE...

Reads big chunks, cuts batches of at most 1 MB at newlines, gzips each with isal, posts them
with aiohttp over a few keep-alive connections (Basic auth as the agent sends it). No
checkpoints, no validation, no time handling, no retry: the floor every shape of the agent is
compared against (`bench/shapes.py`), in the same run and on the same cores.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import aiohttp
from isal import isal_zlib

CHUNK = 4 * 1024 * 1024
BATCH = 1_000_000
WORKERS = 4


def batches(paths: list[str]) -> Iterator[bytes]:
    """≤ BATCH-byte runs of whole lines, read CHUNK bytes at a time."""
    for path in paths:
        rest = b""
        with open(path, "rb") as file:
            while chunk := file.read(CHUNK):
                data = rest + chunk
                start = 0
                while len(data) - start > BATCH:
                    end = data.rfind(b"\n", start, start + BATCH) + 1
                    if end <= start:  # one line longer than a batch: sent alone
                        end = data.index(b"\n", start + BATCH) + 1
                    yield data[start:end]
                    start = end
                cut = data.rfind(b"\n", start) + 1
                if cut > start:
                    yield data[start:cut]
                rest = data[cut:]
        if rest:
            yield rest + b"\n"


def gzip(body: bytes) -> bytes:
    compressor = isal_zlib.compressobj(1, isal_zlib.DEFLATED, 31)
    return compressor.compress(body) + compressor.flush()


async def ship(url: str, key: str, paths: list[str]) -> int:
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
            for batch in batches(paths):
                await queue.put(await loop.run_in_executor(threads, gzip, batch))
            for _ in senders:
                await queue.put(None)
            await asyncio.gather(*senders)
    return failures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.plainloop")
    parser.add_argument("--url", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("paths", nargs="+")
    args = parser.parse_args(argv)
    failures = asyncio.run(ship(args.url, args.key, args.paths))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
