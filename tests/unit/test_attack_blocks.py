"""Hostile lines against the whole-block paths of issue 13 (`ParsedEncoder`'s parsed, Docker
and CRI blocks, `IdEncoder`) and the line path they fall back to: whatever a line holds, no
exception leaves the encoder, the block path writes what the line path writes, and every line
is shipped, dead-lettered or counted (issue 12: "a broken line is dead-lettered with its
reason; the agent keeps running")."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from agent.config import SourceConfig
from agent.encode import Encoded, EncodeLimits, LineEncoder, encoder_for
from agent.encode.ids import IdEncoder, takes_ids
from agent.encode.parsed import ParsedEncoder
from agent.parse.parsers import (
    _ACCESS_LINES,
    _SYSLOG_3164_LINES,
    _SYSLOG_5424_LINES,
    _cached_structured_data,
    parse_syslog,
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


def line_path(**options: Any) -> LineEncoder:
    """The reference: a `ParsedEncoder` with every whole-block path switched off; for JSON
    lines with event ids, `IdEncoder`'s one-event-at-a-time definition."""
    if takes_ids(source(**options)):
        return IdEncoder(
            source(**options),
            path="/x/a.log",
            identity=lambda: "f" * 16,
            max_event_bytes=LIMITS.max_event_bytes,
            piece_bytes=LIMITS.piece_bytes,
            now=lambda: NOW,
            whole_blocks=False,
        )
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
# once raised OverflowError out of the encoder (every parsed path, the CRI time; IdEncoder's
# case is in tests/unit/test_encode_ids.py).
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


# Every block path against the line path, on lines of each shape with hostile bytes put
# anywhere: NUL, CR alone, the separators str.splitlines breaks at (VT, FF, FS, NEL, U+2028,
# U+2029), a BOM, bytes that are not UTF-8 (a lone surrogate's, a cut sequence), quotes,
# brackets, escapes, a row break, times at their edges.
SHAPES: dict[str, tuple[dict[str, Any], list[bytes]]] = {
    "nginx": (
        {"format": "text", "parser": "nginx"},
        [
            b'10.0.0.1 - bob [24/Nov/2025:10:00:00 +0000] "GET /a HTTP/1.1" 200 512 "-" "curl"',
            b"2025/11/24 10:00:00 [error] 1#0: *1 open() failed, client: 1.2.3.4",
        ],
    ),
    "apache": (
        {"format": "text", "parser": "apache", "event_id": True},
        [b'::1 - - [24/Nov/2025:10:00:00.250 -0700] "POST /b?x=1 HTTP/2.0" 404 -'],
    ),
    "syslog": (
        {"format": "text", "parser": "syslog", "fields": {"env": "p"}},
        [
            b'<13>1 2025-11-24T10:00:00.123Z h app 1 m [x a="b\\"c"] hi',
            b"<34>Nov 24 10:00:00 host app[1]: msg",
            b"Nov 24 10:00:00.5 host app: msg",
        ],
    ),
    "logfmt": (
        {"format": "text", "parser": "logfmt"},
        [b'level=info msg="a \\"b\\"" ok ts=2025-11-24T10:00:00Z', b"a=1 b= c"],
    ),
    "regex": (
        {
            "format": "text",
            "parser": {
                "type": "regex",
                "pattern": r"^(?P<time>\S+) (?P<message>seq=\d+ (?P<level>[A-Z]+) .*)$",
            },
        },
        [b"2025-11-24T10:00:00.000Z seq=1 INFO svc hello"],
    ),
    "docker": (
        {"format": "text", "kubernetes": {"format": "docker"}},
        [
            b'{"log":"hi\\n","stream":"stdout","time":"2025-11-24T10:00:00.123456789Z"}',
            b'{"log":"part","stream":"stderr","time":"2025-11-24T10:00:01Z"}',
        ],
    ),
    "cri": (
        {"format": "text", "kubernetes": {"format": "cri", "partial_max_bytes": 40}},
        [
            b"2025-11-24T10:00:00.123Z stdout P a",
            b"2025-11-24T10:00:00.123Z stdout F b",
            b"2025-11-24T10:00:00.5+01:00 stderr F c",
        ],
    ),
    "ids": (
        {"format": "json", "event_id": True, "fields": {"env": "p"}},
        [b'{"timestamp":"2025-11-24T10:00:00.000Z","a":[1,{"b":"c"}]}', b'{"a":1}'],
    ),
}
FRAGMENTS = [
    b"\x00",
    b"\r",
    b"\x0b",
    b"\x0c",
    b"\x1c",
    b"\xc2\x85",
    b"\xe2\x80\xa8",
    b"\xe2\x80\xa9",
    b"\xef\xbb\xbf",
    b"\xff",
    b"\xed\xa0\x80",
    b"\xc3",
    b'"',
    b"\\",
    b"[",
    b"]",
    b"=",
    b" ",
    b"\\u0000",
    b"\\ud800",
    b"}],[{",
    b"],[",
    b":60",
    b"+23:59",
    b"-23:59",
    b"9999",
    b"0001",
    b"\xc3\xa9",
    b"{",
    b"}",
    b"\t",
    b"\\n",
    b"x" * 300,
]


