"""The file registry on real files: the descriptor cap, close-inactive, reopening by path,
sources removed and re-added, dangling links warned about once."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from structlog.testing import capture_logs

from agent.config import SourceConfig
from agent.tail.fingerprint import fingerprint
from agent.tail.reader import Reader
from agent.tail.registry import Registry


def source(directory: Path, name: str = "app", **options: Any) -> SourceConfig:
    return SourceConfig(name=name, include=[f"{directory}/*.log"], **options)


def track(registry: Registry, path: Path, source_name: str = "app") -> Reader:
    fd = registry.open_path(source_name, str(path))
    assert fd is not None
    reader = Reader(
        registry.new_id(),
        source_name,
        str(path),
        fd,
        0,
        fingerprint(fd, os.fstat(fd).st_size),
        max_line_bytes=1000,
    )
    registry.register(reader)
    return reader


def files(directory: Path, count: int) -> list[Path]:
    directory.mkdir(exist_ok=True)
    paths = [directory / f"f{n}.log" for n in range(count)]
    for n, path in enumerate(paths):
        path.write_bytes(f"file {n}\n".encode())
    return paths


def test_at_the_cap_the_least_recently_active_file_is_closed_first(tmp_path: Path) -> None:
    paths = files(tmp_path / "logs", 4)
    registry = Registry()
    registry.apply([source(tmp_path / "logs", max_open_files=3)])
    first, second, third = (track(registry, p) for p in paths[:3])
    registry.touched(first)  # read from: now the most recently active

    fourth = track(registry, paths[3])

    assert [r.is_open for r in (first, second, third, fourth)] == [True, False, True, True]
    assert registry.open_count("app") == 3
    assert len(registry.readers) == 4, "closed is still tracked"


def test_a_file_rotated_away_is_not_closed_for_the_cap(tmp_path: Path) -> None:
    paths = files(tmp_path / "logs", 2)
    registry = Registry()
    registry.apply([source(tmp_path / "logs", max_open_files=1)])
    rotated = track(registry, paths[0])
    rotated.missing_since = 0.0  # no longer found by its globs: it cannot be reopened by path

    track(registry, paths[1])

    assert rotated.is_open


def test_only_a_file_read_to_its_end_and_idle_is_closed_as_inactive(tmp_path: Path) -> None:
    done, unread = files(tmp_path / "logs", 2)
    registry = Registry()
    registry.apply([source(tmp_path / "logs", close_inactive=10)])
    finished, behind = track(registry, done), track(registry, unread)
    finished.read()  # to its end
    now = finished.last_active

    registry.close_inactive(finished, now + 5)
    assert finished.is_open, "not idle long enough"
    registry.close_inactive(finished, now + 10)
    registry.close_inactive(behind, now + 10)
    assert (finished.is_open, behind.is_open) == (False, True), "unread bytes keep it open"
    assert registry.open_count("app") == 1


def test_reopen_checks_the_inode_and_tells_whether_the_content_is_the_same(
    tmp_path: Path,
) -> None:
    same, rewritten, replaced = files(tmp_path / "logs", 3)
    registry = Registry()
    registry.apply([source(tmp_path / "logs")])
    readers = [track(registry, p) for p in (same, rewritten, replaced)]
    for reader in readers:
        registry.close(reader.key)
    with rewritten.open("r+b") as out:  # same inode, other first bytes
        out.write(b"other content\n")
    replaced.rename(tmp_path / "logs" / "old.txt")
    replaced.write_bytes(b"file 2\n")  # the same bytes, another inode

    assert [registry.reopen(r) for r in readers] == [True, False, None]
    assert [r.is_open for r in readers] == [True, True, False]


def test_a_removed_source_retires_its_files_and_takes_them_back_when_re_added(
    tmp_path: Path,
) -> None:
    (one,) = files(tmp_path / "one", 1)
    registry = Registry()
    registry.apply([source(tmp_path / "one", "one")])
    reader = track(registry, one, "one")

    added, removed, changed = registry.apply([])
    assert (added, removed, changed) == ([], ["one"], [])
    assert registry.readers == {} and registry.retired == [reader] and not reader.is_open

    registry.apply([source(tmp_path / "one", "one")])
    assert registry.readers == {reader.key: reader} and registry.retired == []
    assert reader.unread, "reopened by path, and checked, before its next read"


def test_a_changed_source_is_reported_as_changed(tmp_path: Path) -> None:
    registry = Registry()
    registry.apply([source(tmp_path, "a"), source(tmp_path, "b")])
    assert registry.apply([source(tmp_path, "a", fields={"env": "x"}), source(tmp_path, "b")]) == (
        [],
        [],
        ["a"],
    )


def test_a_dangling_link_is_warned_about_once_while_it_dangles(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    os.symlink(tmp_path / "gone.log", logs / "app.log")
    registry = Registry()
    registry.apply([source(logs)])

    with capture_logs() as logged:
        registry.find()
        registry.find()
        (logs / "app.log").unlink()
        registry.find()
        os.symlink(tmp_path / "gone.log", logs / "app.log")
        registry.find()

    warnings = [e for e in logged if e["event"] == "symlink_dangling"]
    assert len(warnings) == 2, "once, and again when it dangles anew"
