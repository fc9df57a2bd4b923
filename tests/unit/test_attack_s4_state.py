"""Attack round s4 on the state under data_dir: whatever sits in `checkpoints.json` (valid
JSON of the wrong shape, fields of the wrong type or sign), the store hands the tailer only
well-formed records, or none, and never raises anything but `UnsafeState` (a link, a person
must look); dead letters a full disk refuses are neither raised nor torn nor lost."""

from __future__ import annotations

import gzip
import math
import os
import random
import stat
import struct
import subprocess
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.ops.events import Events
from agent.records import Origin
from agent.ship.compress import gzip_compressor
from agent.ship.payload import EventOrigins, Payload
from agent.ship.spool import Spool, SpoolCorrupt, decode_entry, encode_entry
from agent.state.checkpoint import CHECKPOINT_UNREADABLE, CheckpointStore, FileCheckpoint
from agent.state.deadletter import DeadLetters, read_letters
from agent.state.files import private_dir
from tests.support.disks import fill

GOOD = {
    "fingerprint": "4dd433b62e023677",
    "fingerprint_len": 451,
    "offset": 451,
    "path": "/var/log/app.log",
    "dev": 65024,
    "ino": 2450407,
    "seen_at": 1796332393.27,
}

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=8,
)


def well_formed(record: FileCheckpoint) -> bool:
    ints = (record.fingerprint_len, record.offset, record.dev, record.ino)
    return (
        isinstance(record.fingerprint, str)
        and isinstance(record.path, str)
        and all(type(n) is int and n >= 0 for n in ints)
        and type(record.seen_at) is float
        and math.isfinite(record.seen_at)
    )


def store_holding(directory: Path, doc: Any, events: Events | None = None) -> CheckpointStore:
    store = CheckpointStore(private_dir(directory) / "checkpoints.json", events=events)
    store.path.write_bytes(orjson.dumps(doc))
    return store


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("offset", -5),  # os.pread: EINVAL out of the tailer, exit 1 at every start
        ("offset", "451"),
        ("fingerprint_len", "a"),  # TypeError in the fingerprint index, at every start
        ("seen_at", "now"),  # TypeError pruning dormant records
        ("offset", True),
        ("dev", None),
        ("fingerprint", 5),
        ("path", ["/var/log/app.log"]),
    ],
)
def test_a_field_of_the_wrong_type_or_sign_is_passed_over_like_a_torn_file(
    tmp_path: Path, field: str, value: object
) -> None:
    events = Events()
    events.declare(CHECKPOINT_UNREADABLE)
    store = store_holding(
        tmp_path / "data", {"version": 1, "files": [{**GOOD, field: value}]}, events
    )
    assert store.load() == []
    assert events.count(CHECKPOINT_UNREADABLE) == 1


def test_the_previous_good_file_is_used_when_the_current_one_has_a_wrong_field(
    tmp_path: Path,
) -> None:
    store = store_holding(tmp_path / "data", {"version": 1, "files": [{**GOOD, "offset": -1}]})
    store.previous.write_bytes(orjson.dumps({"version": 1, "files": [GOOD]}))
    [record] = store.load()
    assert record.offset == 451 and well_formed(record)


@pytest.mark.parametrize("doc", [[1, 2], "checkpoints", 1, None, {"version": 1, "files": 7}])
def test_valid_json_of_another_shape_is_passed_over(tmp_path: Path, doc: object) -> None:
    assert store_holding(tmp_path / "data", doc).load() == []


@settings(
    max_examples=300, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    entry=st.fixed_dictionaries({}, optional={key: json_values for key in GOOD}),
    base=st.booleans(),
)
def test_any_entry_loads_well_formed_or_not_at_all(
    tmp_path_factory: pytest.TempPathFactory, entry: dict[str, Any], base: bool
) -> None:
    doc = {"version": 1, "files": [{**GOOD, **entry} if base else entry]}
    for record in store_holding(tmp_path_factory.mktemp("data"), doc).load():
        assert well_formed(record), record


@settings(
    max_examples=300, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(doc=json_values)
def test_any_json_document_loads_well_formed_or_not_at_all(
    tmp_path_factory: pytest.TempPathFactory, doc: Any
) -> None:
    for record in store_holding(tmp_path_factory.mktemp("data"), doc).load():
        assert well_formed(record), record


@settings(
    max_examples=300, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.binary(max_size=300))
def test_any_bytes_load_without_raising(
    tmp_path_factory: pytest.TempPathFactory, data: bytes
) -> None:
    store = CheckpointStore(private_dir(tmp_path_factory.mktemp("data")) / "checkpoints.json")
    store.path.write_bytes(data)
    assert all(well_formed(r) for r in store.load())


# -- dead letters on a full disk -----------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 64 KiB tmpfs (0700): ENOSPC from the kernel, not injected."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    point = tmp_path / "disk"
    point.mkdir()
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k,mode=0700", "tmpfs", str(point)], check=True
    )
    yield point
    subprocess.run(["umount", "-l", str(point)], check=False)


def test_dead_letters_the_disk_refuses_are_kept_and_written_once_it_has_room(
    small_disk: Path,
) -> None:
    letters = DeadLetters(small_disk / "dead-letter")
    letters.write("line_too_long", "/var/log/app.log", 0, b"first")
    filler = fill(small_disk)

    for n in range(1, 40):  # ~1 KiB each: far more than the page the first one left
        letters.write("line_too_long", "/var/log/app.log", n * 10, b"x" * 1000)
    letters.sync()
    stored = [letter.record["offset"] for letter in read_letters(letters.directory)]
    assert stored == sorted(stored) and stored[0] == 0
    assert len(stored) < 40, "the disk was meant to be full"
    raw = b"".join(p.read_bytes() for p in letters.directory.glob("*.ndjson"))
    assert all(orjson.loads(line) for line in raw.splitlines()), "a torn record was left"

    filler.unlink()
    letters.sync()
    stored = [letter.record["offset"] for letter in read_letters(letters.directory)]
    assert stored == [n * 10 for n in range(40)]
    letters.close()


