"""`dead-letters replay` removes what it replayed from files of any size, in bounded memory.

A dead-letter directory may hold GiB-sized segment files; `remove_letters` read each whole
(and split it: twice its size), so a replay against one ended in a MemoryError. It streams
now: the file is rewritten through a private temp file and renamed, and only the replayed
records leave it; every other byte stays where it was, in order."""

from __future__ import annotations

import hashlib
import os
import stat
import subprocess
import sys
from pathlib import Path

import orjson

from agent.state.deadletter import read_letters, remove_letters
from agent.state.files import private_dir

GIB = 2**30
ADDRESS_SPACE_BOUND = 256 * 2**20
"""The replay's whole address space: the interpreter with the agent's modules takes about
30 MiB; a file read whole needs at least its size."""


def record(n: int, reason: str) -> bytes:
    return orjson.dumps({"reason": reason, "n": n, "line": f"event {n} " + "x" * (n % 97)})


REPLAY_IN_A_BOUNDED_PROCESS = """
import sys
from pathlib import Path
from agent.state.deadletter import read_letters, remove_letters
directory = Path(sys.argv[1])
chosen = [x for x in read_letters(directory) if x.reason == "replayed"]
print(remove_letters(chosen))
"""


def test_a_gib_sized_dead_letter_file_is_replayed_within_a_bounded_address_space(
    tmp_path: Path,
) -> None:
    directory = private_dir(tmp_path / "dead-letter")
    path = directory / "2026-01-01.ndjson"
    head = record(1, "replayed") + b"\n" + record(2, "kept") + b"\n"
    tail = b"\n" + record(3, "replayed") + b"\n" + record(4, "kept") + b"\n"
    with path.open("wb") as out:
        out.write(head)
        out.truncate(len(head) + GIB)  # a GiB of zeros, one line, costing no disk
        out.seek(len(head) + GIB)
        out.write(tail)

    bounded = ["prlimit", f"--as={ADDRESS_SPACE_BOUND}"]
    done = subprocess.run(
        [*bounded, sys.executable, "-c", REPLAY_IN_A_BOUNDED_PROCESS, str(directory)],
        capture_output=True,
        timeout=600,
        check=False,
    )

    assert done.returncode == 0, done.stderr.decode(errors="replace")[-2000:]
    assert done.stdout.split() == [b"2"]
    expected = hashlib.sha256()
    expected.update(record(2, "kept") + b"\n")
    zeros = bytes(2**20)
    for _ in range(GIB // len(zeros)):
        expected.update(zeros)
    expected.update(b"\n" + record(4, "kept") + b"\n")
    assert _sha256(path) == expected.hexdigest(), "only the replayed records left the file"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_only_the_replayed_records_vanish_and_every_other_byte_stays(tmp_path: Path) -> None:
    """Kept records, junk, empty lines, a record changed since it was read and a torn last
    line stay byte for byte; a file left with no record is removed."""
    directory = private_dir(tmp_path / "dead-letter")
    first = directory / "2026-01-01.ndjson"
    lines = [
        record(1, "replayed"),
        record(2, "kept"),
        b"",
        b"junk that is not a record",
        record(3, "replayed"),
        record(4, "replayed"),  # changed before the rewrite: stays
        b"z" * (3 * 2**20),  # longer than a read
        record(5, "replayed"),
        record(6, "kept"),
    ]
    first.write_bytes(b"\n".join(lines) + b"\n" + b'{"reason": "torn')
    only_replayed = directory / "2026-01-02.ndjson"
    only_replayed.write_bytes(record(7, "replayed") + b"\n" + record(8, "replayed") + b"\n")

    chosen = [x for x in read_letters(directory) if x.reason == "replayed"]
    assert len(chosen) == 6
    changed = first.read_bytes().replace(record(4, "replayed"), record(4, "replayeD"))
    first.write_bytes(changed)  # same length, other bytes: not the record that was replayed

    assert remove_letters(chosen) == 5

    kept = [lines[1], lines[2], lines[3], record(4, "replayeD"), lines[6], lines[8]]
    assert first.read_bytes() == b"\n".join(kept) + b"\n" + b'{"reason": "torn'
    assert not only_replayed.exists()
    assert sorted(p.name for p in directory.iterdir()) == [first.name], "no temp file left"


def test_a_link_planted_at_the_temp_name_is_not_written_through(tmp_path: Path) -> None:
    directory = private_dir(tmp_path / "dead-letter")
    path = directory / "2026-01-01.ndjson"
    path.write_bytes(record(1, "replayed") + b"\n" + record(2, "kept") + b"\n")
    target = tmp_path / "not-the-agents"
    target.write_bytes(b"untouched\n")
    (directory / f".{path.name}.tmp").symlink_to(target)

    assert remove_letters(x for x in read_letters(directory) if x.reason == "replayed") == 1

    assert target.read_bytes() == b"untouched\n"
    assert path.read_bytes() == record(2, "kept") + b"\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    fd = os.open(path, os.O_RDONLY)
    try:
        while chunk := os.read(fd, 2**20):
            digest.update(chunk)
    finally:
        os.close(fd)
    return digest.hexdigest()
