"""The line-level stage: container formats, rotation, multiline, charsets."""

from __future__ import annotations

from typing import Any

from agent.parse.assemble import Assembler, Record
from agent.parse.kubernetes import container_key
from agent.parse.settings import SourceParsing

POD_LOG = "/var/log/pods/shop_checkout-7d9f_0f1e2d3c-aaaa-bbbb-cccc-123456789abc/app/0.log"


def assembler(**options: Any) -> Assembler:
    return Assembler(SourceParsing.model_validate(options), path=POD_LOG, clock=lambda: 0.0)


def lines(*texts: bytes, start: int = 0) -> list[tuple[bytes, int, int]]:
    """Lines as the tailer hands them over: without the newline, with their offsets."""
    out = []
    for text in texts:
        out.append((text, start, start + len(text) + 1))
        start += len(text) + 1
    return out


def test_cri_partial_fragments_are_joined_until_final() -> None:
    cri = assembler(kubernetes={"format": "cri"})
    fed = lines(
        b"2024-05-01T10:00:00.000000001Z stdout P first ",
        b"2024-05-01T10:00:00.100000000Z stderr F an error",
        b"2024-05-01T10:00:00.200000000Z stdout P second ",
        b"2024-05-01T10:00:00.300000000Z stdout F third",
    )
    records = cri.feed(fed[:3])
    assert records == [
        Record("an error", fed[1][1], fed[1][2], "stderr", "2024-05-01T10:00:00.100000000Z")
    ]
    assert cri.pending_offset == 0  # the P fragments must not be checkpointed past
    records = cri.feed(fed[3:])
    assert records == [
        Record("first second third", 0, fed[3][2], "stdout", "2024-05-01T10:00:00.000000001Z", 3)
    ]
    assert cri.pending_offset is None
    assert cri.counters.partial_joined == 1


def test_cri_fragment_split_by_rotation_arrives_joined() -> None:
    rotated = POD_LOG + ".20240501-100000"
    assert container_key(rotated) == container_key(POD_LOG)
    old = Assembler(SourceParsing.model_validate({"kubernetes": {"format": "cri"}}), path=rotated)
    assert old.feed(lines(b"2024-05-01T10:00:00Z stdout P a long line, ", start=4096)) == []
    state = old.state()
    assert state["partial"]["stdout"]["parts"] == ["a long line, "]

    new = assembler(kubernetes={"format": "cri"})
    new.restore(state)
    assert new.pending_offset == 0  # the inherited fragment pins the new file's checkpoint
    fed = lines(b"2024-05-01T10:00:01Z stdout F continued after rotation")
    assert new.feed(fed) == [
        Record(
            "a long line, continued after rotation",
            0,
            fed[0][2],
            "stdout",
            "2024-05-01T10:00:00Z",
            2,
        )
    ]


def test_cri_fragment_without_final_is_released_by_timeout() -> None:
    cri = assembler(kubernetes={"format": "cri", "partial_flush_timeout": "2s"})
    cri.feed(lines(b"2024-05-01T10:00:00Z stdout P dangling"), now=10.0)
    assert cri.flush(11.0) == []
    [record] = cri.flush(12.0)
    assert record.text == "dangling" and cri.counters.partial_flushed == 1


def test_docker_json_file_lines() -> None:
    docker = assembler(kubernetes={"format": "docker"})
    fed = lines(
        b'{"log":"part one, ","stream":"stdout","time":"2024-05-01T10:00:00.1Z"}',
        b'{"log":"part two\\n","stream":"stdout","time":"2024-05-01T10:00:00.2Z"}',
        b'{"log":"oops\\r\\n","stream":"stderr","time":"2024-05-01T10:00:00.3Z"}',
        b"not docker at all",
    )
    records = docker.feed(fed)
    assert [(r.text, r.stream, r.time) for r in records] == [
        ("part one, part two", "stdout", "2024-05-01T10:00:00.1Z"),
        ("oops", "stderr", "2024-05-01T10:00:00.3Z"),
        ("not docker at all", None, None),
    ]
    assert docker.counters.container_unparsed == 1


