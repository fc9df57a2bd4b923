"""Sources in a charset other than UTF-8 a block at a time (issue 13): latin-1, windows-1252
and UTF-16/32 blocks decoded at once must make exactly what the line path (`ParsedEncoder`
record by record, the reference) makes: the same events, the same ORIGINAL file offsets
(checkpoints, dead letters and event ids stand on them), the same dead letters and counts
(invalid bytes, BOMs stripped), whatever the bytes, the cuts and the line limit."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from agent.config import SourceConfig
from agent.encode import Encoded
from agent.encode.parsed import ParsedEncoder
from tests.support.pieces import events_and_offsets, pieces_keep_their_rules

NOW = 1_764_028_800.0  # 2025-11-25T00:00:00Z
PIECE_BYTES = 600
FORMATS: dict[str, dict[str, Any]] = {
    "text": {"format": "text"},
    "json": {"format": "json"},
    "regex": {
        "format": "text",
        "parser": {"type": "regex", "pattern": r"(?P<level>[A-Z]+) (?P<msg>.*)"},
    },
    "nginx": {"format": "text", "parser": {"type": "nginx"}},
    "ids": {"format": "text", "event_id": True},
    "fields": {"format": "text", "fields": {"env": "prod", "message": "m"}},
    "time is message": {"format": "text", "time_field": "message"},
}


def encoder(charset: str, shape: str, max_line: int = 10_000) -> ParsedEncoder:
    source = SourceConfig.model_validate(
        {
            "name": "s",
            "include": ["/x/*.log"],
            "charset": charset,
            "max_line_bytes": max_line,
            **FORMATS[shape],
        }
    )
    return ParsedEncoder(
        source,
        path="/x/a.log",
        identity=lambda: "f" * 16,
        max_event_bytes=2_000,
        piece_bytes=PIECE_BYTES,
        now=lambda: NOW,
    )


@dataclass
class Run:
    """What one encoder made of a file's blocks, block by block, and its counts after each."""

    outcomes: list[tuple[object, ...]]
    counts: list[dict[str, int]]
    pending: list[int | None]


def run(enc: ParsedEncoder, blocks: list[bytes], encode: Callable[[bytes, int], Encoded]) -> Run:
    got = Run([], [], [])
    offset = 0
    for block in blocks:
        encoded = encode(block, offset)
        pieces_keep_their_rules(encoded, PIECE_BYTES)
        got.outcomes.append(events_and_offsets(encoded))
        got.counts.append(enc.take_counts())
        got.pending.append(enc.pending_offset)
        offset += len(block)
    return got


def both_paths(charset: str, shape: str, max_line: int, blocks: list[bytes]) -> tuple[Run, Run]:
    fast = encoder(charset, shape, max_line)
    reference = encoder(charset, shape, max_line)
    whole = fast._charset_block

    def seen(block: bytes, start: int) -> Encoded | None:
        found = whole(block, start)
        event("a block taken whole" if found is not None else "a block refused whole")
        return found

    fast._charset_block = seen  # type: ignore[method-assign]
    return run(fast, blocks, fast.encode), run(reference, blocks, reference._by_line)


# Pieces of lines: ASCII, JSON, whitespace Python calls space (NEL, NBSP), CRs, BOMs, and the
# characters that straddle a 0x0A in the wide charsets (U+010A, U+0A00, an astral one).
WORDS = [
    "INFO ok",
    "ERROR x",
    "a",
    " ",
    "\t",
    "\r",
    "\x85",
    "\xa0",
    "é",
    "€",
    "\ufeff",
    "Ċ",
    "\u0a00",
    "😀",
    '{"a":1}',
    '{"timestamp":"2025-11-24T10:00:00Z","m":"é"}',
    '{"timestamp":5}',
    "[1]",
    "{",
    '"',
    "x" * 45,
    "\x7f",
    "\x1c",
]
NGINX = '10.0.0.1 - - [24/Nov/2025:10:00:00 +0000] "GET /caf\u00e9 HTTP/1.1" 200 5 "-" "c"'
line_text = st.one_of(
    st.lists(st.sampled_from(WORDS), max_size=6).map("".join),
    st.sampled_from([NGINX, NGINX + "\r", " " + NGINX, NGINX.replace("200", "x")]),
)


def cut_after_newlines(data: bytes, cuts: list[int]) -> list[bytes]:
    """`data` cut as the tailer cuts it: each block ends just after a byte 0x0A (the ones
    `cuts` picks), what follows the last cut not written yet."""
    ends = [i + 1 for i, byte in enumerate(data) if byte == 0x0A]
    chosen = sorted({ends[c % len(ends)] for c in cuts}) if ends else []
    if ends and ends[-1] not in chosen and len(cuts) % 2:
        chosen.append(ends[-1])
    blocks, position = [], 0
    for end in chosen:
        blocks.append(data[position:end])
        position = end
    return blocks


SINGLE = ["latin-1", "windows-1252", "iso-8859-15"]
WIDE = ["utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-le"]


