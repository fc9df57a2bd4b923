"""Issue 13 end to end: a file in latin-1 or UTF-16 (with a BOM, little endian: the tailer
cuts each batch after the first byte of a newline) now goes a block at a time; read, appended
to, and read again by the real agent, every line arrives once, as written, and the file's
checkpoint is its own byte size, not the size of the UTF-8 its lines became. It once
read the lines appended to a UTF-16LE file after a restart one byte off their alignment: the
checkpoint stands after the first byte of the last newline, and a new framer took the second
as the start of a line."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from agent.devserver import DevServer
from tests.support.config import CONNECTION
from tests.support.inprocess import InProcessAgent


def received(server: DevServer) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in server.received_lines(CONNECTION)]


def checkpoints(agent: InProcessAgent) -> list[int]:
    files = orjson.loads((agent.data_dir / "checkpoints.json").read_bytes())["files"]
    return [f["offset"] for f in files]


def lines(first: int, count: int, astral: bool) -> list[str]:
    face = " \U0001f600" if astral else ""
    return [f"requête {i} traitée à Zürich{face}" for i in range(first, first + count)]


@pytest.mark.parametrize("charset", ["latin-1", "utf-16"])
async def test_a_file_read_appended_and_read_again_arrives_once_with_its_own_offsets(
    inprocess_agent: Callable[..., InProcessAgent],
    dev_server: DevServer,
    log_dir: Path,
    charset: str,
) -> None:
    astral = charset == "utf-16"
    first, more = lines(0, 3000, astral), lines(3000, 2000, astral)
    path = log_dir / "app.log"
    path.write_bytes("".join(line + "\n" for line in first).encode(charset))  # BOM: utf-16
    agent = inprocess_agent(source={"format": "text", "charset": charset, "event_id": True})
    assert await agent.run_once() == 0
    written = charset if charset == "latin-1" else "utf-16-le"  # no second BOM
    with path.open("ab") as file:
        file.write("".join(line + "\n" for line in more).encode(written))
    assert await agent.run_once() == 0
    events = received(dev_server)
    assert [e["message"] for e in events] == first + more
    assert len({e["event_id"] for e in events}) == len(events)
    unread = 1 if charset == "utf-16" else 0  # the 00 after the last 0x0A: read with the next line
    assert checkpoints(agent) == [path.stat().st_size - unread]


async def test_a_big_endian_file_read_again_after_a_restart_is_read_in_its_own_byte_order(
    inprocess_agent: Callable[..., InProcessAgent],
    dev_server: DevServer,
    log_dir: Path,
) -> None:
    """``charset = "utf-16"`` takes its byte order from the BOM at offset 0. A new agent
    resumes at its checkpoint, past the BOM: it read the appended lines as little endian
    (the default), found no newline of that order, and held them forever. Now the encoder
    reads the file's own first bytes when it starts past them."""
    first, more = lines(0, 300, True), lines(300, 200, True)
    path = log_dir / "app.log"
    path.write_bytes(b"\xfe\xff" + "".join(line + "\n" for line in first).encode("utf-16-be"))
    agent = inprocess_agent(source={"format": "text", "charset": "utf-16", "event_id": True})
    assert await agent.run_once() == 0
    with path.open("ab") as file:
        file.write("".join(line + "\n" for line in more).encode("utf-16-be"))
    assert await agent.run_once() == 0
    events = received(dev_server)
    assert [e["message"] for e in events] == first + more
    assert len({e["event_id"] for e in events}) == len(events)
    assert checkpoints(agent) == [path.stat().st_size]
