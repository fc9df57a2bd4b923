"""The generator: valid, realistic lines, each with its own seq number, spread over files."""

from __future__ import annotations

import re
import time
from pathlib import Path

import orjson

from bench.gen import LineGenerator, file_ranges, write_logs


def test_json_lines_are_objects_with_consecutive_unique_seqs() -> None:
    data = LineGenerator("json").lines(1000, 5000)
    lines = data.split(b"\n")
    assert lines[-1] == b""  # every line ends in a newline
    events = [orjson.loads(line) for line in lines[:-1]]
    assert [e["seq"] for e in events] == list(range(1000, 6000))
    first = events[0]
    for key in ("timestamp", "level", "service", "host", "method", "path", "status"):
        assert key in first
    assert {"latency_ms", "user_agent", "trace_id", "message"} <= first.keys()
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", first["timestamp"])
    assert len({e["trace_id"] for e in events}) == len(events)
    assert 250 <= len(data) / len(events) <= 320  # about the 282 bytes a line


def test_text_lines_carry_seq() -> None:
    data = LineGenerator("text").lines(7, 100)
    found = [int(n) for n in re.findall(rb" seq=(\d+) ", data)]
    assert found == list(range(7, 107))
    assert not data.startswith(b"{")


def test_same_seed_same_lines() -> None:
    gen = LineGenerator("json", t0=1_700_000_000)
    assert gen.lines(0, 50) == LineGenerator("json", t0=1_700_000_000).lines(0, 50)


def test_line_at_stamps_the_write_time() -> None:
    now = time.time()
    line = LineGenerator("json").line_at(42, now)
    event = orjson.loads(line)
    assert event["seq"] == 42
    assert event["timestamp"] == time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + (
        f".{int(now * 1000) % 1000:03d}Z"
    )


def test_files_split_the_seq_range(tmp_path: Path) -> None:
    assert [c for _, _, c in file_ranges(10, 3)] == [4, 3, 3]
    written = write_logs(tmp_path, 1001, files=7)
    assert len(written.paths) == 7
    seqs = []
    for path in written.paths:
        seqs += [orjson.loads(line)["seq"] for line in path.read_bytes().splitlines()]
    assert sorted(seqs) == list(range(1001))
    assert written.bytes == sum(p.stat().st_size for p in written.paths)
