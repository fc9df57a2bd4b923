"""The tailer on real files: what /metrics reads from it, what SIGHUP changes in it, and the
descriptor cap, with real acks, a real queue and real dead letters (no mocks)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import orjson
import pytest
from structlog.testing import capture_logs

from agent.batch.queue import ByteQueue
from agent.config import SourceConfig
from agent.encode import EncodeLimits
from agent.records import Piece
from agent.state.acks import AckTracker
from agent.state.checkpoint import FileCheckpoint
from agent.state.deadletter import DeadLetters
from agent.tail.discover import discover
from agent.tail.tailer import Tailer


def source(name: str, directory: Path, **options: Any) -> SourceConfig:
    return SourceConfig(name=name, include=[f"{directory}/*.log"], **options)


class Rig:
    """A tailer with everything downstream real; `acknowledge()` plays Polaris."""

    def __init__(
        self, tmp: Path, sources: list[SourceConfig], saved: list[FileCheckpoint] | None = None
    ) -> None:
        self.acks = AckTracker()
        self.dead_letters = DeadLetters(tmp / "dead")
        self.queue: ByteQueue[Piece] = ByteQueue(1 << 24)
        self.tailer = Tailer(
            sources,
            saved or [],
            acks=self.acks,
            dead_letters=self.dead_letters,
            emit=lambda piece: self.queue.put(piece, len(piece.data)),  # as the runtime wires it
            limits=EncodeLimits(max_event_bytes=1_000_000, piece_bytes=65536),
        )
        self.pieces: list[Piece] = []

    async def pass_(self) -> None:
        self.tailer.scan()
        await self.tailer.read_all(asyncio.Event())
        while len(self.queue):
            piece = await self.queue.get(0)
            assert piece is not None
            self.pieces.append(piece)

    def acknowledge(self) -> None:
        for piece in self.pieces:
            self.acks.complete(piece.ticket)

    def events(self) -> list[dict[str, Any]]:
        return [orjson.loads(x) for p in self.pieces for x in p.data.splitlines()]


def append(path: Path, data: bytes) -> None:
    with path.open("ab") as out:
        out.write(data)


def lines(count: int, tag: str) -> bytes:
    return b"".join(orjson.dumps({"n": f"{tag}{i}"}) + b"\n" for i in range(count))


async def test_source_snapshots_count_lines_bytes_and_the_unacknowledged_lag(
    tmp_path: Path,
) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "a.log").write_bytes(lines(10, "a") + b"\n" + b'{"partial":')
    (logs / "b.log").write_bytes(lines(5, "b"))
    rig = Rig(tmp_path, [source("app", logs), source("idle", tmp_path / "nothing")])

    await rig.pass_()
    app, idle = rig.tailer.snapshot().sources

    on_disk = sum(p.stat().st_size for p in logs.iterdir())
    assert (app.name, app.files, app.open_files) == ("app", 2, 2)
    assert app.lines_read == 16, "10 + 5 events and one blank line"
    assert app.bytes_read == on_disk - len(b'{"partial":')
    assert app.checkpoint_lag_bytes == on_disk, "nothing is acknowledged yet"
    assert (idle.files, idle.lines_read, idle.checkpoint_lag_bytes) == (0, 0, 0)

    rig.acknowledge()
    (app_after, _) = rig.tailer.snapshot().sources
    assert app_after.checkpoint_lag_bytes == len(b'{"partial":'), "only the partial line"


async def test_reconfigure_adds_removes_and_changes_sources_without_losing_tickets(
    tmp_path: Path,
) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir()
    two.mkdir()
    (one / "a.log").write_bytes(lines(3, "a"))
    (two / "b.log").write_bytes(lines(2, "b"))
    rig = Rig(tmp_path, [source("one", one)])
    await rig.pass_()
    assert [e["n"] for e in rig.events()] == ["a0", "a1", "a2"]

    rig.tailer.reconfigure([source("one", one, fields={"env": "prod"}), source("two", two)])
    append(one / "a.log", lines(1, "new"))
    await rig.pass_()
    events = rig.events()
    assert {"n": "new0", "env": "prod"}.items() <= events[3].items(), "the new encoder"
    assert sorted(e["n"] for e in events[4:]) == ["b0", "b1"], "the added source is scanned"

    rig.tailer.reconfigure([source("two", two)])  # "one" is removed, its pieces unacked
    assert [s.name for s in rig.tailer.snapshot().sources] == ["two"]
    append(one / "a.log", lines(2, "unread"))
    await rig.pass_()
    assert all(not e["n"].startswith("unread") for e in rig.events()), "no longer read"
    assert not any(r.source == "one" for r in rig.tailer.readers)
    kept = {c.path: c.offset for c in rig.tailer.checkpoints()}
    assert kept[str(one / "a.log")] == 0, "its tickets are still pending: offset unchanged"

    rig.acknowledge()  # its already-issued tickets still complete
    await rig.pass_()
    kept = {c.path: c.offset for c in rig.tailer.checkpoints()}
    assert kept[str(one / "a.log")] == len(lines(3, "a") + lines(1, "new"))

    rig.tailer.reconfigure([source("two", two), source("one", one)])  # re-added: resumes
    await rig.pass_()
    assert [e["n"] for e in rig.events()[-2:]] == ["unread0", "unread1"]
    assert sum(e["n"].startswith("a") for e in rig.events()) == 3, "nothing read twice"


async def test_over_the_descriptor_cap_the_least_active_file_is_closed_and_reopened(
    tmp_path: Path,
) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    for n in range(12):
        (logs / f"f{n:02}.log").write_bytes(lines(2, f"f{n}-"))
    rig = Rig(tmp_path, [source("app", logs, max_open_files=3)])

    await rig.pass_()
    assert len(rig.events()) == 24
    (snapshot,) = rig.tailer.snapshot().sources
    assert (snapshot.files, snapshot.open_files) == (12, 3)
    assert len([r for r in rig.tailer.readers if r.is_open]) == 3

    for n in range(12):
        append(logs / f"f{n:02}.log", lines(1, f"again{n}-"))
    await rig.pass_()
    assert sorted(e["n"] for e in rig.events()[24:]) == sorted(f"again{n}-0" for n in range(12))
    assert rig.tailer.snapshot().sources[0].open_files == 3


async def test_a_closed_file_rewritten_on_its_inode_is_read_from_its_beginning(
    tmp_path: Path,
) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    log = logs / "a.log"
    log.write_bytes(lines(5, "old"))
    rig = Rig(tmp_path, [source("app", logs, close_inactive=0)])
    await rig.pass_()
    rig.tailer.scan()  # idle since the read: closed
    assert not rig.tailer.readers[0].is_open

    with log.open("r+b") as out:  # same inode, other content, longer than the old offset
        out.write(lines(9, "new"))
    await rig.pass_()

    assert [e["n"] for e in rig.events()[5:]] == [f"new{i}" for i in range(9)]


def test_discover_skips_compressed_files_unless_a_pattern_names_them(tmp_path: Path) -> None:
    for name in ["app.log", "app.log.1", "app.log.2.gz", "app.log.3.zst", "x.log.gz"]:
        (tmp_path / name).write_bytes(b"")
    os.symlink(tmp_path / "missing", tmp_path / "app.log.link")

    found = discover(SourceConfig(name="s", include=[f"{tmp_path}/app.log*"]))
    assert [Path(p).name for p in found.files] == ["app.log", "app.log.1"]
    assert [Path(p).name for p in found.dangling] == ["app.log.link"]

    explicit = discover(SourceConfig(name="s", include=[f"{tmp_path}/*.gz"]))
    assert [Path(p).name for p in explicit.files] == ["app.log.2.gz", "x.log.gz"]


@pytest.mark.parametrize("limit", [0, 1])
async def test_at_any_line_limit_every_line_not_shipped_is_dead_lettered_with_its_head(
    tmp_path: Path, limit: int
) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    log = logs / "a.log"
    log.write_bytes(b"a\nbb\n\nccc\n" + b"L" * 400_000 + b"\nd\n")
    # Past the config's checks (another layer refuses 0): the tail must not rely on them.
    app = source("app", logs, format="text").model_copy(update={"max_line_bytes": limit})
    rig = Rig(tmp_path, [app])

    await rig.pass_()
    rig.dead_letters.close()
    letters = [
        orjson.loads(x)
        for f in (tmp_path / "dead").glob("*.ndjson")
        for x in f.read_bytes().splitlines()
    ]

    shipped = [e["message"] for e in rig.events()]
    lettered = {d["offset"]: d["line"] for d in letters}
    assert all(d["reason"] == "line_too_long" for d in letters)
    expected = {"a": 0, "bb": 2, "ccc": 6, "L" * 1024: 10, "d": 400_011}
    for text, offset in expected.items():
        assert (text in shipped) != (lettered.get(offset) == text), f"{text[:5]} at {offset}"
    assert len(shipped) + len(letters) == len(expected), "each line exactly one way"
    assert rig.tailer.snapshot().sources[0].lines_read == len(expected) + 1, "and the blank line"
    rig.acknowledge()
    assert rig.tailer.checkpoints()[0].offset == log.stat().st_size, "nothing left behind"


async def stopped_after_reading(tmp_path: Path, logs: Path) -> list[FileCheckpoint]:
    """A first run of the tailer over `logs/app.log`, everything acknowledged: its checkpoints."""
    first = Rig(tmp_path, [SourceConfig(name="app", include=[str(logs / "app.log")])])
    await first.pass_()
    first.acknowledge()
    saved = first.tailer.checkpoints()
    first.tailer.close()
    return saved


async def test_a_file_rotated_out_of_the_globs_while_stopped_is_finished_then_released(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    log = logs / "app.log"
    log.write_bytes(lines(3, "old"))
    saved = await stopped_after_reading(tmp_path, logs)
    append(log, lines(2, "tail"))
    log.rename(logs / "app.log.1")
    log.write_bytes(lines(2, "new"))

    rig = Rig(tmp_path, [SourceConfig(name="app", include=[str(log)])], saved)
    await rig.pass_()

    assert sorted(e["n"] for e in rig.events()) == ["new0", "new1", "tail0", "tail1"]
    rig.acknowledge()
    kept = {c.path: c.offset for c in rig.tailer.checkpoints()}
    assert kept[str(logs / "app.log.1")] == (logs / "app.log.1").stat().st_size

    monkeypatch.setattr("agent.tail.release.ROTATE_WAIT_SECS", 0.0)
    await rig.pass_()
    assert [r.path for r in rig.tailer.readers] == [str(log)], "finished, then released"
    again = Rig(tmp_path, [SourceConfig(name="app", include=[str(log)])], saved)
    await again.pass_()
    assert "tail0" in [e["n"] for e in again.events()], "the old checkpoint still finds it"


async def test_another_content_on_the_old_inode_next_to_the_old_path_is_not_read(
    tmp_path: Path,
) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    log = logs / "app.log"
    log.write_bytes(lines(3, "old"))
    saved = await stopped_after_reading(tmp_path, logs)
    with log.open("r+b") as out:  # the same inode, rewritten: not the content checkpointed
        out.write(lines(9, "other"))
    log.rename(logs / "notes.txt")

    rig = Rig(tmp_path, [SourceConfig(name="app", include=[str(log)])], saved)
    await rig.pass_()

    assert rig.events() == [] and rig.tailer.readers == []
    assert [c.path for c in rig.tailer.checkpoints()] == [str(log)], "the record is kept"


async def test_a_file_let_go_with_an_unterminated_last_line_counts_and_logs_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    log = logs / "a.log"
    log.write_bytes(lines(2, "a") + b'{"cut":')
    rig = Rig(tmp_path, [source("app", logs)])
    await rig.pass_()
    rig.acknowledge()
    log.rename(logs / "a.old")
    monkeypatch.setattr("agent.tail.release.ROTATE_WAIT_SECS", 0.0)

    with capture_logs() as logged:
        await rig.pass_()

    assert rig.tailer.readers == []
    (warning,) = [e for e in logged if e["event"] == "unterminated_line_released"]
    assert (warning["offset"], warning["bytes"]) == (len(lines(2, "a")), len(b'{"cut":'))
    assert rig.tailer.snapshot().unterminated_lines == 1


async def test_a_long_line_skipped_while_lines_are_held_does_not_move_the_checkpoint_past_them(
    tmp_path: Path,
) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    log = logs / "a.log"
    held = b"S1 start\n  continued\n"
    log.write_bytes(held + b"L" * 400_000 + b"\n")
    multiline = {"start_pattern": "^S", "flush_timeout": 3600}
    rig = Rig(tmp_path, [source("app", logs, format="text", multiline=multiline)])

    await rig.pass_()
    rig.acknowledge()
    assert rig.tailer.checkpoints()[0].offset == 0, "S1's lines are held: not safe yet"

    append(log, b"S2 next\n")
    await rig.pass_()
    rig.acknowledge()
    assert [e["message"] for e in rig.events()] == ["S1 start\n  continued"]
    assert rig.tailer.checkpoints()[0].offset == len(held) + 400_001, "up to S2, still held"


async def test_copytruncate_then_rename_while_stopped_does_not_resend_the_copy(
    tmp_path: Path,
) -> None:
    """Regression (found by test_identity_machine): read and checkpointed, then while stopped
    logrotate copytruncates app.log to app.log.1 and the truncated original is then rotated
    by rename to app.log.2. The checkpoint's inode is no longer at its path, but it is still
    in the directory, truncated: app.log.1 is its copy, read from the checkpoint, not from 0."""
    logs = tmp_path / "logs"
    logs.mkdir()
    log = logs / "app.log"
    log.write_bytes(lines(3, "old"))
    saved = await stopped_after_reading(tmp_path, logs)
    append(log, lines(2, "tail"))  # written after the checkpoint: read from the copy, once
    (logs / "app.log.1").write_bytes(log.read_bytes())  # copytruncate
    with log.open("r+b") as out:
        out.truncate(0)
    log.rename(logs / "app.log.2")  # then rename and create
    log.write_bytes(lines(1, "new"))

    rig = Rig(tmp_path, [SourceConfig(name="app", include=[f"{log}*"])], saved)
    await rig.pass_()

    assert sorted(e["n"] for e in rig.events()) == ["new0", "tail0", "tail1"]
