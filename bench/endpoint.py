"""A Polaris-like sink that counts and verifies, fast enough never to be the bottleneck.

A raw ``asyncio.Protocol`` HTTP/1.1 server (keep-alive, Content-Length and chunked bodies,
``Expect: 100-continue``) run as its own process, so that it never shares the agent's GIL:

- ``POST /v1/projects/{project}/events/{connection}``: the Events API. Basic auth is checked,
  gzip is decompressed with isal, and a body over 1,000,000 bytes (on the wire or
  decompressed) is answered 413 and not counted.
- ``POST /v1/logs``: OTLP/HTTP logs (JSON or protobuf: the lines sit in string values).
- any other ``POST``: a plain NDJSON or text body, gzip or not (syslog-ng, Fluent Bit, fluentd);
  the same 1,000,000-byte limit.

Each accepted body costs one regular-expression scan that finds every line's ``seq`` number;
a bytearray with one byte per expected seq tells new lines from duplicates, and what is never
marked is lost. Control and results are on ``/_bench/*`` (see :class:`EndpointClient`).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import re
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from array import array
from dataclasses import dataclass
from typing import Any

from isal import igzip

MAX_PAYLOAD = 1_000_000
SEQ = re.compile(rb'seq(?:\\?":|=)(\d+)')
"""``"seq":N`` in NDJSON, ``\\"seq\\":N`` inside an OTLP JSON string, ``seq=N`` in text."""

_REASONS = {200: "OK", 401: "Unauthorized", 404: "Not Found", 413: "Payload Too Large"}
_REASONS |= {400: "Bad Request", 429: "Too Many Requests", 503: "Service Unavailable"}


class Tally:
    """Which seq numbers arrived, how often, and (in latency mode) when each first arrived."""

    def __init__(self, expected: int = 0, *, track_times: bool = False) -> None:
        self.expected = expected
        self.seen = bytearray(expected)
        self.times: array[float] | None = array("d", bytes(8 * expected)) if track_times else None
        self.events = 0  # every seq found, duplicates included
        self.new = 0
        self.duplicates = 0
        self.out_of_range = 0
        self.first_at = 0.0
        self.last_new_at = 0.0

    def add(self, found: list[bytes], now: float) -> None:
        if not found:
            return
        seqs = list(map(int, found))
        count = len(seqs)
        self.events += count
        if not self.first_at:
            self.first_at = now
        low, high = min(seqs), max(seqs)
        seen = self.seen
        fresh = 0
        if (
            self.times is None
            and high - low + 1 == count
            and high < self.expected
            and low >= 0
            and len(set(seqs)) == count
        ):
            # One contiguous run (the common case: a batch cut from one file): slice work only.
            already = seen[low : high + 1].count(1)
            seen[low : high + 1] = b"\x01" * count
            fresh = count - already
            self.duplicates += already
        else:
            times = self.times
            limit = self.expected
            for seq in seqs:
                if seq >= limit:
                    self.out_of_range += 1
                elif seen[seq]:
                    self.duplicates += 1
                else:
                    seen[seq] = 1
                    fresh += 1
                    if times is not None:
                        times[seq] = now
        if fresh:
            self.new += fresh
            self.last_new_at = now

    @property
    def lost(self) -> int:
        return self.expected - self.new


@dataclass(slots=True)
class Stats:
    requests: int = 0
    by_status: dict[int, int] | None = None
    wire_bytes: int = 0
    raw_bytes: int = 0  # decompressed bodies that were accepted
    max_body: int = 0  # largest accepted decompressed body
    otlp_requests: int = 0

    def status(self, code: int) -> None:
        assert self.by_status is not None
        self.by_status[code] = self.by_status.get(code, 0) + 1


class Endpoint:
    def __init__(self, api_key: str) -> None:
        token = base64.b64encode(f"{api_key}:".encode()).decode()
        self.auth = f"Basic {token}"
        self.fail_status = 0  # answer ingest requests with this status while set
        self.reset(0, track_times=False)

    def reset(self, expected: int, *, track_times: bool) -> None:
        self.tally = Tally(expected, track_times=track_times)
        self.stats = Stats(by_status={})
        self.reset_at = time.time()

    def ingest(self, kind: str, headers: dict[str, str], body: bytes) -> tuple[int, bytes]:
        stats = self.stats
        stats.requests += 1
        if self.fail_status:
            stats.status(self.fail_status)
            return self.fail_status, b'{"error":"injected"}'
        if kind == "events" and headers.get("authorization") != self.auth:
            stats.status(401)
            return 401, b'{"error":"unauthorized"}'
        stats.wire_bytes += len(body)
        if kind != "otlp" and len(body) > MAX_PAYLOAD:
            stats.status(413)
            return 413, b'{"error":"payload too large"}'
        if headers.get("content-encoding", "").lower() == "gzip":
            try:
                body = igzip.decompress(body)  # type: ignore[no-untyped-call]
            except Exception:
                stats.status(400)
                return 400, b'{"error":"bad gzip"}'
        if kind != "otlp" and len(body) > MAX_PAYLOAD:
            stats.status(413)
            return 413, b'{"error":"payload too large after decompression"}'
        stats.raw_bytes += len(body)
        if len(body) > stats.max_body:
            stats.max_body = len(body)
        if kind == "otlp":
            stats.otlp_requests += 1
        self.tally.add(SEQ.findall(body), time.time())
        stats.status(200)
        return 200, b"{}"

    def snapshot(self) -> dict[str, Any]:
        tally, stats = self.tally, self.stats
        return {
            "expected": tally.expected,
            "events": tally.events,
            "new": tally.new,
            "lost": tally.lost,
            "duplicates": tally.duplicates,
            "out_of_range": tally.out_of_range,
            "first_at": tally.first_at,
            "last_new_at": tally.last_new_at,
            "reset_at": self.reset_at,
            "requests": stats.requests,
            "by_status": stats.by_status,
            "wire_bytes": stats.wire_bytes,
            "raw_bytes": stats.raw_bytes,
            "max_body": stats.max_body,
            "otlp_requests": stats.otlp_requests,
            "fail_status": self.fail_status,
        }

    def receipts(self) -> list[float]:
        times = self.tally.times
        return [] if times is None else times.tolist()

    def control(self, path: str, query: dict[str, str]) -> tuple[int, bytes]:
        if path == "/_bench/stats":
            return 200, json.dumps(self.snapshot()).encode()
        if path == "/_bench/reset":
            expected = int(query.get("expected", "0"))
            self.reset(expected, track_times=query.get("times") == "1")
            return 200, b"{}"
        if path == "/_bench/fail":
            self.fail_status = int(query.get("status", "0"))
            return 200, b"{}"
        if path == "/_bench/receipts":
            return 200, json.dumps(self.receipts()).encode()
        return 404, b'{"error":"not found"}'


class HttpProtocol(asyncio.Protocol):
    """Just enough HTTP/1.1 for keep-alive POSTs from aiohttp, libcurl, Go and Fluent Bit."""

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.head: tuple[str, str, dict[str, str]] | None = None
        self.length = -1  # body bytes still expected; -2: chunked
        self.chunks: list[bytes] = []  # of a chunked body
        self.parts: list[bytes] = []  # of a Content-Length body

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        while data:
            if self.length >= 0 and self.head is not None:
                # A Content-Length body: keep the pieces and join once (one copy per body).
                take = data[: self.length] if len(data) > self.length else data
                data = data[len(take) :]
                self.parts.append(take)
                self.length -= len(take)
                if self.length == 0:
                    body = b"".join(self.parts)
                    self.parts = []
                    self._respond(body)
                continue
            self.buffer += data
            data = b""
            while self._step():
                if self.length >= 0 and self.head is not None and self.buffer:
                    data = bytes(self.buffer)  # the start of a body: back to the fast path
                    self.buffer.clear()
                    break

    def _step(self) -> bool:
        """Parse a head, or a chunked body, as far as the buffer allows."""
        buffer = self.buffer
        if self.head is None:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(buffer) > 65536:
                    self._close()
                return False
            lines = bytes(buffer[:end]).decode("latin-1").split("\r\n")
            del buffer[: end + 4]
            method, target, _version = lines[0].split(" ", 2)
            headers = {}
            for line in lines[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            self.head = (method, target, headers)
            if headers.get("expect", "").lower() == "100-continue":
                self._write(b"HTTP/1.1 100 Continue\r\n\r\n")
            if headers.get("transfer-encoding", "").lower() == "chunked":
                self.length = -2
            else:
                self.length = int(headers.get("content-length", "0"))
                if self.length == 0:
                    self._respond(b"")
            return True
        if self.length == -2:
            return self._chunk()
        return False

    def _chunk(self) -> bool:
        buffer = self.buffer
        end = buffer.find(b"\r\n")
        if end < 0:
            return False
        size = int(bytes(buffer[:end]).split(b";")[0], 16)
        if size == 0:
            trailer = buffer.find(b"\r\n\r\n", end)
            if trailer < 0:
                return False
            del buffer[: trailer + 4]
            body = b"".join(self.chunks)
            self.chunks = []
            self.length = -1
            self._respond(body)
            return True
        if len(buffer) < end + 2 + size + 2:
            return False
        self.chunks.append(bytes(buffer[end + 2 : end + 2 + size]))
        del buffer[: end + 2 + size + 2]
        return True

    def _respond(self, body: bytes) -> None:
        assert self.head is not None
        method, target, headers = self.head
        self.head = None
        self.length = -1
        path, _, query_text = target.partition("?")
        endpoint = self.endpoint
        if path.startswith("/_bench/"):
            query = dict(urllib.parse.parse_qsl(query_text))
            status, answer = endpoint.control(path, query)
        elif method != "POST":
            status, answer = 404, b'{"error":"not found"}'
        elif path.startswith("/v1/projects/") and "/events/" in path:
            status, answer = endpoint.ingest("events", headers, body)
        elif path == "/v1/logs":
            status, answer = endpoint.ingest("otlp", headers, body)
        else:
            status, answer = endpoint.ingest("plain", headers, body)
        close = headers.get("connection", "").lower() == "close"
        reason = _REASONS.get(status, "Status")
        head = (
            f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(answer)}\r\n"
        )
        if status == 503:
            head += "Retry-After: 1\r\n"
        if close:
            head += "Connection: close\r\n"
        self._write(head.encode() + b"\r\n" + answer)
        if close:
            self._close()

    def _write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def _close(self) -> None:
        if self.transport is not None:
            self.transport.close()


async def serve(host: str, port: int, api_key: str, ready: bool = True) -> None:
    endpoint = Endpoint(api_key)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: HttpProtocol(endpoint), host, port, reuse_address=True, backlog=1024
    )
    bound = server.sockets[0].getsockname()[1]
    if ready:
        print(f"listening {bound}", flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


class EndpointClient:
    """The runner's side: start/stop the endpoint process and talk to /_bench/*."""

    def __init__(self, url: str) -> None:
        self.url = url

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def _call(self, method: str, path: str, **query: object) -> Any:
        target = f"{self.url}{path}"
        if query:
            target += "?" + urllib.parse.urlencode({k: str(v) for k, v in query.items()})
        request = urllib.request.Request(
            target, method=method, data=b"" if method == "POST" else None
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())

    def reset(self, expected: int, *, times: bool = False) -> None:
        self._call("POST", "/_bench/reset", expected=expected, times=int(times))

    def fail(self, status: int) -> None:
        self._call("POST", "/_bench/fail", status=status)

    def stats(self) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", "/_bench/stats")
        return result

    def receipts(self) -> list[float]:
        result: list[float] = self._call("GET", "/_bench/receipts")
        return result


class EndpointProcess:
    """``with EndpointProcess() as endpoint:`` runs the endpoint as a child process."""

    def __init__(self, api_key: str = "bench-key") -> None:
        self.api_key = api_key
        self.process: subprocess.Popen[bytes] | None = None
        self.port = 0

    def __enter__(self) -> EndpointClient:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bench.endpoint", "--api-key", self.api_key],
            stdout=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline().decode()
        if not line.startswith("listening "):
            self.process.kill()
            raise RuntimeError(f"the bench endpoint did not start: {line!r}")
        self.port = int(line.split()[1])
        return EndpointClient(f"http://127.0.0.1:{self.port}")

    def __exit__(self, *exc: object) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.endpoint")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--api-key", default="bench-key")
    args = parser.parse_args(argv)
    asyncio.run(serve(args.host, args.port, args.api_key))
    return 0


if __name__ == "__main__":
    sys.exit(main())
