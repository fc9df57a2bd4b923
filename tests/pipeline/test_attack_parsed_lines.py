"""Hostile lines for the parsed sources' block paths (issue 13), through the real agent: a
time beyond what ISO 8601 can write once raised OverflowError out of the encoder (the agent
died at that line, at every start); each is now dead-lettered with its reason, and the lines
around it shipped."""

from __future__ import annotations

import time
from pathlib import Path

import orjson
import pytest

from agent.devserver import DevServer
from tests.support.config import CONNECTION

NOW_LINE = b'10.0.0.1 - - [%s] "GET /good-%d HTTP/1.1" 200 1 "-" "curl"'


def dead_letters(data_dir: Path) -> list[dict[str, object]]:
    return [
        orjson.loads(line)
        for file in sorted((data_dir / "dead-letter").glob("*.ndjson"))
        for line in file.read_bytes().splitlines()
    ]


@pytest.mark.parametrize(
    ("source", "good", "hostile"),
    [
        (
            {"format": "text", "parser": "nginx"},
            [NOW_LINE % (b"%s", i) for i in range(3)],
            [
                b'1.2.3.4 - - [01/Jan/0001:00:00:00 +2359] "GET /year-1 HTTP/1.1" 200 1 "-" "-"',
                b'1.2.3.4 - - [31/Dec/9999:23:59:59 -2359] "GET /year-9999 HTTP/1.1" 200 1',
                b"a b c [",  # a bracket left open: once scanned to the end of the slice
                b'1.2.3.4 - - [t] "\\',
            ],
        ),
        (
            {"format": "text", "kubernetes": {"format": "cri"}},
            [b"%s stdout F /good-" + str(i).encode() for i in range(3)],
            [
                b"0001-01-01T00:00:00+01:00 stdout F year-1",
                b"9999-12-31T23:59:59-01:00 stderr F year-9999",
                b"%s stdout P joined-with-the-next ",
            ],
        ),
    ],
    ids=["nginx", "cri"],
)
async def test_hostile_parsed_lines_do_not_stop_the_file(
    dev_server: DevServer,
    make_agent,
    log_dir: Path,
    source: dict[str, object],
    good: list[bytes],
    hostile: list[bytes],
) -> None:

    stamp = (
        time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime())
        if "parser" in source
        else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    ).encode()
    good = [line.replace(b"%s", stamp) for line in good]
    hostile = [line.replace(b"%s", stamp) for line in hostile]
    body = [good[0], *hostile[:2], good[1], *hostile[2:], good[2]]
    (log_dir / "app.log").write_bytes(b"\n".join(body) + b"\n")
    agent = make_agent(source=source)

    assert await agent.run_once() == 0
    assert await agent.run_once() == 0, "a restart must not die on the same line either"

    received = [orjson.loads(line) for line in dev_server.received_lines(CONNECTION)]
    text = orjson.dumps(received)
    for i in range(3):
        assert b"/good-%d" % i in text
    reasons = sorted(str(d["reason"]) for d in dead_letters(agent.data_dir))
    assert reasons == ["too_early", "too_late"]
    assert not [e for e in agent.events() if e.get("event") == "non_json_output"], "a traceback"
