"""The endpoint's ceiling: blast pre-compressed ~1 MB Events API bodies at it from another
process and report how many MB/s of uncompressed NDJSON it absorbs (counting, verifying)."""

from __future__ import annotations

import base64
import socket
import threading
import time
from dataclasses import dataclass

from isal import igzip

from bench.endpoint import MAX_PAYLOAD
from bench.gen import LineGenerator


@dataclass(frozen=True, slots=True)
class Ceiling:
    mb_per_s: float  # uncompressed NDJSON, as counted by the endpoint
    events_per_s: float
    requests: int
    seconds: float
    lost: int
    duplicates: int


def build_requests(lines: int, host: str, port: int, api_key: str) -> tuple[list[bytes], int]:
    """Pre-built HTTP requests with gzip bodies of at most MAX_PAYLOAD uncompressed bytes."""
    data = LineGenerator("json").lines(0, lines)
    token = base64.b64encode(f"{api_key}:".encode()).decode()
    requests = []
    start = 0
    while start < len(data):
        cut = data.rfind(b"\n", start, start + MAX_PAYLOAD) + 1
        if cut <= start:
            raise ValueError("a line longer than the payload limit")
        body = igzip.compress(data[start:cut], 1)
        head = (
            f"POST /v1/projects/bench/events/logs HTTP/1.1\r\nHost: {host}:{port}\r\n"
            f"Authorization: Basic {token}\r\nContent-Type: application/json\r\n"
            f"Content-Encoding: gzip\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        requests.append(head.encode() + body)
        start = cut
    return requests, len(data)


def blast(requests: list[bytes], host: str, port: int, connections: int = 4) -> float:
    """Send every request once over `connections` keep-alive sockets; the wall seconds."""
    cursor = iter(range(len(requests)))
    lock = threading.Lock()

    def worker() -> None:
        with socket.create_connection((host, port)) as sock:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            while True:
                with lock:
                    index = next(cursor, None)
                if index is None:
                    return
                sock.sendall(requests[index])
                answer = b""
                while b"\r\n\r\n" not in answer:
                    chunk = sock.recv(65536)
                    if not chunk:
                        raise ConnectionError("endpoint closed the connection")
                    answer += chunk
                head, _, rest = answer.partition(b"\r\n\r\n")
                if not head.startswith(b"HTTP/1.1 200"):
                    raise RuntimeError(head.decode(errors="replace"))
                length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
                while len(rest) < length:
                    rest += sock.recv(65536)

    threads = [threading.Thread(target=worker) for _ in range(connections)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - started
