"""UTF-32 little endian, read as the tailer reads it: each batch ends just after a byte 0x0A,
the first of the four of a newline (``0A 00 00 00``). The framer releases that last line at
once and drops the newline's other three bytes when they arrive; it once dropped them only
when they were one byte (UTF-16), so the next line began with three NULs, off its alignment,
and came out as U+FFFD garbage with its bytes counted invalid."""

from __future__ import annotations

import pytest

from agent.config import SourceConfig
from agent.parse.assemble import Assembler


def batches_cut_after_each_newline(data: bytes) -> list[list[tuple[bytes, int, int]]]:
    """One batch per byte line: each ends just after a 0x0A, as at the end of what was read."""
    out, start = [], 0
    for piece in data.split(b"\n")[:-1]:
        out.append([(piece, start, start + len(piece) + 1)])
        start += len(piece) + 1
    return out


@pytest.mark.parametrize("charset", ["utf-32-le", "utf-32", "utf-16-le"])
def test_lines_released_at_each_batch_end_come_out_whole(charset: str) -> None:
    data = "ab\ncd\nef\n".encode(charset.replace("utf-32", "utf-32-le").replace("-le-le", "-le"))
    source = SourceConfig.model_validate({"name": "s", "include": ["/x/*"], "charset": charset})
    wide = Assembler(source)
    records = [r for batch in batches_cut_after_each_newline(data) for r in wide.feed(batch)]
    unit = 4 if "32" in charset else 2
    assert [r.text for r in records] == ["ab", "cd", "ef"]
    assert [r.start_offset for r in records] == [0, 3 * unit, 6 * unit]
    assert wide.counters.invalid_bytes == 0


@pytest.mark.parametrize("charset", ["utf-16", "utf-16-le", "utf-32-le"])
def test_a_restart_resumes_after_the_first_byte_of_a_released_newline(charset: str) -> None:
    """The checkpoint of a file whose last line was released at once stands after its
    newline's first byte; the agent restarted, a new assembler reads on from there."""
    order = "utf-32-le" if "32" in charset else "utf-16-le"
    data = "ab\ncd\nef\n".encode(order)
    source = SourceConfig.model_validate({"name": "s", "include": ["/x/*"], "charset": charset})
    first = Assembler(source)
    batches = batches_cut_after_each_newline(data)
    [released] = first.feed(batches[0])
    checkpoint = released.start_offset + data.index(b"\n") + 1
    again = Assembler(source)
    records = [r for batch in batches[1:] for r in again.feed(batch)]
    assert batches[1][0][1] == checkpoint
    assert [r.text for r in records] == ["cd", "ef"]
    assert again.counters.invalid_bytes == 0
