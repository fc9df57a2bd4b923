"""A reader emits whole lines only, and never skips a partial one."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.records import FileId
from agent.tail import reader as reader_module
from agent.tail.fingerprint import fingerprint
from agent.tail.reader import (
    CHUNK_BYTES,
    LONG_LINE_HEAD_BYTES,
    Block,
    LongLine,
    Reader,
    Truncated,
)


def open_reader(path: Path, offset: int = 0, max_line: int = 1000) -> Reader:
    fd = os.open(path, os.O_RDONLY)
    return Reader(
        FileId(1), "s", str(path), fd, offset, fingerprint(fd, 0), max_line_bytes=max_line
    )


def read_all(reader: Reader) -> list[bytes]:
    lines: list[bytes] = []
    while (item := reader.read()) is not None:
        assert isinstance(item, Block)
        lines.extend(item.data.splitlines())
    return lines


@settings(max_examples=60, deadline=None)
@given(writes=st.lists(st.binary(max_size=40).map(lambda b: b.replace(b"\r", b"")), max_size=20))
def test_any_sequence_of_writes_yields_each_complete_line_once_in_order(
    writes: list[bytes],
) -> None:
    path = Path(os.environ.get("TMPDIR", "/tmp")) / f"reader-{os.getpid()}-{id(writes)}.log"
    path.write_bytes(b"")
    try:
        reader = open_reader(path)
        emitted: list[bytes] = []
        for chunk in writes:
            with path.open("ab") as out:
                out.write(chunk)
            emitted += read_all(reader)
        content = path.read_bytes()
        complete = content[: content.rfind(b"\n") + 1]
        assert emitted == complete.splitlines()
        assert reader.offset == len(complete)
        reader.close()
    finally:
        path.unlink()


def test_an_over_long_line_is_reported_once_and_reading_resumes_after_it(tmp_path: Path) -> None:
    path = tmp_path / "a.log"
    path.write_bytes(b"ok\n" + b"x" * 50)
    reader = open_reader(path, max_line=20)
    assert reader.read() == Block(b"ok\n", 0)
    long = reader.read()
    assert long == LongLine(b"x" * 50, 3, 50, None), "progress: its end is not there yet"
    assert reader.read() is None
    with path.open("ab") as out:
        out.write(b"yyy\nnext\n")
    rest = reader.read()
    assert rest == LongLine(b"x" * 50, 3, 53, 3 + 53 + 1)
    assert reader.read() == Block(b"next\n", 57)


def test_a_line_many_chunks_long_is_skipped_in_one_read_without_being_held(
    tmp_path: Path,
) -> None:
    path = tmp_path / "a.log"
    huge = b"h" * (3 * CHUNK_BYTES + 17)
    path.write_bytes(b"ok\n" + huge + b"\nnext\n")
    reader = open_reader(path, max_line=1000)
    assert reader.read() == Block(b"ok\n", 0)

    long = reader.read()

    assert long == LongLine(b"h" * LONG_LINE_HEAD_BYTES, 3, len(huge), 3 + len(huge) + 1)
    assert reader.read() == Block(b"next\n", 3 + len(huge) + 1)
    assert reader.read() is None


def test_a_line_longer_than_the_skip_budget_reports_progress_until_its_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(reader_module, "SKIP_BYTES_PER_CALL", 4000)
    monkeypatch.setattr(reader_module, "SKIP_READ_BYTES", 1000)
    path = tmp_path / "a.log"
    length = CHUNK_BYTES + 20_000
    path.write_bytes(b"y" * length + b"\nafter\n")
    reader = open_reader(path, max_line=100)

    items = []
    while (item := reader.read()) is not None and not isinstance(item, Block):
        assert isinstance(item, LongLine)
        items.append(item)

    assert item == Block(b"after\n", length + 1)
    assert [i.complete for i in items] == [False] * (len(items) - 1) + [True]
    assert len(items) > 2, "the budget bounds each call"
    assert items[-1].length == length


@pytest.mark.parametrize("max_line", [0, 1])
def test_at_a_tiny_limit_every_skipped_line_keeps_a_head_for_its_dead_letter(
    tmp_path: Path, max_line: int
) -> None:
    path = tmp_path / "a.log"
    path.write_bytes(b'{"n":1}\n\n{"n":2}\n')
    reader = open_reader(path, max_line=max_line)

    items = []
    while (item := reader.read()) is not None:
        items.append(item)

    assert items[0] == LongLine(b'{"n":1}', 0, 7, 8)
    assert items[1] == Block(b"\n", 8), "a blank line is no longer than any limit"
    assert items[2] == LongLine(b'{"n":2}', 9, 7, 17), "cut off the block: skipped alike"


def test_a_block_ends_before_a_long_line_in_its_middle(tmp_path: Path) -> None:
    path = tmp_path / "a.log"
    path.write_bytes(b"a\nbb\n" + b"L" * 30 + b"\nc\n")
    reader = open_reader(path, max_line=10)

    assert reader.read() == Block(b"a\nbb\n", 0)
    assert reader.read() == LongLine(b"L" * 30, 5, 30, 36)
    assert reader.read() == Block(b"c\n", 36)


def test_a_file_truncated_while_skipping_a_long_line_is_read_afresh(tmp_path: Path) -> None:
    path = tmp_path / "a.log"
    path.write_bytes(b"x" * 50)
    reader = open_reader(path, max_line=20)
    assert isinstance(reader.read(), LongLine)
    path.write_bytes(b"new\n")  # truncated and rewritten in place

    try:
        reader.read()
    except Truncated:
        reader.rewind(FileId(2))
    else:
        raise AssertionError("a shrunken file must be reported as truncated")

    assert reader.read() == Block(b"new\n", 0)


@settings(max_examples=80, deadline=None)
@given(
    writes=st.lists(st.binary(max_size=60).map(lambda b: b.replace(b"\r", b"")), max_size=20),
    limit=st.integers(min_value=0, max_value=12),
)
def test_every_complete_line_is_emitted_once_in_order_either_whole_or_as_a_long_line(
    writes: list[bytes], limit: int
) -> None:
    path = Path(os.environ.get("TMPDIR", "/tmp")) / f"reader-long-{os.getpid()}-{id(writes)}.log"
    path.write_bytes(b"")
    try:
        reader = open_reader(path, max_line=limit)
        seen: list[tuple[int, bytes | int]] = []  # (start, line) or (start, length) if long
        for chunk in writes:
            with path.open("ab") as out:
                out.write(chunk)
            while (item := reader.read()) is not None:
                if isinstance(item, LongLine):
                    if item.complete:
                        seen.append((item.start, item.length))
                    continue
                offset = item.start
                for line in item.data.split(b"\n")[:-1]:
                    assert len(line) <= limit
                    seen.append((offset, line))
                    offset += len(line) + 1
        content = path.read_bytes()
        complete = content[: content.rfind(b"\n") + 1]
        expected: list[tuple[int, bytes | int]] = []
        offset = 0
        for line in complete.split(b"\n")[:-1]:
            expected.append((offset, line if len(line) <= limit else len(line)))
            offset += len(line) + 1
        assert seen == expected
        assert reader.line_offset == len(complete)
        reader.close()
    finally:
        path.unlink()