def test_every_directory_made_for_state_is_private_not_only_the_last(tmp_path: Path) -> None:
    """data_dir deleted under the running agent is made again by the first sub-directory
    that needs it (dead-letter/, spool/): it must come back 0700, not 0755."""
    data_dir = tmp_path / "gone" / "data"
    private_dir(data_dir / "dead-letter")
    for directory in (tmp_path / "gone", data_dir, data_dir / "dead-letter"):
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700, directory


def test_a_spooled_origin_whose_offset_is_not_known_reads_back() -> None:
    """A split keeps an event it cannot place as ("", -1): its spool file must read back,
    not be quarantined by the header's shape check."""
    entry = Payload("", b'{"a":1}\n', 1, (Origin("", [-1]),))
    decoded = decode_entry(encode_entry(entry, gzip_compressor(1)))
    assert decoded.connection == "" and decoded.events == 1
    assert isinstance(decoded.origins, EventOrigins)
    assert decoded.origins.origins == (Origin("", [-1]),)


def test_streamed_dead_letters_are_what_reading_the_file_whole_gives(tmp_path: Path) -> None:
    """Records, junk and empty lines across the 1 MiB reads: the same records, the same line
    indexes (which `remove_letters` matches) as splitting the whole file."""
    shuffle = random.Random(1)
    parts = []
    for n in range(600):
        roll = shuffle.random()
        if roll < 0.05:
            parts.append(b"")
        elif roll < 0.1:
            parts.append(b"junk" * shuffle.randint(1, 60000))
        else:
            parts.append(orjson.dumps({"reason": "x", "n": n, "p": "a" * shuffle.randint(0, 9000)}))
    data = b"\n".join(parts) + b"\n"
    directory = private_dir(tmp_path / "dead-letter")
    (directory / "2026-01-01.ndjson").write_bytes(data)
    whole = [(index, raw) for index, raw in enumerate(data.split(b"\n")) if raw.startswith(b"{")]
    assert len(data) > 3 * 2**20
    assert [(x.index, x.raw) for x in read_letters(directory)] == whole


def test_a_directory_at_the_temp_name_does_not_stop_every_checkpoint_save(tmp_path: Path) -> None:
    """The temp file's name is fixed (`.checkpoints.json.tmp`): a directory there made every
    save fail (EISDIR from the unlink), for as long as the agent ran."""
    store = CheckpointStore(private_dir(tmp_path / "data") / "checkpoints.json")
    (store.path.parent / ".checkpoints.json.tmp").mkdir()
    (store.path.parent / ".checkpoints.json.tmp" / "inside").write_bytes(b"x")
    assert store.save([FileCheckpoint(**GOOD)]) is True
    assert store.load() == [FileCheckpoint(**GOOD)]


def spool_bytes(header: object, body: bytes) -> bytes:
    raw = orjson.dumps(header)
    crc = zlib.crc32(body, zlib.crc32(raw))
    return struct.pack("<4sIIQ", b"PAS1", crc, len(raw), len(body)) + raw + body


@settings(max_examples=400, derandomize=True)
@given(
    header=json_values
    | st.fixed_dictionaries(
        {"connection": json_values, "events": json_values, "origins": json_values},
        optional={"size": json_values},
    )
)
def test_any_header_with_a_valid_crc_decodes_well_typed_or_is_corrupt(header: object) -> None:
    try:
        entry = decode_entry(spool_bytes(header, gzip.compress(b'{"a":1}\n')))
    except SpoolCorrupt:
        return
    assert isinstance(entry.connection, str) and "/" not in entry.connection
    assert type(entry.events) is int and entry.events >= 0
    assert isinstance(entry.origins, EventOrigins)
    for origin in entry.origins.origins:
        assert isinstance(origin.path, str)
        assert all(type(o) is int and o >= -1 for o in origin.offsets)


@pytest.mark.parametrize("name", [".0001-1-00000001.spool.tmp", "0001-1-00000001.spool"])
async def test_a_directory_among_the_spool_files_does_not_stop_the_start(
    tmp_path: Path, name: str
) -> None:
    """`.tmp` names are removed at start (a crash's leftovers): a directory there raised
    IsADirectoryError out of the spool's start, at every start."""
    directory = private_dir(tmp_path / "spool")
    (directory / name).mkdir()
    (directory / name / "inside").write_bytes(b"x")
    spool = Spool(directory, 2**20, "block")
    assert spool.oldest() is None


def test_a_directory_at_the_previous_checkpoint_does_not_stop_every_save(tmp_path: Path) -> None:
    """Each save renames the current file to `.prev`: a directory there (not empty) made that
    rename, so every save, fail for as long as the agent ran."""
    store = CheckpointStore(private_dir(tmp_path / "data") / "checkpoints.json")
    assert store.save([FileCheckpoint(**GOOD)]) is True
    store.previous.mkdir()
    (store.previous / "inside").write_bytes(b"x")
    moved = {**GOOD, "offset": 900}
    assert store.save([FileCheckpoint(**moved)]) is True
    assert store.load() == [FileCheckpoint(**moved)]
