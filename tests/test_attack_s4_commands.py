"""Attack round s4 on what a person runs against data_dir (`status`, `dead-letters list`) and
on the agent's dead-letter files: a FIFO, a directory or a socket at a record file's name
neither hangs a command or the agent, nor ends it with a traceback; the records around it
are still counted, listed and written."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar, TypeVar

import orjson
import pytest

from agent.devserver import DevServer
from agent.state.deadletter import DeadLetterLimits, DeadLetters, read_letters
from agent.state.files import private_dir
from tests.support import endpoint, process
from tests.support.config import API_KEY, CONNECTION, agent_config, render_toml

dev_server = endpoint.dev_server
log_dir = endpoint.log_dir
make_agent = process.make_agent

T = TypeVar("T")

HANG_BOUND = 30.0
"""Not a speed measure: how long a command may take before it is called hung."""

RECORD = {"time": "2026-11-01T00:00:00.000Z", "reason": "line_too_long", "path": "/x", "offset": 0}


def today() -> str:
    return time.strftime("%Y-%m-%d", time.gmtime())


@pytest.fixture
def letters_dir(tmp_path: Path) -> Path:
    """data_dir/dead-letter holding two real records (in 2026-11-01.ndjson)."""
    directory = private_dir(tmp_path / "data" / "dead-letter")
    (directory / "2026-11-01.ndjson").write_bytes(
        b"".join(orjson.dumps({**RECORD, "offset": n}) + b"\n" for n in range(2))
    )
    return directory


def plant_fifo(path: Path) -> None:
    os.mkfifo(path, 0o600)


def plant_directory(path: Path) -> None:
    path.mkdir()


def plant_socket(path: Path) -> None:
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(path))


PLANTS: dict[str, Callable[[Path], None]] = {
    "fifo": plant_fifo,
    "directory": plant_directory,
    "socket": plant_socket,
}


def polaris_agent(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agent", *args, "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=HANG_BOUND,
        check=False,
    )


def config_for(tmp_path: Path) -> Path:
    doc = agent_config(tmp_path / "data", "http://127.0.0.1:9", tmp_path / "logs")
    doc["polaris"]["api_key"] = "k"
    path = tmp_path / "agent.toml"
    path.write_text(render_toml(doc))
    path.chmod(0o600)
    return path


@pytest.mark.parametrize("kind", sorted(PLANTS))
@pytest.mark.parametrize("command", [("status",), ("dead-letters", "list")])
def test_a_record_file_that_is_no_file_is_passed_over_by_the_commands(
    tmp_path: Path, letters_dir: Path, kind: str, command: tuple[str, ...]
) -> None:
    PLANTS[kind](letters_dir / "2026-11-02.ndjson")
    done = polaris_agent(config_for(tmp_path), *command)
    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode == 0, done.stderr
    if command == ("status",):
        assert "dead letters: 2" in done.stdout
    else:
        assert done.stderr.startswith("2 dead letters")


@pytest.mark.parametrize("kind", sorted(PLANTS))
def test_read_letters_skips_what_is_no_file(letters_dir: Path, kind: str) -> None:
    PLANTS[kind](letters_dir / "2026-11-02.ndjson")
    assert [x.record["offset"] for x in bounded(lambda: list(read_letters(letters_dir)))] == [0, 1]


@pytest.mark.parametrize("kind", sorted(PLANTS))
def test_the_agent_appends_past_what_is_no_file_at_todays_name(
    letters_dir: Path, kind: str
) -> None:
    PLANTS[kind](letters_dir / f"{today()}.3.ndjson")
    letters = DeadLetters(letters_dir)
    letters.write("line_too_long", "/x", 7, b"x")
    letters.close()
    offsets = [x.record["offset"] for x in read_letters(letters_dir)]
    assert offsets == [0, 1, 7]
    assert letters.unwritten == 0


@pytest.mark.parametrize("kind", sorted(PLANTS))
def test_the_age_bound_does_not_block_on_what_is_no_file(letters_dir: Path, kind: str) -> None:
    planted = letters_dir / "2020-01-01.ndjson"
    PLANTS[kind](planted)
    os.utime(planted, (0, 0), follow_symlinks=False)
    letters = bounded(lambda: DeadLetters(letters_dir, DeadLetterLimits(max_age=3600)))
    letters.close()


def bounded(work: Callable[[], T]) -> T:
    """`work()`, run in a thread: a hang is reported (the thread is left blocked on its
    FIFO, a daemon) instead of holding the test run forever."""
    result: list[T] = []
    thread = threading.Thread(target=lambda: result.append(work()), daemon=True)
    thread.start()
    thread.join(HANG_BOUND)
    assert not thread.is_alive(), "blocked (opening a FIFO?)"
    assert result, "raised (see the thread's traceback above)"
    return result[0]


@pytest.mark.parametrize("command", [("run", "--once"), ("status",)])
def test_a_fifo_at_the_checkpoint_file_is_refused_naming_it_not_waited_on(
    tmp_path: Path, command: tuple[str, ...]
) -> None:
    config = config_for(tmp_path)
    (tmp_path / "logs").mkdir()
    data_dir = private_dir(tmp_path / "data")
    os.mkfifo(data_dir / "checkpoints.json", 0o600)
    done = polaris_agent(config, *command)
    assert done.returncode == (78 if command[0] == "run" else 1), done.stderr  # as for a link
    assert "Traceback" not in done.stderr
    assert f"{data_dir / 'checkpoints.json'}" in done.stderr
    assert "not a regular file" in done.stderr


# -- status asking an "agent" that answers like none ---------------------------------------------


class _Hostile(BaseHTTPRequestHandler):
    """What listens at api.listen when it is not the agent: any body, any pace."""

    answers: ClassVar[dict[str, Callable[[BaseHTTPRequestHandler], None]]] = {}

    def do_GET(self) -> None:
        self.answers[self.server.server_address[1]](self)  # type: ignore[index]

    def log_message(self, *args: object) -> None:
        pass


def json_body(doc: object) -> Callable[[BaseHTTPRequestHandler], None]:
    def answer(handler: BaseHTTPRequestHandler) -> None:
        body = orjson.dumps(doc)
        handler.send_response(200)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    return answer


def endless(pause: float) -> Callable[[BaseHTTPRequestHandler], None]:
    """A body that never ends: `[` then spaces, `pause` seconds apart (0: as fast as it goes)."""

    def answer(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.end_headers()
        with contextlib.suppress(OSError):
            handler.wfile.write(b"[")
            while True:
                handler.wfile.write(b" " * (1 if pause else 65536))
                handler.wfile.flush()
                time.sleep(pause)

    return answer


ANSWERS = {
    "wrong_types": json_body(
        {"ready": True, "reasons": 5, "uptime_seconds": "long", "sources": [1, {"x": 2}]}
    ),
    "sources_not_a_list": json_body({"ready": False, "reasons": [1, None], "sources": 3}),
    "journal_not_a_map": json_body(
        {
            "ready": True,
            "sources": [
                {
                    "name": "a",
                    "lines_read": 1,
                    "checkpoint_lag_bytes": 0,
                    "open_files": 0,
                    "journal": [1, 2],
                }
            ],
        }
    ),
    "endless_fast": endless(0),
    "endless_trickle": endless(1.0),
}


@pytest.fixture
def hostile_admin() -> Iterator[Callable[[Callable[[BaseHTTPRequestHandler], None]], int]]:
    servers: list[ThreadingHTTPServer] = []

    def serve(answer: Callable[[BaseHTTPRequestHandler], None]) -> int:
        server = ThreadingHTTPServer(("127.0.0.1", 0), _Hostile)
        server.daemon_threads = True
        port = server.server_address[1]
        _Hostile.answers[port] = answer
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return port

    yield serve
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("kind", sorted(ANSWERS))
def test_status_says_what_answered_is_no_agent_instead_of_a_traceback_or_a_hang(
    tmp_path: Path, hostile_admin, kind: str
) -> None:
    port = hostile_admin(ANSWERS[kind])
    doc = agent_config(tmp_path / "data", "http://127.0.0.1:9", tmp_path / "logs")
    doc["polaris"]["api_key"] = "k"
    doc["api"] = {"listen": f"127.0.0.1:{port}"}
    config = tmp_path / "agent.toml"
    config.write_text(render_toml(doc))
    config.chmod(0o600)
    done = polaris_agent(config, "status")
    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"127.0.0.1:{port}" in done.stdout


def test_dead_letters_list_streams_a_huge_file_and_lists_the_records_around_its_junk(
    tmp_path: Path, letters_dir: Path
) -> None:
    """A dead-letter file is append-only and may be huge (no max_size, a noisy source, or a
    sparse file): `list` read each file whole, a MemoryError under a 2 GiB limit."""
    junk = letters_dir / "2026-11-02.ndjson"
    with junk.open("wb") as out:
        out.write(orjson.dumps({**RECORD, "offset": 2}) + b"\n")
        out.truncate(3 * 2**30)  # then 3 GiB of zeros, no newline: no record
    with junk.open("ab") as out:
        out.write(b"\n" + orjson.dumps({**RECORD, "offset": 3}) + b"\n")
    done = subprocess.run(
        [
            *("prlimit", f"--as={2 * 2**30}", "--", sys.executable, "-m", "agent"),
            *("dead-letters", "list", "--json", "--config", str(config_for(tmp_path))),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert [orjson.loads(line)["offset"] for line in done.stdout.splitlines()] == [0, 1, 2, 3]


async def test_replay_sends_a_record_naming_no_connection_to_its_sources_connection(
    make_agent, log_dir: Path, dev_server: DevServer
) -> None:
    """The agent writes no `connection` into a record; one that names a path (`../..`) is not
    a connection and must not steer the event elsewhere on the API."""
    agent = make_agent()
    private_dir(agent.data_dir / "dead-letter")
    record = {
        "time": "2026-11-01T00:00:00.000Z",
        "reason": "http_rejected",
        "path": str(log_dir / "app.log"),
        "offset": 0,
        "bytes": 9,
        "line": '{"n":77}',
        "connection": "../../test-project/events/elsewhere",
    }
    record["bytes"] = len(str(record["line"]))
    (agent.data_dir / "dead-letter" / "2026-11-01.ndjson").write_bytes(orjson.dumps(record) + b"\n")
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "agent",
        "dead-letters",
        "replay",
        "--config",
        str(agent.config),
        env={**os.environ, "TEST_POLARIS_KEY": API_KEY},
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, err.decode()
    assert [orjson.loads(x) for x in dev_server.received_lines(CONNECTION)] == [{"n": 77}]


@pytest.mark.parametrize("line", ['{"a":1}\n{"b":"BAD"}', "", "\n\n\n", " "])
async def test_replay_skips_a_record_whose_line_is_not_one_event(
    make_agent, dev_server: DevServer, line: str
) -> None:
    """An event Polaris refused is one line; a record holding none, or several (edited, or
    not the agent's), is not one event: sent as one, a refusal of its second line raised
    IndexError out of the splitter (a traceback, half of it delivered)."""
    agent = make_agent()
    private_dir(agent.data_dir / "dead-letter")
    records = [
        {**RECORD, "reason": "http_rejected", "bytes": len(text.encode()), "line": text}
        for text in (line, '{"n":1}')
    ]
    (agent.data_dir / "dead-letter" / "2026-11-01.ndjson").write_bytes(
        b"".join(orjson.dumps(r) + b"\n" for r in records)
    )
    dev_server.faults.refuse_events_containing("BAD")
    process = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "agent", "dead-letters", "replay"),
        *("--config", str(agent.config), "--timeout", "10s"),
        env={**os.environ, "TEST_POLARIS_KEY": API_KEY},
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(process.communicate(), 60)
    assert "Traceback" not in err.decode(), err.decode()
    assert process.returncode == 0, err.decode()
    assert "skipped 1 records" in err.decode()
    assert [orjson.loads(x) for x in dev_server.received_lines(CONNECTION)] == [{"n": 1}]
    [kept] = list(read_letters(agent.data_dir / "dead-letter"))
    assert kept.record["line"] == line
