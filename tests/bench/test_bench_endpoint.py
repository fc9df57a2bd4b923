"""The counting endpoint: loss and duplicate accounting, the 1 MB limit, the wire formats."""

from __future__ import annotations

import base64
import socket

import orjson
from isal import igzip

from bench.endpoint import SEQ, Endpoint, EndpointProcess, Tally
from bench.gen import LineGenerator

KEY = "k"


def seqs(*numbers: int) -> list[bytes]:
    return [str(n).encode() for n in numbers]


def test_contiguous_batches_count_new_and_duplicates() -> None:
    tally = Tally(10)
    tally.add(seqs(0, 1, 2, 3), 1.0)
    tally.add(seqs(2, 3, 4, 5), 2.0)  # 2 and 3 again: a retried batch
    assert (tally.new, tally.duplicates, tally.lost, tally.events) == (6, 2, 4, 8)
    assert (tally.first_at, tally.last_new_at) == (1.0, 2.0)


def test_mixed_batches_take_the_slow_path_and_agree() -> None:
    tally = Tally(10)
    tally.add(seqs(9, 0, 5), 1.0)  # not contiguous
    tally.add(seqs(3, 3, 4, 5), 1.5)  # contiguous span, but a duplicate inside the body
    tally.add(seqs(12), 2.0)  # beyond what was written
    assert tally.new == 5  # 0, 3, 4, 5, 9
    assert tally.duplicates == 2  # the second 3, the second 5
    assert tally.out_of_range == 1
    assert tally.lost == 5
    assert bytes(tally.seen) == bytes([1, 0, 0, 1, 1, 1, 0, 0, 0, 1])


def test_receipt_times_are_first_arrivals() -> None:
    tally = Tally(3, track_times=True)
    tally.add(seqs(0, 1), 10.0)
    tally.add(seqs(1, 2), 11.0)
    assert tally.times is not None
    assert tally.times.tolist() == [10.0, 10.0, 11.0]
    assert tally.duplicates == 1


def test_seq_pattern_reads_json_otlp_and_text() -> None:
    json_line = LineGenerator("json").lines(5, 1)
    text_line = LineGenerator("text").lines(6, 1)
    otlp = orjson.dumps({"logRecords": [{"body": {"stringValue": json_line.decode()}}]})
    assert b'\\"seq\\":5' in otlp
    assert SEQ.findall(json_line + text_line + otlp) == [b"5", b"6", b"5"]


def auth() -> dict[str, str]:
    return {"authorization": "Basic " + base64.b64encode(f"{KEY}:".encode()).decode()}


def test_events_api_checks_auth_size_and_gzip() -> None:
    endpoint = Endpoint(KEY)
    endpoint.reset(20_000, track_times=False)
    body = LineGenerator("json").lines(0, 3000)  # under 1 MB
    gz = {**auth(), "content-encoding": "gzip"}
    assert endpoint.ingest("events", {}, body)[0] == 401
    assert endpoint.ingest("events", gz, igzip.compress(body))[0] == 200
    big = LineGenerator("json").lines(3000, 4000)  # over 1 MB once decompressed
    assert len(big) > 1_000_000
    assert endpoint.ingest("events", gz, igzip.compress(big))[0] == 413
    assert endpoint.ingest("plain", {}, big)[0] == 413  # over 1 MB on the wire
    assert endpoint.ingest("events", auth(), body)[0] == 200  # the same lines, uncompressed
    snap = endpoint.snapshot()
    assert (snap["new"], snap["duplicates"], snap["lost"]) == (3000, 3000, 17_000)
    assert snap["by_status"] == {401: 1, 200: 2, 413: 2}
    endpoint.fail_status = 503
    assert endpoint.ingest("events", gz, igzip.compress(body))[0] == 503
    assert endpoint.snapshot()["new"] == 3000


def test_the_process_speaks_http_with_keep_alive_and_100_continue() -> None:
    body = igzip.compress(LineGenerator("json").lines(0, 100))
    head = (
        "POST /v1/projects/p/events/c HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Authorization: {auth()['authorization']}\r\nContent-Encoding: gzip\r\n"
        f"Expect: 100-continue\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    chunked = LineGenerator("json").lines(100, 10)
    second = (
        (
            "POST /v1/logs HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            f"{len(chunked):x}\r\n"
        ).encode()
        + chunked
        + b"\r\n0\r\n\r\n"
    )
    with EndpointProcess(KEY) as client:
        client.reset(200)
        with socket.create_connection(("127.0.0.1", client.port), timeout=10) as sock:
            sock.sendall(head)
            assert read_answer(sock).startswith(b"HTTP/1.1 100")
            sock.sendall(body)
            assert read_answer(sock).startswith(b"HTTP/1.1 200")
            sock.sendall(second)  # the same connection
            assert read_answer(sock).startswith(b"HTTP/1.1 200")
        stats = client.stats()
    assert (stats["new"], stats["duplicates"], stats["lost"]) == (110, 0, 90)
    assert stats["otlp_requests"] == 1


def read_answer(sock: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(4096)
    head, _, rest = data.partition(b"\r\n\r\n")
    if b"content-length:" in head.lower():
        length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
        while len(rest) < length:
            rest += sock.recv(4096)
    return head
