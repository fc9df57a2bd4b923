"""A user pattern that backtracks catastrophically, a block at a time and a line at a time
(`agent.parse.userregex`): the block scan gives up at its bound and the block goes line by
line, where the line past its own bound is dead-lettered as ``parse_timeout``. Both paths
write exactly the same events, pieces, offsets, dead letters and counts (as
tests/unit/test_parsed_blocks.py proves for lines that do finish), and a multiline
``start_pattern`` that times out takes the line as a start instead of stalling."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from agent.config import SourceConfig
from agent.encode import Encoded
from agent.encode.parsed import SLICE_BYTES, ParsedEncoder
from agent.parse.event import PARSE_TIMEOUT
from tests.unit.test_parsed_blocks import same_as_line_path

pytestmark = pytest.mark.timeout(60)  # the old engine never finished: fail, do not hang

NOW = 1_764_028_800.0  # 2025-11-25T00:00:00Z
EXPONENTIAL = r"^(?P<level>[a-z]+) (?P<word>(a|aa)+)$"
HOSTILE = "info " + "a" * 64 + "!"
"""Exponential under `EXPONENTIAL` (the ``a`` split every way between the alternatives)."""
POLYNOMIAL = r"(?P<level>[a-z]+) (?P<rest>.*a.*b.*c.*d)"
LONG_HOSTILE = "info " + ("abc" * 6000)[:16_000]
"""Polynomial under `POLYNOMIAL`: no ``d``, so every way of placing a, b and c is tried."""


def encoder(pattern: str, **options: Any) -> ParsedEncoder:
    source = SourceConfig.model_validate(
        {
            "name": "s",
            "include": ["/x/*.log"],
            "format": "text",
            "parser": {"type": "regex", "pattern": pattern},
            **options,
        }
    )
    return ParsedEncoder(
        source,
        path="/x/a.log",
        identity=lambda: "f" * 16,
        max_event_bytes=40_000,
        piece_bytes=600,
        now=lambda: NOW,
    )


def outcome(encoded: Encoded) -> tuple[object, ...]:
    return (
        [(p.data, p.events, p.end_offset, list(p.offsets)) for p in encoded.pieces],
        encoded.rejected,
        encoded.blank,
    )


def line_by_line(enc: ParsedEncoder, block: bytes, start: int) -> Encoded:
    enc._block_parse = None  # the reference: record by record
    return enc.encode(block, start)


NORMAL = ["info a", "warn aaaa", "info aa"]
FILLER = ["info " + "a" * 40] * (SLICE_BYTES // 40)  # past a slice: the hostile line in the next


@pytest.mark.parametrize(
    "lines",
    [
        [NORMAL[0], HOSTILE, NORMAL[1]],
        [HOSTILE],
        [HOSTILE, *NORMAL],
        [*NORMAL, HOSTILE],
        [NORMAL[0], HOSTILE, NORMAL[1], HOSTILE, NORMAL[2]],
        [*FILLER, HOSTILE, NORMAL[2]],
    ],
    ids=["middle", "alone", "first", "last", "two", "second-slice"],
)
@pytest.mark.parametrize("extra", [{}, {"event_id": True}], ids=["plain", "event-id"])
def test_a_block_with_a_hostile_line_writes_what_the_line_path_writes(
    lines: list[str], extra: dict[str, Any]
) -> None:
    block = "".join(line + "\n" for line in lines).encode()
    fast, slow = encoder(EXPONENTIAL, **extra), encoder(EXPONENTIAL, **extra)
    assert fast._block_parse is not None, "the pattern has a block form"

    encoded = fast.encode(block, 3)

    same_as_line_path(encoded, line_by_line(slow, block, 3), block)
    counts = fast.take_counts()
    assert counts == slow.take_counts()
    assert counts["parse_timeout"] == lines.count(HOSTILE)
    first = 3 + sum(len(line) + 1 for line in lines[: lines.index(HOSTILE)])
    assert [r.reason for r in encoded.rejected] == [PARSE_TIMEOUT] * lines.count(HOSTILE)
    assert encoded.rejected[0].offset == first
    assert {r.data for r in encoded.rejected} == {HOSTILE.encode()}
    events = [orjson.loads(e) for p in encoded.pieces for e in p.data.splitlines()]
    assert [e["word"] for e in events] == [line.split()[1] for line in lines if line != HOSTILE]


def test_a_polynomial_line_is_dead_lettered_on_both_paths() -> None:
    block = f"info a b c d\n{LONG_HOSTILE}\nwarn abcd\n".encode()
    fast, slow = encoder(POLYNOMIAL), encoder(POLYNOMIAL)

    encoded = fast.encode(block, 0)

    same_as_line_path(encoded, line_by_line(slow, block, 0), block)
    [rejected] = encoded.rejected
    assert (rejected.reason, rejected.offset) == (PARSE_TIMEOUT, len("info a b c d\n"))
    assert "did not finish within 0.2 CPU-s" in rejected.detail
    assert encoded.pieces[-1].end_offset == len(block), "the file moves on past it"


def test_a_block_of_normal_lines_still_takes_the_block_path() -> None:
    block = "".join(line + "\n" for line in NORMAL * 50).encode()
    enc = encoder(EXPONENTIAL)
    assert enc._whole_block(block, 0) is not None
    assert "parse_timeout" not in enc.take_counts()


def test_a_start_pattern_that_times_out_takes_the_line_as_a_start() -> None:
    source = SourceConfig.model_validate(
        {
            "name": "s",
            "include": ["/x/*.log"],
            "format": "text",
            "multiline": {"start_pattern": r"^(a|aa)+$", "flush_timeout": "1h"},
        }
    )
    enc = ParsedEncoder(
        source,
        path="/x/a.log",
        identity=lambda: "f" * 16,
        max_event_bytes=40_000,
        piece_bytes=60_000,
        now=lambda: NOW,
    )
    hostile = "a" * 64 + "!"
    block = f"aa\n  more\n{hostile}\n  after\naaaa\n".encode()

    encoded = enc.encode(block, 0)
    flushed = enc.flush(force=True)

    messages = [
        orjson.loads(e)["message"]
        for piece in [*encoded.pieces, *flushed.pieces]
        for e in piece.data.splitlines()
    ]
    assert messages == ["aa\n  more", f"{hostile}\n  after", "aaaa"]
    assert enc.take_counts()["start_pattern_timeout"] == 1
    assert not encoded.rejected and not flushed.rejected
