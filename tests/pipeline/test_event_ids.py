"""JSON lines with ``event_id = true`` end to end (issue 13): the block path (`IdEncoder`) and
the line path it falls back to give each event one id, the same when the file is read again."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import orjson

from agent.devserver import DevServer
from tests.support.config import CONNECTION
from tests.support.inprocess import InProcessAgent


async def test_json_event_ids_are_unique_and_survive_a_reread(
    inprocess_agent: Callable[..., InProcessAgent], dev_server: DevServer, log_dir: Path
) -> None:
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.123Z")
    good = b"".join(b'{"timestamp":"%s","seq":%d}\n' % (stamp.encode(), n) for n in range(500))
    odd = b'{"seq": 500, "note": "spaced"}\n{"seq":501}\n'  # no time: the read time
    (log_dir / "app.log").write_bytes(good + odd + good.replace(b'"seq":', b'"seq":1'))
    agent = inprocess_agent(source={"format": "json", "event_id": True})
    assert await agent.run_once() == 0
    first = [orjson.loads(line) for line in dev_server.received_lines(CONNECTION)]
    assert len(first) == 1002
    assert len({e["event_id"] for e in first}) == 1002
    assert first[0]["timestamp"] == stamp and first[500]["note"] == "spaced"

    (agent.data_dir / "checkpoints.json").unlink()  # as if the checkpoint never got saved
    assert await agent.run_once() == 0
    again = [orjson.loads(line) for line in dev_server.received_lines(CONNECTION)][1002:]
    assert [e["event_id"] for e in again] == [e["event_id"] for e in first]
