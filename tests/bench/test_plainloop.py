"""The plain-loop baseline cuts whole lines into full batches, and wraps text as Polaris rows."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

import bench.plainloop as plainloop


def test_batches_are_whole_lines_and_full_across_chunks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lines = [b'{"seq":%d,"pad":"%s"}\n' % (n, b"x" * (n % 7)) for n in range(200)]
    path = tmp_path / "app.log"
    path.write_bytes(b"".join(lines))
    monkeypatch.setattr(plainloop, "CHUNK", 97)  # chunks end mid-line

    batches = list(plainloop.batches([str(path)], limit=300))

    assert b"".join(batches) == path.read_bytes()
    assert all(batch.endswith(b"\n") and len(batch) <= 300 for batch in batches)
    assert all(len(batch) > 300 - 40 for batch in batches[:-1])  # carried over, not cut short


def test_text_lines_become_json_rows_with_the_read_time(tmp_path: Path) -> None:
    path = tmp_path / "app.log"
    path.write_bytes('GET /a "quoted" seq=1\nlast line, ünïcode\n'.encode())

    rows = [
        orjson.loads(row)
        for batch in plainloop.batches([str(path)], plainloop.wrapped)
        for row in batch.splitlines()
    ]

    assert [row["message"] for row in rows] == ['GET /a "quoted" seq=1', "last line, ünïcode"]
    assert all(row["timestamp"].endswith("Z") for row in rows)


def test_the_spread_between_json_shapes_is_judged_on_what_each_costs() -> None:
    from bench import shapes
    from bench.report import Result

    def run(name: str, seconds: float, cpu: float) -> Result:
        result = Result(f"{name} (1 core)", tool="agent", lines=1, raw_bytes=146_000_000)
        result.seconds, result.cpu = seconds, cpu
        return result

    lines = shapes.spread(
        [run("json-timestamp", 1.5, 1.30), run("json-fields", 2.0, 1.45), run("json-x", 1.4, 1.6)]
    )

    assert [line.endswith("over the best)") for line in lines] == [False, False, True]
    assert lines[1].startswith("json-fields (1 core): 1.12x the cheapest")


def test_shapes_pinned_to_one_core_are_not_held_to_a_scenario_run_on_two() -> None:
    from bench import shapes
    from bench.report import Result

    def run(scenario: str, cpu: float) -> Result:
        result = Result(scenario, tool="agent", lines=1, raw_bytes=146_000_000)
        result.seconds, result.cpu = 1.0, cpu
        return result

    lines = shapes.spread([run("json-10", 0.9), run("json-timestamp (1 core)", 1.1)])

    assert lines == [
        "json-10: 1.00x the cheapest JSON shape's CPU-s/GB, 1.00 of the fastest one's MB/s",
        "json-timestamp (1 core): 1.00x the cheapest JSON shape's CPU-s/GB, 1.00 of the "
        "fastest one's MB/s",
    ]


def test_the_encoder_bench_measures_every_unparsed_shape(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from bench import encoders

    assert encoders.main([*encoders.DEFAULT_SHAPES, "--blocks", "1", "--rounds", "1"]) == 0

    printed = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in printed] == encoders.DEFAULT_SHAPES
    assert all(float(line.split()[1]) > 0 for line in printed)
