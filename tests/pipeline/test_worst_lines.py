"""The worst lines an application can be made to log, through the real agent: none of them stops
shipping, each is forwarded with a time Polaris can place or dead-lettered with its reason."""

from __future__ import annotations

from pathlib import Path

import orjson

from agent.devserver import DevServer
from tests.support.config import CONNECTION

HOSTILE = [
    b"[" * 1100 + b"]" * 1100,  # 2 KB past the decoder's recursion: once a crash at every start
    b'{"timestamp":null,"a":' + b"[" * 300 + b"]" * 300 + b"}",  # too deep to re-encode
    b'{"timestamp":{"nested":true},"n":"object-time"}',
    b'{"timestamp":true,"n":"bool-time"}',
    b'{"timestamp":"garbage","n":"text-time"}',
    b'{"x":[[1',  # bracket-balanced across lines: the block path once took these three as one
    b"2]]}",
    b'{"n":"invalid-utf8","v":"\xff\xfe"}',
]


def dead_letters(data_dir: Path) -> list[dict[str, object]]:
    return [
        orjson.loads(line)
        for file in sorted((data_dir / "dead-letter").glob("*.ndjson"))
        for line in file.read_bytes().splitlines()
    ]


async def test_hostile_lines_neither_stop_the_file_nor_reach_polaris_without_a_time(
    dev_server: DevServer, make_agent, log_dir: Path
) -> None:
    good = [orjson.dumps({"n": f"good-{i}"}) for i in range(3)]
    body = [good[0], *HOSTILE[:4], good[1], *HOSTILE[4:], good[2]]
    (log_dir / "app.log").write_bytes(b"\n".join(body) + b"\n")
    agent = make_agent()

    assert await agent.run_once() == 0
    assert await agent.run_once() == 0, "a restart must not die on the same line either"

    events = {e["n"]: e for e in map(orjson.loads, dev_server.received_lines(CONNECTION))}
    assert sorted(events) == ["bool-time", "good-0", "good-1", "good-2", "object-time", "text-time"]
    for name, raw in (
        ("object-time", {"nested": True}),
        ("bool-time", True),
        ("text-time", "garbage"),
    ):
        assert events[name]["timestamp_raw"] == raw, (
            "the unusable time is kept beside the read time"
        )
        assert events[name]["timestamp"].endswith("Z")
    reasons = sorted(str(d["reason"]) for d in dead_letters(agent.data_dir))
    assert reasons == ["invalid_json"] * 3 + ["too_deeply_nested"] * 2
    assert agent.checkpoints()[str(log_dir / "app.log")] == (log_dir / "app.log").stat().st_size
    assert not [e for e in agent.events() if e.get("event") == "non_json_output"], "a traceback"
