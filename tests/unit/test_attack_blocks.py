"""Hostile lines against the whole-block paths of issue 13 (`ParsedEncoder`'s parsed, Docker
and CRI blocks, `IdEncoder`) and the line path they fall back to: whatever a line holds, no
exception leaves the encoder, the block path writes what the line path writes, and every line
is shipped, dead-lettered or counted (issue 12: "a broken line is dead-lettered with its
reason; the agent keeps running")."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from agent.config import SourceConfig
from agent.encode import Encoded, EncodeLimits, LineEncoder, encoder_for
from agent.encode.parsed import ParsedEncoder
from agent.parse.parsers import (
    _ACCESS_LINES,
    _SYSLOG_3164_LINES,
    _SYSLOG_5424_LINES,
    regex_block,
)

NOW = 1_764_028_800.0  # 2025-11-25T00:00:00Z
LIMITS = EncodeLimits(max_event_bytes=2_000, piece_bytes=600)


def source(**options: Any) -> SourceConfig:
    return SourceConfig.model_validate({"name": "s", "include": ["/x/*.log"], **options})


def encoder(**options: Any) -> LineEncoder:
    return encoder_for(
        source(**options),
        LIMITS,
        path="/x/a.log",
        identity=lambda: "f" * 16,
        start_offset=0,
        now=lambda: NOW,
    )


def line_path(**options: Any) -> ParsedEncoder:
    """The reference: a `ParsedEncoder` with every whole-block path switched off."""
    enc = ParsedEncoder(
        source(**options),
        path="/x/a.log",
        identity=lambda: "f" * 16,
        max_event_bytes=LIMITS.max_event_bytes,
        piece_bytes=LIMITS.piece_bytes,
        now=lambda: NOW,
    )
    enc._block_parse, enc._docker, enc._cri = None, False, None
    return enc


def outcome(encoded: Encoded) -> tuple[object, ...]:
    return (
        [(p.data, p.events, p.end_offset, list(p.offsets)) for p in encoded.pieces],
        encoded.rejected,
        encoded.blank,
    )


def accounted(block: bytes, encoded: Encoded) -> bool:
    """Every line of `block` an event, a dead letter or a blank (one record per line)."""
    events = sum(p.events for p in encoded.pieces)
    return events + len(encoded.rejected) + encoded.blank == block.count(b"\n")


# A time a year 1 or 9999 line writes with an offset lies outside what datetime (and so
# `iso_from_millis`) can write: the line is too late / too early, and its dead letter's detail
# once raised OverflowError out of the encoder (every parsed path, the CRI time, IdEncoder).
EDGE_TIMES = [
    (
        {"format": "json", "late_window": "30d"},
        b'{"timestamp":"0001-01-01T00:00:00+01:00"}\n',
        "too_late",
    ),
    (
        {"format": "json", "early_window": "1d"},
        b'{"timestamp":"9999-12-31T23:59:59-01:00"}\n',
        "too_early",
    ),
    (
        {"format": "json", "event_id": True},
        b'{"timestamp":"0001-01-01T00:30:00+23:59"}\n',
        "too_late",
    ),
    (
        {"format": "text", "parser": "nginx"},
        b'1.2.3.4 - - [01/Jan/0001:00:00:00 +2359] "GET / HTTP/1.1" 200 1 "-" "-"\n',
        "too_late",
    ),
    (
        {"format": "text", "parser": "apache"},
        b'1.2.3.4 - - [31/Dec/9999:23:59:59 -0001] "GET / HTTP/1.1" 200 1\n',
        "too_early",
    ),
    (
        {"format": "text", "parser": "syslog"},
        b"<13>1 0001-01-01T00:00:00+01:00 h a p m - hi\n",
        "too_late",
    ),
    (
        {"format": "text", "parser": {"type": "regex", "pattern": r"^(?P<time>\S+) (?P<m>.*)$"}},
        b"9999-12-31T23:59:59.999-00:01 hi\n",
        "too_early",
    ),
    (
        {"format": "text", "kubernetes": {"format": "cri"}},
        b"0001-01-01T00:00:00+01:00 stdout F hi\n",
        "too_late",
    ),
    (
        {"format": "text", "kubernetes": {"format": "docker"}},
        b'{"log":"hi\\n","stream":"stdout","time":"0001-01-01T00:00:00+00:01"}\n',
        "too_late",
    ),
]


@pytest.mark.parametrize(("options", "line", "reason"), EDGE_TIMES)
def test_a_time_beyond_what_iso_can_write_is_dead_lettered(
    options: dict[str, Any], line: bytes, reason: str
) -> None:
    block = line * 3
    encoded = encoder(**options).encode(block, 0)
    assert [r.reason for r in encoded.rejected] == [reason] * 3
    assert "outside the" in encoded.rejected[0].detail
    assert accounted(block, encoded)
    assert outcome(encoded) == outcome(line_path(**options).encode(block, 0))


# The whole-block scans must cost what the lines cost: a pattern piece that takes a newline
# runs from a line without its closing ``]`` or quote to the end of the slice, and fails
# there, for every such line: quadratic in the slice (16 KiB of ``a b c [`` lines: ~200 ms
# for nginx, ~500 ms for RFC 5424 ``<1>1 - - - - - [``, ~1.5 s for a user's ``[^,]*,`` over
# lines without a comma, where the line path takes ~1 ms). No timing is asserted: the
# patterns are checked not to take a newline, and their matches never to hold one.
HOSTILE = st.text(alphabet='ab <>1[]"\\=- \n:T', max_size=80)


@settings(max_examples=400, deadline=None, derandomize=True)
@given(text=HOSTILE)
@example(text='a b c [\n] "" 200 1')
@example(text='a b c [t] "\n" 200 1')
@example(text="<1>1 - - - - - [\n]")
@example(text='<1>1 - - - - - [a b="\n"]')
def test_the_built_in_block_patterns_never_match_past_a_line(text: str) -> None:
    for pattern in (_ACCESS_LINES, _SYSLOG_5424_LINES, _SYSLOG_3164_LINES):
        for match in pattern.finditer(text):
            assert "\n" not in match.group(), (pattern.pattern[:20], text)


@pytest.mark.parametrize(
    "lines",
    [
        ["a b c [", "x - - [t]"] * 3,
        ['a b c [t] "GET', '" 200 1', '1.2.3.4 - - [t] "GET / HTTP/1.1" 200 1'],
        ['1.2.3.4 - - [24/Nov/2025:10:00:00 +0000] "GET / HTTP/1.1" 200 1 "-" "x', 'y" "z"'],
    ],
)
def test_access_lines_that_leave_a_bracket_or_quote_open(lines: list[str]) -> None:
    block = "".join(line + "\n" for line in lines).encode()
    for parser in ("nginx", "apache"):
        options = {"format": "text", "parser": parser}
        encoded = encoder(**options).encode(block, 0)
        assert accounted(block, encoded)
        assert outcome(encoded) == outcome(line_path(**options).encode(block, 0))


def test_syslog_lines_that_leave_structured_data_open() -> None:
    block = b'<1>1 - - - - - [\n<1>1 - - - - - [a b="\n<1>1 - - - - - [a b="]"] x\n'
    options = {"format": "text", "parser": "syslog"}
    encoded = encoder(**options).encode(block, 0)
    assert accounted(block, encoded)
    assert outcome(encoded) == outcome(line_path(**options).encode(block, 0))


@pytest.mark.parametrize(
    ("pattern", "block_form"),
    [
        (r"(?P<a>[^,]*),(?P<b>.*)", False),
        (r"(?P<a>[^;]+);", False),
        (r"(?P<a>\D+)(?P<b>\d+)", False),
        (r"(?s)(?P<a>.*)x", False),
        (r"(?P<a>[\s\S]*?)!", False),
        (r"(?P<a>\w)(?P<b>\1)", False),
        (r"^(?P<time>\S+) (?P<level>[A-Z]+)\s+(?P<message>.*)$", True),
        (r"(?P<a>[^\n,]*),(?P<b>.*)", True),
    ],
)
def test_a_user_pattern_that_runs_past_lines_has_no_block_form(
    pattern: str, block_form: bool
) -> None:
    assert (regex_block(pattern) is not None) == block_form
    options = {"format": "text", "parser": {"type": "regex", "pattern": pattern}}
    block = b"".join(line + b"\n" for line in [b"x" * 40, b"a,b;c 1!", b"2025 INFO  hi"] * 4)
    encoded = encoder(**options).encode(block, 0)
    assert accounted(block, encoded)
    assert outcome(encoded) == outcome(line_path(**options).encode(block, 0))