PYTHON_TRACEBACK = [
    b"2024-05-01 10:00:00,001 ERROR worker crashed",
    b"Traceback (most recent call last):",
    b'  File "/app/worker.py", line 12, in run',
    b"    result = handle(job)",
    b'  File "/app/worker.py", line 30, in handle',
    b"    raise ValueError(job)",
    b"ValueError: {'id': 7}",
    b"2024-05-01 10:00:01,000 INFO next job",
]


def test_python_traceback_is_one_record() -> None:
    joiner = assembler(multiline={"start_pattern": r"^\d{4}-\d{2}-\d{2} "})
    fed = lines(*PYTHON_TRACEBACK)
    [record] = joiner.feed(fed, now=0.0)
    assert record.text == b"\n".join(PYTHON_TRACEBACK[:-1]).decode()
    assert (record.start_offset, record.end_offset, record.lines) == (0, fed[6][2], 7)
    assert joiner.pending_offset == fed[7][1]  # "next job" waits for what follows it
    assert joiner.flush(0.5) == []
    [last] = joiner.flush(1.0)  # flush_timeout defaults to 1s
    assert last.text.endswith("INFO next job") and joiner.pending_offset is None


JAVA_TRACE = [
    b'Exception in thread "main" java.lang.IllegalStateException: boom',
    b"\tat com.example.Shop.checkout(Shop.java:42)",
    b"\tat com.example.Main.main(Main.java:7)",
    b"Caused by: java.io.IOException: disk full",
    b"\tat com.example.Store.write(Store.java:99)",
    b"\t... 2 more",
    b"Done.",
]


def test_java_stack_trace_is_one_record_and_max_bytes_is_respected() -> None:
    options = {"start_pattern": r"^(?![\t ]|Caused by:)"}  # Java: indented or "Caused by" continues
    joiner = assembler(multiline=options)
    records = joiner.feed(lines(*JAVA_TRACE), now=0.0) + joiner.flush(5.0)
    assert [r.text for r in records] == [b"\n".join(JAVA_TRACE[:-1]).decode(), "Done."]

    capped = assembler(multiline={**options, "max_bytes": 100})
    records = capped.feed(lines(*JAVA_TRACE), now=0.0) + capped.flush(5.0)
    assert all(len(r.text.encode()) <= 100 for r in records)
    assert "".join(r.text.replace("\n", "") for r in records) == b"".join(JAVA_TRACE).decode()
    assert capped.counters.multiline_split >= 1


def test_bom_is_stripped_and_invalid_utf8_replaced_and_counted() -> None:
    plain = assembler()
    records = plain.feed(lines(b'\xef\xbb\xbf{"a":1}', b"caf\xe9 \xff\xfeok\r"))
    assert [r.text for r in records] == ['{"a":1}', "caf\ufffd \ufffd\ufffdok"]
    assert plain.counters.bom_stripped == 1
    assert plain.counters.invalid_bytes == 3


def test_latin1_source() -> None:
    latin = assembler(charset="latin-1")
    [record] = latin.feed(lines("Zürich straße".encode("latin-1")))
    assert record.text == "Zürich straße" and latin.counters.invalid_bytes == 0


def split_like_the_tailer(data: bytes) -> list[tuple[bytes, int, int]]:
    """Cut at every 0x0A byte, as the tailer does whatever the charset."""
    out, start = [], 0
    for piece in data.split(b"\n")[:-1]:
        out.append((piece, start, start + len(piece) + 1))
        start += len(piece) + 1
    return out


def test_utf16_with_bom_is_reframed_and_decoded() -> None:
    text = "first line\r\nsecond \u010a line\r\nthird\r\n"  # U+010A holds a 0x0A byte
    data = text.encode("utf-16")  # BOM + little endian
    wide = assembler(charset="utf-16")
    records = wide.feed(split_like_the_tailer(data))
    assert [r.text for r in records] == ["first line", "second \u010a line", "third"]
    assert records[-1].end_offset == len(data)
    assert wide.counters.bom_stripped == 1 and wide.pending_offset is None


def test_utf16_big_endian_byte_order_survives_a_restart() -> None:
    data = b"\xfe\xff" + "one\ntwo\n".encode("utf-16-be")
    first = assembler(charset="utf-16")
    first.feed(split_like_the_tailer(data)[:1])
    second = assembler(charset="utf-16")
    second.restore(first.state())
    rest = split_like_the_tailer(data)[1:]
    assert [r.text for r in second.feed(rest)] == ["two"]
