"""An encoder that raises (a defect of ours a hostile line found) costs the lines it was
given, dead-lettered with the reason, never the agent: before this, any exception out of an
encoder ended `run` with exit 1, and a restart read the same line again (a crash loop)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import orjson
import pytest
from structlog.testing import capture_logs

from agent.config import SourceConfig
from agent.tail import quarantine
from tests.support.faulty import POISON, Faulty, install_faulty_encoders
from tests.unit.test_tailer import Rig, append


@pytest.fixture
def faulty_encoders(monkeypatch: pytest.MonkeyPatch) -> None:
    install_faulty_encoders(monkeypatch)


def multiline_rig(tmp_path: Path) -> tuple[Rig, Path]:
    """A multiline source over one file that already holds a shipped record and a held one
    ("2 held" and its continuation wait for the next record's start)."""
    logs = tmp_path / "logs"
    logs.mkdir()
    log = logs / "app.log"
    log.write_bytes(b"1 first\n2 held\n  continued\n")
    return Rig(tmp_path, [multiline_source(logs)]), log


def multiline_source(logs: Path, **options: Any) -> SourceConfig:
    return SourceConfig(
        name="app",
        include=[f"{logs}/*.log"],
        format="text",
        multiline={"start_pattern": r"^\d"},
        **options,
    )


def dead_letters(directory: Path) -> list[dict[str, Any]]:
    return [
        orjson.loads(line)
        for f in sorted(directory.glob("*.ndjson"))
        for line in f.read_bytes().splitlines()
    ]


@pytest.mark.usefixtures("faulty_encoders")
async def test_a_block_the_encoder_fails_on_is_dead_lettered_and_the_file_goes_on(
    tmp_path: Path,
) -> None:
    # The held record means the failing block's lines are not the only ones at stake.
    rig, log = multiline_rig(tmp_path)
    await rig.pass_()
    held_from = len(b"1 first\n")

    append(log, b"3 " + POISON + b"\n4 poisoned too\n")
    with capture_logs() as logged:
        await rig.pass_()
    append(log, b"5 after\n6 last\n")
    await rig.pass_()
    await rig.tailer.flush_held(asyncio.Event(), force=True)
    await rig.pass_()

    shipped = [e["message"] for e in rig.events()]
    rig.dead_letters.close()
    letters = dead_letters(tmp_path / "dead")
    assert shipped[0] == "1 first"
    assert {d["reason"] for d in letters} == {"encoder_failed"}
    lettered = b"".join(d["line"].encode() + b"\n" for d in letters)
    assert lettered == b"2 held\n  continued\n3 BOOM\n4 poisoned too\n", "held lines too"
    assert letters[0]["offset"] == held_from
    assert "OverflowError" in letters[0]["detail"]
    assert [e["message"] for e in rig.events()][1:] == ["5 after", "6 last"], "the file goes on"
    failed = [e for e in logged if e["event"] == "encoder_failed"]
    assert len(failed) == 1 and failed[0]["log_level"] == "error"
    assert failed[0]["error"] == "OverflowError"
    rig.acknowledge()
    assert rig.tailer.checkpoints()[0].offset == log.stat().st_size, "nothing left behind"


@pytest.mark.usefixtures("faulty_encoders")
async def test_a_flush_that_fails_dead_letters_what_was_held_and_the_file_goes_on(
    tmp_path: Path,
) -> None:
    rig, log = multiline_rig(tmp_path)
    await rig.pass_()

    Faulty.failing_flush = True
    await rig.tailer.flush_held(asyncio.Event(), force=True)
    Faulty.failing_flush = False
    append(log, b"3 after\n4 last\n")
    await rig.pass_()
    await rig.tailer.flush_held(asyncio.Event(), force=True)
    await rig.pass_()

    rig.dead_letters.close()
    letters = dead_letters(tmp_path / "dead")
    assert [(d["reason"], d["line"]) for d in letters] == [
        ("encoder_failed", "2 held"),
        ("encoder_failed", "  continued"),
    ]
    assert [e["message"] for e in rig.events()] == ["1 first", "3 after", "4 last"]
    rig.acknowledge()
    assert rig.tailer.checkpoints()[0].offset == log.stat().st_size


@pytest.mark.usefixtures("faulty_encoders")
async def test_a_reload_whose_old_encoder_fails_to_flush_letters_only_what_it_held(
    tmp_path: Path,
) -> None:
    rig, log = multiline_rig(tmp_path)
    await rig.pass_()
    # the file's next read gets a new encoder...
    rig.tailer.reconfigure([multiline_source(log.parent, fields={"env": "prod"})])
    Faulty.failing_flush = True  # ... and the old one cannot give up what it holds
    append(log, b"3 next\n4 last\n")
    await rig.pass_()
    Faulty.failing_flush = False
    await rig.tailer.flush_held(asyncio.Event(), force=True)
    await rig.pass_()

    rig.dead_letters.close()
    letters = dead_letters(tmp_path / "dead")
    assert [(d["line"], d["offset"]) for d in letters] == [("2 held", 8), ("  continued", 15)]
    assert [e["message"] for e in rig.events()] == ["1 first", "3 next", "4 last"]
    rig.acknowledge()
    assert rig.tailer.checkpoints()[0].offset == log.stat().st_size


def test_what_is_read_again_is_bounded_and_the_letter_says_what_was_not_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A long line skipped while a record was held lies in the held range: only the first
    MAX_REREAD bytes are read again."""
    path = tmp_path / "app.log"
    path.write_bytes(b"held\n" + b"L" * 100 + b"\nnext\n")
    monkeypatch.setattr(quarantine, "MAX_REREAD", 20)
    with path.open("rb") as file:
        reader = SimpleNamespace(fd=file.fileno())
        encoded = quarantine.quarantined(reader, 0, 106, b"next\n", ValueError("x"))  # type: ignore[arg-type]

    assert [(r.offset, r.data) for r in encoded.rejected] == [
        (0, b"held"),
        (5, b"L" * 15),
        (106, b"next"),
    ]
    assert "86 held bytes before offset 106 not kept" in encoded.rejected[0].detail
    assert encoded.pieces[0].end_offset == 111


async def test_a_source_whose_encoder_cannot_be_built_letters_its_lines_and_the_rest_go_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The construction sat outside the encode guard: a setting it failed on (a name msgspec
    could not read did) stopped every file at every start, although `check` had passed."""
    from agent.tail import encoders

    real = encoders.encoder_for

    def failing_for_broken(source: SourceConfig, *args: Any, **kwargs: Any) -> Any:
        if source.name == "broken":
            raise ValueError("a setting the encoder cannot take")
        return real(source, *args, **kwargs)

    monkeypatch.setattr(encoders, "encoder_for", failing_for_broken)
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "app.log").write_bytes(b"a1\na2\n")
    (logs / "broken.txt").write_bytes(b"b1\nb2\n")
    rig = Rig(
        tmp_path,
        [
            SourceConfig(name="app", include=[f"{logs}/*.log"], format="text"),
            SourceConfig(name="broken", include=[f"{logs}/*.txt"], format="text"),
        ],
    )

    with capture_logs() as logged:
        await rig.pass_()
        append(logs / "app.log", b"a3\n")
        append(logs / "broken.txt", b"b3\n")
        await rig.pass_()

    assert [e["message"] for e in rig.events()] == ["a1", "a2", "a3"]
    rig.dead_letters.close()
    letters = dead_letters(tmp_path / "dead")
    assert [(d["reason"], d["line"]) for d in letters] == [
        ("encoder_failed", "b1"),
        ("encoder_failed", "b2"),
        ("encoder_failed", "b3"),
    ]
    assert letters[0]["detail"] == "ValueError: a setting the encoder cannot take"
    assert {e["error"] for e in logged if e["event"] == "encoder_failed"} == {"ValueError"}
    rig.acknowledge()
    offsets = {c.path: c.offset for c in rig.tailer.checkpoints()}
    assert offsets[str(logs / "broken.txt")] == len(b"b1\nb2\nb3\n"), "its lines are passed"