@st.composite
def single_byte_file(draw: st.DrawFn) -> tuple[str, list[bytes]]:
    charset = draw(st.sampled_from(SINGLE))
    lines = draw(st.lists(line_text, min_size=1, max_size=40))
    data = b"".join(line.encode(charset, "replace") + b"\n" for line in lines)
    raw = draw(
        st.lists(
            st.sampled_from([b"\x81", b"\x8d", b"\x90", b"\x9d", b"\xff", b"\xef\xbb\xbf"]),
            max_size=3,
        )
    )
    for junk in raw:  # bytes windows-1252 has no character for, a UTF-8 BOM
        at = draw(st.integers(0, len(data)))
        data = data[:at] + junk + data[at:]
    return charset, cut_after_newlines(data, draw(st.lists(st.integers(0, 200), max_size=6)))


@st.composite
def wide_file(draw: st.DrawFn) -> tuple[str, list[bytes]]:
    charset = draw(st.sampled_from(WIDE))
    lines = draw(st.lists(line_text, min_size=1, max_size=30))
    bom = draw(st.booleans())
    if charset in ("utf-16", "utf-32"):  # the byte order from the BOM, little without one
        written = charset + (draw(st.sampled_from(["-le", "-be"])) if bom else "-le")
    else:
        written = charset
    text = ("\ufeff" if bom else "") + "".join(line + "\n" for line in lines)
    data = text.encode(written)
    harm = draw(st.sampled_from(["none", "none", "none", "drop", "surrogate", "odd"]))
    at = draw(st.integers(0, len(data)))
    if harm == "drop" and data:
        data = data[:at] + data[at + 1 :]  # a byte lost: every unit after it misaligned
    elif harm == "surrogate":
        data = data[:at] + "\ud800".encode(written, "surrogatepass") + data[at:]
    elif harm == "odd":
        data = data[:at] + b"\x0a" + data[at:]
    return charset, cut_after_newlines(data, draw(st.lists(st.integers(0, 200), max_size=6)))


def agree(charset: str, shape: str, max_line: int, blocks: list[bytes]) -> None:
    fast, reference = both_paths(charset, shape, max_line, blocks)
    assert fast.outcomes == reference.outcomes
    assert fast.counts == reference.counts
    assert fast.pending == reference.pending


@settings(
    max_examples=800, derandomize=True, deadline=None, suppress_health_check=list(HealthCheck)
)
@given(single_byte_file(), st.sampled_from(list(FORMATS)), st.sampled_from([10_000, 30, 60]))
def test_single_byte_blocks_make_what_the_line_path_makes(
    file: tuple[str, list[bytes]], shape: str, max_line: int
) -> None:
    charset, blocks = file
    event(f"{charset} {shape}")
    agree(charset, shape, max_line, blocks)


@settings(
    max_examples=800, derandomize=True, deadline=None, suppress_health_check=list(HealthCheck)
)
@given(wide_file(), st.sampled_from(list(FORMATS)), st.sampled_from([10_000, 30, 90]))
def test_wide_blocks_make_what_the_line_path_makes(
    file: tuple[str, list[bytes]], shape: str, max_line: int
) -> None:
    charset, blocks = file
    event(f"{charset} {shape}")
    agree(charset, shape, max_line, blocks)


LATIN_LINES = "".join(f"INFO requête {i} traitée\n" for i in range(300)).encode("latin-1")


@pytest.mark.parametrize("shape", ["text", "regex", "json", "nginx", "fields"])
@pytest.mark.parametrize("charset", ["latin-1", "windows-1252"])
def test_a_single_byte_block_goes_whole_with_the_files_offsets(charset: str, shape: str) -> None:
    """The block path is taken (no record per line), and its offsets are the file's, not
    those of the UTF-8 it became (where each é is two bytes)."""
    lines = LATIN_LINES
    if shape == "json":
        lines = "".join(f'{{"m":"requête {i}"}}\n' for i in range(300)).encode(charset)
    if shape == "nginx":
        lines = "".join(NGINX.replace("GET /", f"GET /{i}") + "\n" for i in range(300)).encode(
            charset
        )
    enc = encoder(charset, shape)
    encoded = enc._charset_block(lines, 1000)
    assert encoded is not None
    want = encoder(charset, shape)._by_line(lines, 1000)
    assert events_and_offsets(encoded) == events_and_offsets(want)
    assert encoded.pieces[-1].end_offset == 1000 + len(lines)


def test_a_utf16_file_with_a_bom_goes_whole_block_after_block() -> None:
    text = "".join(f"INFO requête {i} 😀\n" for i in range(200))
    data = b"\xff\xfe" + text.encode("utf-16-le")
    blocks = cut_after_newlines(data, [50, 120, 199])
    fast, reference = encoder("utf-16", "text"), encoder("utf-16", "text")
    offset = 0
    for block in blocks:
        encoded = fast._charset_block(block, offset)
        assert encoded is not None
        assert events_and_offsets(encoded) == events_and_offsets(reference._by_line(block, offset))
        assert fast.take_counts() == reference.take_counts()
        offset += len(block)
    assert fast.pending_offset == reference.pending_offset
