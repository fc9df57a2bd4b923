"""A reader emits whole lines only, and never skips a partial one."""

from __future__ import annotations

import os
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from agent.records import FileId
from agent.tail.fingerprint import fingerprint
from agent.tail.reader import Block, LongLine, Reader, Truncated


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
    assert isinstance(long, LongLine) and long.head == b"x" * 20 and long.resume_at is None
    with path.open("ab") as out:
        out.write(b"yyy\nnext\n")
    rest = reader.read()
    assert rest == LongLine(b"", 3, 3 + 53 + 1)
    assert reader.read() == Block(b"next\n", 57)


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
