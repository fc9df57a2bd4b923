"""The disk spool: durable, ordered, checked, bounded; a bad file never blocks the rest."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from agent.records import Origin
from agent.ship.spool import Spool, SpoolEntry, decode_entry


def entry(n: int, events: int = 3) -> SpoolEntry:
    body = b"".join(b'{"seq":%d}\n' % (n * 100 + i) for i in range(events))
    return SpoolEntry("logs", body, events, (Origin("/var/log/app.log", [n * 10, n * 10 + 1]),))


async def test_entries_come_back_oldest_first_with_their_origins(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool", 1 << 20, "block")
    for n in range(3):
        assert await spool.put(entry(n))

    reopened = Spool(tmp_path / "spool", 1 << 20, "block")  # as after a restart
    seen = []
    while (file := reopened.oldest()) is not None:
        got = await reopened.read(file)
        assert got is not None
        seen.append(got)
        await reopened.remove(file)

    assert seen == [entry(0), entry(1), entry(2)]
    assert seen[1].locate(len(b'{"seq":100}\n')) == ("/var/log/app.log", 11)
    assert reopened.stats.files == 0
    assert reopened.stats.bytes == 0
    assert list((tmp_path / "spool").glob("*.spool")) == []


@pytest.mark.parametrize("damage", ["flip_a_body_byte", "truncate", "nul_bytes", "empty"])
async def test_a_damaged_file_is_quarantined_and_the_others_still_replay(
    tmp_path: Path, damage: str
) -> None:
    spool = Spool(tmp_path / "spool", 1 << 20, "block")
    for n in range(3):
        await spool.put(entry(n))
    victim = sorted((tmp_path / "spool").glob("*.spool"))[1]
    data = victim.read_bytes()
    victim.write_bytes(
        {
            "flip_a_body_byte": data[:-5] + bytes([data[-5] ^ 0xFF]) + data[-4:],
            "truncate": data[: len(data) // 2],
            "nul_bytes": b"\0" * len(data),
            "empty": b"",
        }[damage]
    )

    reopened = Spool(tmp_path / "spool", 1 << 20, "block")
    good = []
    while (file := reopened.oldest()) is not None:
        got = await reopened.read(file)
        if got is not None:
            good.append(got)
            await reopened.remove(file)

    assert good == [entry(0), entry(2)]
    assert reopened.stats.corrupt == 1
    assert [p.name for p in (tmp_path / "spool" / "quarantine").iterdir()] == [victim.name]


async def test_a_stray_temporary_file_from_a_crash_is_removed(tmp_path: Path) -> None:
    directory = tmp_path / "spool"
    directory.mkdir()
    (directory / ".0001.spool.tmp").write_bytes(b"half written")

    spool = Spool(directory, 1 << 20, "block")

    assert spool.stats.files == 0
    assert not (directory / ".0001.spool.tmp").exists()


async def test_drop_oldest_makes_room_and_counts_what_it_dropped(tmp_path: Path) -> None:
    one = len(await _encoded(tmp_path, entry(1)))  # entries encode to about this size
    spool = Spool(tmp_path / "spool", one * 2 + 10, "drop_oldest")  # room for two, not three
    for n in range(1, 5):
        assert await spool.put(entry(n))

    assert spool.stats.files == 2
    assert spool.stats.dropped_events == 6  # two entries of three events
    first = spool.oldest()
    assert first is not None
    assert await spool.read(first) == entry(3)


async def test_writers_dropping_at_once_drop_each_file_once_and_no_more_than_needed(
    tmp_path: Path,
) -> None:
    one = len(await _encoded(tmp_path, entry(1)))
    spool = Spool(tmp_path / "spool", one * 4 + 10, "drop_oldest")  # room for four
    for n in range(1, 5):
        assert await spool.put(entry(n))

    # Four workers give up at the same moment (an outage): each needs one file's room.
    assert all(await asyncio.gather(*(spool.put(entry(n)) for n in range(5, 9))))

    assert spool.stats.files == 4
    assert spool.stats.dropped_events == 12  # exactly the four oldest, once each
    kept = []
    while (file := spool.oldest()) is not None:
        kept.append(await spool.read(file))
        await spool.remove(file)
    assert sorted(kept, key=lambda e: e.body) == [entry(n) for n in range(5, 9)]


async def test_block_waits_for_room_and_gives_up_only_when_stopping(tmp_path: Path) -> None:
    one = len(await _encoded(tmp_path, entry(1)))
    spool = Spool(tmp_path / "spool", one, "block")
    assert await spool.put(entry(1))
    waiting = asyncio.create_task(spool.put(entry(2)))
    await asyncio.sleep(0.1)  # a window to see it NOT finish: no condition can show an absence
    assert not waiting.done()

    oldest = spool.oldest()
    assert oldest is not None
    await spool.remove(oldest)
    assert await asyncio.wait_for(waiting, 2)

    stopping = asyncio.Event()
    blocked = asyncio.create_task(spool.put(entry(3), stopping))
    await asyncio.sleep(0.1)  # let it start waiting for room, so stopping ends a real wait
    stopping.set()
    assert await asyncio.wait_for(blocked, 2) is False
    assert spool.stats.files == 1


async def _encoded(tmp_path: Path, one: SpoolEntry) -> bytes:
    probe = Spool(tmp_path / "probe", 1 << 20, "block")
    await probe.put(one)
    [path] = (tmp_path / "probe").glob("*.spool")
    data = path.read_bytes()
    assert decode_entry(data) == one
    return data