@settings(
    max_examples=300, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
@given(
    shape=st.sampled_from(sorted(SHAPES)),
    picks=st.lists(st.integers(0, 5), min_size=1, max_size=8),
    mutations=st.lists(
        st.tuples(st.integers(0, 7), st.integers(0, 200), st.sampled_from(FRAGMENTS)),
        max_size=3,
    ),
)
def test_hostile_bytes_in_any_line_of_any_shape(
    shape: str, picks: list[int], mutations: list[tuple[int, int, bytes]]
) -> None:
    options, seeds = SHAPES[shape]
    lines = [seeds[pick % len(seeds)] for pick in picks]
    for index, position, fragment in mutations:
        line = lines[index % len(lines)]
        at = position % (len(line) + 1)
        lines[index % len(lines)] = line[:at] + fragment + line[at:]
    block = b"".join(line + b"\n" for line in lines)
    fast, slow = encoder(**options), line_path(**options)
    got, want = fast.encode(block, 3), slow.encode(block, 3)
    assert outcome(got) == outcome(want)
    assert fast.pending_offset == slow.pending_offset
    flushed, reference = fast.flush(force=True), slow.flush(force=True)
    if shape == "ids" and not reference.rejected:  # IdEncoder.flush: nothing is ever held
        reference = Encoded([p for p in reference.pieces if p.events], [], reference.blank)
    assert outcome(flushed) == outcome(reference)
    assert fast.take_counts() == slow.take_counts()
    if shape not in ("cri", "docker"):  # joined fragments: several lines, one event
        assert accounted(block, got)


def test_long_structured_data_is_not_kept_in_the_cache() -> None:
    """RFC 5424 structured data is parsed once per distinct text and kept (1024 of them):
    1024 crafted lines with ~110 KB of distinct structured data each kept ~840 MB alive."""
    before = _cached_structured_data.cache_info().currsize
    sd = "".join(f'[e{j} k="{"v" * 40}"]' for j in range(200))
    fields = parse_syslog(f"<13>1 2025-11-24T10:00:00.000Z h a p m {sd} hi")
    assert fields is not None
    assert len(fields["structured_data"]) == 200
    assert fields["structured_data"]["e7"] == {"k": "v" * 40}
    assert _cached_structured_data.cache_info().currsize == before
    short = parse_syslog('<13>1 2025-11-24T10:00:00.000Z h a p m [x k="v"] hi')
    assert short is not None
    assert short["structured_data"] == {"x": {"k": "v"}}


@settings(
    max_examples=150, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
@given(
    shape=st.sampled_from(sorted(SHAPES)),
    picks=st.lists(st.integers(0, 5), min_size=1, max_size=40),
    cuts=st.lists(st.integers(0, 40), max_size=4),
    mutation=st.tuples(st.integers(0, 40), st.integers(0, 200), st.sampled_from(FRAGMENTS)),
)
def test_blocks_in_a_row_keep_what_the_line_path_keeps(
    shape: str, picks: list[int], cuts: list[int], mutation: tuple[int, int, bytes]
) -> None:
    """The same lines read in several blocks, the whole-block paths taken for some and not
    for others (a fragment held across blocks, one hostile line): the same pieces, held
    offsets and counts as the line path at every step."""
    options, seeds = SHAPES[shape]
    lines = [seeds[pick % len(seeds)] for pick in picks]
    index, position, fragment = mutation
    if index < len(lines):
        at = position % (len(lines[index]) + 1)
        lines[index] = lines[index][:at] + fragment + lines[index][at:]
    fast, slow = encoder(**options), line_path(**options)
    offset = 0
    for start, end in zip([0, *sorted(cuts)], [*sorted(cuts), len(lines)], strict=True):
        block = b"".join(line + b"\n" for line in lines[start:end])
        if not block:
            continue
        assert outcome(fast.encode(block, offset)) == outcome(slow.encode(block, offset))
        assert fast.pending_offset == slow.pending_offset
        offset += len(block)
    assert fast.take_counts() == slow.take_counts()


@pytest.mark.parametrize("between", [False, True])
def test_a_cri_fragment_at_the_slice_boundary(between: bool) -> None:
    """A ``P`` fragment the last line of one 16 KiB slice, its ``F`` the first of the next
    (or around it), with or without another stream's line between."""
    stamp = b"2025-11-24T10:00:00.123Z"
    filler = stamp + b" stderr F " + b"f" * 90
    options = {"format": "text", "kubernetes": {"format": "cri"}}
    taken = 0
    for shift in range(-3, 4):
        lines = [filler] * (16 * 1024 // (len(filler) + 1) + shift)
        lines.append(stamp + b" stdout P head ")
        if between:
            lines.append(stamp + b" stderr F between")
        lines += [stamp + b" stdout F tail", *[filler] * 5]
        block = b"".join(line + b"\n" for line in lines)
        fast, slow = encoder(**options), line_path(**options)
        assert isinstance(fast, ParsedEncoder)
        taken += fast._cri_block(block, 0) is not None
        fast = encoder(**options)
        assert outcome(fast.encode(block, 0)) == outcome(slow.encode(block, 0)), shift
        assert fast.take_counts() == slow.take_counts()
    assert taken == (0 if between else 7)


@pytest.mark.parametrize("value", [b"1e308", b"-1e308", b"1.7976931348623157e308", b"1e300"])
@pytest.mark.parametrize("unit", ["epoch_seconds", "epoch_millis"])
def test_an_epoch_too_large_for_its_unit_is_no_time(value: bytes, unit: str) -> None:
    """``1e308`` seconds is infinite milliseconds: OverflowError out of the encoder, once."""
    options = {"format": "json", "time": {"format": unit}}
    block = b'{"timestamp":' + value + b',"n":1}\n'
    encoded = encoder(**options).encode(block, 0)
    assert accounted(block, encoded)
    assert b'"timestamp_raw":' in encoded.pieces[0].data  # the read time, the value kept
