"""Parsed sources a block at a time (issue 13): the access-log parsers scan their pattern over
the whole block and build the events in one loop, and must write exactly what the line path
(`ParsedEncoder` record by record, the reference) writes: same events, pieces, offsets,
dead letters and counts, whatever the lines."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from agent.config import SourceConfig
from agent.encode import Encoded
from agent.encode.halves import LEAF_BYTES
from agent.encode.parsed import SLICE_BYTES, ParsedEncoder
from agent.parse.parsers import _ACCESS, _QUOTED, _REQUEST, _SYSLOG_5424, access_fields
from tests.support.pieces import events_and_offsets, pieces_keep_their_rules

NOW = 1_764_028_800.0  # 2025-11-25T00:00:00Z


def encoder(**options: Any) -> ParsedEncoder:
    source = SourceConfig.model_validate(
        {"name": "s", "include": ["/x/*.log"], "format": "text", **options}
    )
    return ParsedEncoder(
        source,
        path="/x/a.log",
        identity=lambda: "f" * 16,
        max_event_bytes=2_000,
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


def same_as_line_path(got: Encoded, want: Encoded, block: bytes) -> None:
    """`got` is what the line path makes of `block`: piece for piece for a block of one
    leaf; a bigger one refused whole is halved (`agent.encode.halves`) and may cut its
    pieces at the halves' bounds too, so its events and offsets are compared across them."""
    assert events_and_offsets(got) == events_and_offsets(want)
    if len(block) <= LEAF_BYTES:
        assert outcome(got) == outcome(want)
    pieces_keep_their_rules(got, 600)


def test_a_block_of_access_lines_takes_the_block_path() -> None:
    line = (
        b'10.0.0.1 - bob [24/Nov/2025:10:00:00 +0000] "GET /a?seq=1 HTTP/1.1" 200 512 '
        b'"-" "curl/8.4.0"\n'
    )
    enc = encoder(parser="nginx")
    encoded = enc._whole_block(line * 20, 7)
    assert encoded is not None
    assert outcome(encoded) == outcome(line_by_line(encoder(parser="nginx"), line * 20, 7))
    assert b'"timestamp":"2025-11-24T10:00:00.000Z"' in encoded.pieces[0].data


def test_a_request_nginx_could_not_read_is_left_out() -> None:
    """``"-"`` for the request (nginx's 400s) once raised KeyError out of the parser."""
    line = b'10.0.0.1 - - [24/Nov/2025:10:00:00 +0000] "-" 400 0 "-" "-"\n'
    encoded = line_by_line(encoder(parser="nginx"), line, 0)
    assert encoded.pieces[0].data == (
        b'{"remote_addr":"10.0.0.1","status":400,"body_bytes":0,'
        b'"timestamp":"2025-11-24T10:00:00.000Z"}\n'
    )


TIMES = [
    "24/Nov/2025:10:00:00 +0000",
    "24/Nov/2025:10:00:00 +0100",
    "24/Nov/2025:10:00:00.250 -0700",
    "24/Nov/2025:10:00:01 +0000",
    "01/Jan/2020:00:00:00 +0000",  # too late
    "24/Nov/2035:00:00:00 +0000",  # too early
    "31/Feb/2025:00:00:00 +0000",  # no such day
    "not a time",
    "",
]
REQUESTS = ["GET /a HTTP/1.1", "POST /b?x=1 HTTP/2.0", "garbage", '\\"quoted\\"', "-", ""]
TOKENS = ["-", "bob", "10.0.0.1", "::1", "x y"]
access = st.builds(
    lambda ip, user, time, request, status, size, tail: (
        f'{ip} - {user} [{time}] "{request}" {status} {size}{tail}'
    ),
    ip=st.sampled_from(TOKENS),
    user=st.sampled_from(TOKENS),
    time=st.sampled_from(TIMES),
    request=st.sampled_from(REQUESTS),
    status=st.sampled_from(["200", "404", "-", "2000"]),
    size=st.sampled_from(["0", "512", "-"]),
    tail=st.sampled_from(
        ["", ' "-" "curl/8.4.0"', ' "http://x/" "Mozilla (X; Y)" 0.003', ' "a"', "  extra"]
    ),
)
other = st.sampled_from(
    [
        "",
        "   ",
        "2015/01/21 10:56:10 [error] 2833#0: *16336 open() failed",
        "caf\u00e9 not ascii",
        "x\r",
        "[",
        '"',
        "y" * 3000,  # longer than the event limit
    ]
)
lines = st.one_of(access, access, access, other)


@settings(
    max_examples=300, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
@given(
    first=access,
    repeat=st.integers(1, 8),
    others=st.lists(lines, max_size=4) | st.lists(access, max_size=4),
    parser=st.sampled_from(["nginx", "apache"]),
    extra=st.sampled_from([{}, {"fields": {"env": "prod"}}, {"event_id": True}]),
)
def test_the_block_path_writes_what_the_line_path_writes(
    first: str, repeat: int, others: list[str], parser: str, extra: dict[str, Any]
) -> None:
    block = "".join(line + "\n" for line in [first] * repeat + others).encode()
    fast, slow = encoder(parser=parser, **extra), encoder(parser=parser, **extra)
    taken = fast._block_parse is not None and fast._whole_block(block, 3) is not None
    event("block path" if taken else "line path")
    fast = encoder(parser=parser, **extra)
    same_as_line_path(fast.encode(block, 3), line_by_line(slow, block, 3), block)
    assert fast.take_counts() == slow.take_counts()
    assert fast.pending_offset == slow.pending_offset


SYSLOG_3164 = st.builds(
    lambda pri, time, host, tag, message: f"{pri}{time} {host}{tag}{message}",
    pri=st.sampled_from(["", "<34>", "<999>", "<13>"]),
    time=st.sampled_from(
        ["Nov 24 10:00:00", "Nov  4 10:00:00.250", "Feb 29 00:00:00", "2025-11-24T10:00:00Z"]
    ),
    host=st.sampled_from(["web-01 ", "", "app[12]: "]),
    tag=st.sampled_from(["app[123]: ", "app: ", "app[x]:", "", "su:"]),
    message=st.sampled_from(["hello seq=1", "", "a [b] c", '"quoted"', "<14>1 x"]),
)
SYSLOG_5424 = st.builds(
    lambda pri, time, sd, message: f"<{pri}>1 {time} web-01 app 42 ID47 {sd}{message}",
    pri=st.sampled_from(["165", "0", "34"]),
    time=st.sampled_from(
        [
            *("2025-11-24T10:00:00.123Z", "2025-11-24T10:00:00+01:00", "-"),
            *("2020-01-01T00:00:00Z", "2025-11-24T10:00:00.123456789Z", "2025-11-24T10:00:00.5Z"),
            *("0001-01-01T00:00:00.000Z", "2025-11-24T10:00:60.000Z", "2035-11-24T10:00:00.000Z"),
        ]
    ),
    sd=st.sampled_from(["-", '[ex@1 iut="3"]', '[a@1 k="v\\"]"][b@2]', "[open"]),
    message=st.sampled_from(["", " hello", " \ufeffbom", " x\r"]),
)
syslog_lines = st.one_of(SYSLOG_3164, SYSLOG_5424)


@settings(
    max_examples=300, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
@given(
    first=syslog_lines,
    repeat=st.integers(1, 8),
    others=st.lists(st.one_of(syslog_lines, other), max_size=4)
    | st.lists(SYSLOG_3164, max_size=4)
    | st.lists(SYSLOG_5424, max_size=4),
)
def test_syslog_blocks_write_what_the_line_path_writes(
    first: str, repeat: int, others: list[str]
) -> None:
    block = "".join(line + "\n" for line in [first] * repeat + others).encode()
    fast, slow = encoder(parser="syslog"), encoder(parser="syslog")
    taken = fast._whole_block(block, 3)
    event("block path" if taken is not None else "line path")
    fast = encoder(parser="syslog")
    same_as_line_path(fast.encode(block, 3), line_by_line(slow, block, 3), block)
    assert fast.take_counts() == slow.take_counts()


LOGFMT_VALUES = [
    "info",
    "",
    '"hello world"',
    '"say \\"hi\\""',
    '"unterminated',
    '"a\\\\"',
    '"tab\\there"',
    '"x"y',
    "=",
    "a=b",
    '"\\u00e9t\\u00e9"',
]
LOGFMT_TIMES = [
    "2025-11-24T10:00:00.123Z",
    "2025-11-24T10:00:00.123456789Z",
    "2025-11-24T10:00:00Z",
    "2025-11-24T10:00:00.5Z",
    "2025-11-24T10:00:60.000Z",
    "0001-01-01T00:00:00.000Z",
    "2020-01-01T00:00:00.000Z",  # too late
    "2025-11-24T11:00:00.000+01:00",
    "24/Nov/2025:10:00:00 +0000",
    "1764028800",
    "not-a-time",
]
logfmt_pair = st.one_of(
    st.builds(
        lambda key, value: f"{key}={value}",
        st.sampled_from(["level", "msg", "time", "timestamp", "k", "a.b", "level"]),
        st.sampled_from(LOGFMT_VALUES),
    ),
    st.builds(lambda t: f"timestamp={t}", st.sampled_from(LOGFMT_TIMES)),
    st.sampled_from(["bare", "timestamp", '"', "==", "k==v"]),
)
logfmt_lines = st.one_of(
    st.lists(logfmt_pair, min_size=1, max_size=5).map(" ".join),
    st.lists(logfmt_pair, min_size=1, max_size=5).map(" ".join),
    st.lists(logfmt_pair, min_size=1, max_size=3).map("\t ".join),
    other,
)


@settings(
    max_examples=300, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
@given(
    lines=st.lists(logfmt_lines, min_size=1, max_size=8),
    extra=st.sampled_from(
        [
            {},
            {"fields": {"env": "prod", "level": "x"}},
            {"event_id": True},
            {"time": {"field": "k"}},
        ]
    ),
)
def test_logfmt_blocks_write_what_the_line_path_writes(
    lines: list[str], extra: dict[str, Any]
) -> None:
    block = "".join(line + "\n" for line in lines).encode()
    fast, slow = encoder(parser="logfmt", **extra), encoder(parser="logfmt", **extra)
    taken = fast._whole_block(block, 3)
    event("block path" if taken is not None else "line path")
    fast = encoder(parser="logfmt", **extra)
    same_as_line_path(fast.encode(block, 3), line_by_line(slow, block, 3), block)
    assert fast.take_counts() == slow.take_counts()


def test_a_block_of_logfmt_lines_takes_the_block_path() -> None:
    line = b'time=2025-11-24T10:00:00.123Z level=info msg="hello \\"you\\"" ok\n'
    enc = encoder(parser="logfmt", time={"field": "time"})
    encoded = enc._whole_block(line * 20, 0)
    assert encoded is not None
    assert encoded.pieces[0].data.startswith(
        b'{"time":"2025-11-24T10:00:00.123Z","level":"info","msg":"hello \\"you\\"","ok":true,'
        b'"timestamp":"2025-11-24T10:00:00.123Z"}\n'
    )


REGEXES = [
    r"^(?P<time>\S+) (?P<level>[A-Z]+) (?P<message>.*)$",
    r"(?P<level>[A-Z]+) (?P<message>.*)",  # unanchored: search finds it anywhere
    r"(?P<level>[A-Z]+)\s+(?P<rest>[\s\S]*)",  # reaches past the line's end
    r"\b(?P<word>x)?",  # an empty match first
    r"(?P<e>\b)|(?P<x>a)",  # an empty match, then a longer one at the same start
    r"(?i)^(?P<time>\S+) (?P<level>info|warn)",
    r"(?P<level>[A-Z]+)$",
    r"^(?P<time>\S+)(?=\s)",  # a lookahead: no block form
    r"(?P<a>a)|(?P<b>b)",
    r"(?P<level>[A-Z]+)(?P<space>\s*)",  # takes the newline, and the next line matches
]
regex_line = st.builds(
    lambda time, level, message: f"{time} {level} {message}",
    st.sampled_from(LOGFMT_TIMES[:4]) | st.sampled_from(LOGFMT_TIMES),
    st.just("INFO") | st.sampled_from(["INFO", "info", "WARN", "x"]),
    st.sampled_from(["hello", "", "a b", "INFO", "x"]),
)
regex_lines = st.one_of(
    st.lists(regex_line, min_size=1, max_size=8),
    st.lists(
        regex_line | st.sampled_from(["a", "-", "b", " x", "x ", "INFO"]) | other, max_size=8
    ).filter(bool),
)


@settings(
    max_examples=400, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
@given(
    lines=regex_lines,
    pattern=st.sampled_from(REGEXES),
    extra=st.sampled_from([{}, {"event_id": True}, {"time": {"format": "iso8601"}}]),
)
def test_regex_blocks_write_what_the_line_path_writes(
    lines: list[str], pattern: str, extra: dict[str, Any]
) -> None:
    block = "".join(line + "\n" for line in lines).encode()
    parser = {"type": "regex", "pattern": pattern}
    fast, slow = encoder(parser=parser, **extra), encoder(parser=parser, **extra)
    taken = fast._block_parse is not None and fast._whole_block(block, 3) is not None
    event("block path" if taken else "line path")
    fast = encoder(parser=parser, **extra)
    same_as_line_path(fast.encode(block, 3), line_by_line(slow, block, 3), block)
    assert fast.take_counts() == slow.take_counts()


@pytest.mark.parametrize(
    ("pattern", "lines"),
    [
        (r"(?P<level>[A-Z]+)(?P<space>\s*)", ["INFO", "WARN x"]),  # a match runs into line 2
        (r"(?P<e>\b)|(?P<x>a)", ["a", "-"]),  # two matches in line 1 (the first empty), none in 2
        (r"(?P<x>a)??", ["a", "b"]),
    ],
)
def test_regex_matches_that_cross_or_share_lines_go_line_by_line(
    pattern: str, lines: list[str]
) -> None:
    block = "".join(line + "\n" for line in lines).encode()
    parser = {"type": "regex", "pattern": pattern}
    fast, slow = encoder(parser=parser), encoder(parser=parser)
    assert fast._whole_block(block, 0) is None
    same_as_line_path(fast.encode(block, 0), line_by_line(slow, block, 0), block)


def test_a_block_of_regex_lines_takes_the_block_path() -> None:
    line = b"2025-11-24T10:00:00.123456Z INFO hello\n"
    enc = encoder(parser={"type": "regex", "pattern": REGEXES[0]})
    assert enc._whole_block(line * 20, 0) is not None
    lookahead = encoder(parser={"type": "regex", "pattern": r"^(?P<time>\S+)(?=\s)"})
    assert lookahead._block_parse is None


DOCKER_TIMES = [
    "2025-11-24T10:00:00.123456789Z",
    "2025-11-24T10:00:00.123Z",
    "2025-11-24T10:00:00Z",
    "2025-11-24T11:00:00.5+01:00",
    "2020-01-01T00:00:00.000000000Z",  # too late
    "2025-11-24T10:00:60.000Z",
    "garbage",
    "",
]
DOCKER_LOGS = [
    r"hello\n",
    r"seq=1 INFO a\r\n",
    r"\n",  # an empty line: blank
    r"   \n",
    "partial",  # no newline: a P fragment
    r"caf\u00e9 \"q\" \\ \u0000\n",
    r"\ud83d\ude00\n",
    r"\ud800\n",  # a lone surrogate: orjson refuses it
    r"tab\there\n",
]


def docker_json(log: str, stream: str, time: str, tail: str) -> str:
    stamp = "" if time == "-" else ',"time":"' + time + '"'
    return '{"log":"' + log + '"' + stream + stamp + tail + "}"


docker_line = st.builds(
    docker_json,
    log=st.sampled_from(DOCKER_LOGS[:2]) | st.sampled_from(DOCKER_LOGS),
    stream=st.sampled_from([',"stream":"stdout"', ',"stream":"stderr"', ""])
    | st.just(',"stream":5'),
    time=st.sampled_from(DOCKER_TIMES[:3]) | st.sampled_from([*DOCKER_TIMES, "-"]),
    tail=st.sampled_from(["", ',"attrs":{"tag":"web"}', ',"log":"again\\n"'])
    | st.sampled_from(
        [
            ',"attrs":{"tag":"web"}',
            ',"attrs":{"n":1}',
            ',"x":1e999',
            ',"x":1',
            ',"log":"again\\n"',
            ',"time":5',
            ' ,"stream":"x"',
        ]
    ),
)
docker_other = st.sampled_from(
    [
        "",
        " ",
        "[]",
        '[{"log":"a\\n"}]',
        '{"log":"a\\n"},{"log":"b\\n"}',
        '{"log":"a\\n","x":"',
        '"}',
        '{"log":"a\\n"}],[{"log":"b\\n"}',
        "not json",
        "\ufeff" + '{"log":"bom\\n"}',
        '{"log":"caf\u00e9\\n"}',
        '{"log":null}',
        '{"log":"a\\n"}\r',
        "2025-11-24T10:00:00Z stdout F cri",
        "y" * 3000,
    ]
)
clean_docker_line = st.builds(
    lambda log, stream, time: docker_json(log, f',"stream":"{stream}"', time, ""),
    log=st.sampled_from([*DOCKER_LOGS[:4], *DOCKER_LOGS[5:7], DOCKER_LOGS[8]]),
    stream=st.sampled_from(["stdout", "stderr"]),
    time=st.sampled_from(DOCKER_TIMES[:4]),
)
docker_lines = st.one_of(
    st.lists(clean_docker_line, min_size=1, max_size=8),
    st.lists(clean_docker_line | docker_line, min_size=1, max_size=8),
    st.lists(docker_line, min_size=1, max_size=8),
    st.lists(docker_line | docker_other, min_size=1, max_size=8),
)


@settings(
    max_examples=500, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
@given(
    lines=docker_lines,
    extra=st.sampled_from(
        [
            {},
            {"fields": {"env": "prod", "stream": "static", "message": "m"}},
            {"event_id": True},
            {"event_id": "message"},
            {"time_field": "stream"},
            {"time_field": "message"},
            {"time": {"field": "message"}},
            {"time": {"timezone": "Europe/Berlin"}},
        ]
    ),
    invalid=st.booleans(),
)
def test_docker_blocks_write_what_the_line_path_writes(
    lines: list[str], extra: dict[str, Any], invalid: bool
) -> None:
    block = "".join(line + "\n" for line in lines).encode()
    if invalid:
        block = block.replace(b"caf\xc3\xa9", b"caf\xe9")
    options = {"kubernetes": {"format": "docker"}, **extra}
    fast, slow = encoder(**options), encoder(**options)
    taken = fast._docker_block(block, 3) is not None
    event("block path" if taken else "line path")
    fast = encoder(**options)
    assert outcome(fast.encode(block, 3)) == outcome(docker_line_by_line(slow, block, 3))
    assert fast.take_counts() == slow.take_counts()
    assert fast.pending_offset == slow.pending_offset


def docker_line_by_line(enc: ParsedEncoder, block: bytes, start: int) -> Encoded:
    enc._docker = False  # the reference: record by record
    return enc.encode(block, start)


def test_a_block_of_docker_lines_takes_the_block_path() -> None:
    line = (
        b'{"log":"hello \\"you\\"\\n","stream":"stderr","time":"2025-11-24T10:00:00.123456789Z"}\n'
    )
    enc = encoder(kubernetes={"format": "docker"})
    encoded = enc._docker_block(line * 20 + b'{"log":"\\n","stream":"stdout","time":""}\n', 0)
    assert encoded is not None
    assert encoded.blank == 1
    assert encoded.pieces[0].data.startswith(
        b'{"message":"hello \\"you\\"","stream":"stderr","timestamp":"2025-11-24T10:00:00.123Z"}\n'
    )


@pytest.mark.parametrize("last", ["", "not docker"])
def test_a_block_longer_than_a_slice_writes_what_the_line_path_writes(last: str) -> None:
    """Blocks are parsed a slice at a time (`SLICE_BYTES`); a line the last slice cannot take
    sends the whole block line by line, with nothing counted twice."""
    lines = [
        docker_json(
            f"seq={n} {'x' * (n % 50)}\\n",
            ',"stream":"stdout"',
            "" if n % 7 == 0 else "2025-11-24T10:00:00.123456789Z",
            "",
        )
        for n in range(1500)
    ]
    lines[700] = '{"log":"\\n","stream":"stdout","time":"2025-11-24T10:00:00Z"}'
    block = "".join(line + "\n" for line in [*lines, last] if line).encode()
    assert len(block) > 2 * SLICE_BYTES
    options = {"kubernetes": {"format": "docker"}, "event_id": True}
    fast, slow = encoder(**options), encoder(**options)
    fast._piece_bytes = slow._piece_bytes = 20_000
    assert (fast._docker_block(block, 5) is None) == bool(last)
    fast = encoder(**options)
    fast._piece_bytes = 20_000
    assert outcome(fast.encode(block, 5)) == outcome(docker_line_by_line(slow, block, 5))
    assert fast.take_counts() == slow.take_counts()


_SD_BEFORE = re.compile(rf'(?P<sd>-|(?:\[(?:[^\]"\\]|\\.|"{_QUOTED}")*\])+)(?: (?P<message>.*))?$')
_SD_NOW = re.compile(_SYSLOG_5424.pattern[_SYSLOG_5424.pattern.index("(?P<sd>") :])


@settings(max_examples=2000, deadline=None, derandomize=True)
@given(st.text(alphabet='[]"\\ ab=-\n', max_size=24))
def test_structured_data_is_matched_as_before(text: str) -> None:
    """RFC 5424's structured data as runs between escapes and quoted values: the same
    matches as the per-character alternation it replaced."""
    before, now = _SD_BEFORE.match(text), _SD_NOW.match(text)
    assert (before and before.group("sd", "message")) == (now and now.group("sd", "message"))


def _access_fields_before(match: re.Match[str]) -> dict[str, Any]:
    """`access_fields` as it was written first (the reference for its faster form)."""
    fields = {k: v for k, v in match.groupdict().items() if v is not None and v != "-"}
    fields.pop("ident", None)
    if "status" in fields:
        fields["status"] = int(fields["status"])
    fields["body_bytes"] = int(fields.get("body_bytes", 0))
    request = _REQUEST.match(fields["request"]) if "request" in fields else None
    if request is not None:
        del fields["request"]
        fields.update({k: v for k, v in request.groupdict().items() if v is not None})
    extra = fields.pop("extra", "").strip()
    if extra:
        fields["extra"] = extra
    return fields


@settings(max_examples=1000, deadline=None, derandomize=True)
@given(
    line=access
    | st.builds(
        lambda parts: " ".join(parts),
        st.lists(
            st.sampled_from(["-", "a", '"-"', '"GET / HTTP/1.1"', "[t]", "200", " -"]), max_size=10
        ),
    )
)
def test_access_fields_are_what_they_were(line: str) -> None:
    match = _ACCESS.match(line)
    if match is not None:
        assert list(access_fields(match).items()) == list(_access_fields_before(match).items())


CRI_TIMES = [
    "2025-11-24T10:00:00.123456789Z",
    "2025-11-24T10:00:01.5Z",
    "2025-11-24T11:00:00.000000000+01:00",
    "2020-01-01T00:00:00.000000000Z",  # too late
    "garbage",
]
cri_line = st.builds(
    lambda time, stream, tag, message: f"{time} {stream} {tag}{message}",
    time=st.sampled_from(CRI_TIMES[:2]) | st.sampled_from(CRI_TIMES),
    stream=st.just("stdout") | st.sampled_from(["stdout", "stderr", "stdin"]),
    tag=st.sampled_from(["F", "F", "P"]) | st.sampled_from(["F", "P", "X"]),
    message=st.sampled_from([" hello", " seq=1 a b", " caf\u00e9", " ", "", "  ", " P F"]),
)
clean_cri_line = st.builds(
    lambda time, stream, tag, message: f"{time} {stream} {tag}{message}",
    time=st.sampled_from(CRI_TIMES[:3]),
    stream=st.just("stdout") | st.sampled_from(["stdout", "stderr"]),
    tag=st.sampled_from(["F", "F", "F", "P"]),
    message=st.sampled_from(
        [" hello", " seq=1 a b", " caf\u00e9", " ", "", " P F", " " + "x" * 20]
    ),
)
cri_other = st.sampled_from(
    ["", "not cri", "\ufeff2025-11-24T10:00:00Z stdout F bom", "x\r", '{"log":"a\\n"}', "y" * 3000]
)


@settings(
    max_examples=500, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
@given(
    lines=st.lists(clean_cri_line, min_size=1, max_size=10)
    | st.lists(cri_line, min_size=1, max_size=10)
    | st.lists(cri_line | cri_other, min_size=1, max_size=8),
    extra=st.sampled_from(
        [
            {},
            {"fields": {"env": "prod", "stream": "s"}},
            {"event_id": True},
            {"time_field": "message"},
            {"kubernetes": {"format": "cri", "partial_max_bytes": 12}},
        ]
    ),
    invalid=st.booleans(),
)
def test_cri_blocks_write_what_the_line_path_writes(
    lines: list[str], extra: dict[str, Any], invalid: bool
) -> None:
    block = "".join(line + "\n" for line in lines).encode()
    if invalid:
        block = block.replace(b"caf\xc3\xa9", b"caf\xe9")
    options = {"kubernetes": {"format": "cri"}, **extra}
    fast, slow = encoder(**options), encoder(**options)
    taken = fast._cri_block(block, 3) is not None
    event("block path" if taken else "line path")
    fast = encoder(**options)
    slow._cri = None  # the reference: record by record
    assert outcome(fast.encode(block, 3)) == outcome(slow.encode(block, 3))
    assert fast.take_counts() == slow.take_counts()
    assert fast.pending_offset == slow.pending_offset
    # what is held is released the same way
    assert outcome(fast.flush(force=True)) == outcome(slow.flush(force=True))


def test_a_block_of_cri_lines_with_joins_takes_the_block_path() -> None:
    lines = [
        "2025-11-24T10:00:00.123456789Z stdout P hel",
        "2025-11-24T10:00:00.223456789Z stdout F lo",
        "2025-11-24T10:00:00.323456789Z stderr F oops",
    ]
    block = "".join(line + "\n" for line in lines * 300).encode()
    enc = encoder(kubernetes={"format": "cri"})
    encoded = enc._cri_block(block, 0)
    assert encoded is not None
    assert encoded.pieces[0].data.startswith(
        b'{"message":"hello","stream":"stdout","timestamp":"2025-11-24T10:00:00.123Z"}\n'
        b'{"message":"oops","stream":"stderr","timestamp":"2025-11-24T10:00:00.323Z"}\n'
    )
    assert enc.take_counts() == {"partial_joined": 300}


def test_cri_records_completing_out_of_order_go_line_by_line() -> None:
    """A ``P`` on one stream, a whole line on the other, then the ``F``: the records complete
    out of file order, and a piece must end before every later piece's record."""
    lines = [
        "2025-11-24T10:00:00.1Z stdout P a" + "x" * 100,
        "2025-11-24T10:00:00.2Z stderr F b" + "y" * 100,
        "2025-11-24T10:00:00.3Z stdout F c",
        "2025-11-24T10:00:00.4Z stdout F d" + "z" * 100,
    ]
    block = "".join(line + "\n" for line in lines).encode()
    fast, slow = encoder(kubernetes={"format": "cri"}), encoder(kubernetes={"format": "cri"})
    fast._piece_bytes = slow._piece_bytes = 150
    assert fast._cri_block(block, 0) is None
    fast = encoder(kubernetes={"format": "cri"})
    fast._piece_bytes = 150
    slow._cri = None
    assert outcome(fast.encode(block, 0)) == outcome(slow.encode(block, 0))


def test_a_cri_fragment_past_partial_max_bytes_goes_line_by_line() -> None:
    lines = ["2025-11-24T10:00:00.1Z stdout P " + "x" * 20, "2025-11-24T10:00:00.2Z stdout F y"]
    block = "".join(line + "\n" for line in lines).encode()
    options = {"kubernetes": {"format": "cri", "partial_max_bytes": 12}}
    fast, slow = encoder(**options), encoder(**options)
    assert fast._cri_block(block, 0) is None
    slow._cri = None
    assert outcome(fast.encode(block, 0)) == outcome(slow.encode(block, 0))
    assert fast.take_counts() == slow.take_counts() == {"partial_flushed": 1}


def test_cri_fragments_joined_across_slices() -> None:
    """A ``P`` at the end of one slice finds its ``F`` in the next (`SLICE_BYTES`)."""
    lines = []
    for n in range(400):
        lines.append(f"2025-11-24T10:00:00.{n:03d}Z stdout P seq={n} " + "x" * 40)
        lines.append(f"2025-11-24T10:00:00.{n:03d}Z stdout F  end {n}")
        lines.append(f"2025-11-24T10:00:00.{n:03d}Z stderr F {'' if n % 9 else ' '}")
    block = "".join(line + "\n" for line in lines).encode()
    assert len(block) > 2 * SLICE_BYTES
    options = {"kubernetes": {"format": "cri"}, "event_id": True}
    fast, slow = encoder(**options), encoder(**options)
    fast._piece_bytes = slow._piece_bytes = 20_000
    assert fast._cri_block(block, 5) is not None
    fast = encoder(**options)
    fast._piece_bytes = 20_000
    slow._cri = None
    assert outcome(fast.encode(block, 5)) == outcome(slow.encode(block, 5))
    assert fast.take_counts() == slow.take_counts()


def test_cri_records_completing_out_of_order_across_slices_go_line_by_line() -> None:
    """A ``P`` in one slice whose ``F`` opens the next, with the other stream's records
    between them: the next slice's first record starts before the last one shipped."""
    head = "2025-11-24T10:00:00.1Z stdout P a\n"
    other = "2025-11-24T10:00:00.2Z stderr F " + "y" * 50 + "\n"
    between = (SLICE_BYTES - len(head)) // len(other)
    block = (head + other * between + "2025-11-24T10:00:00.3Z stdout F " + "c" * 80 + "\n").encode()
    assert len(block) - len("c" * 80) - 33 <= SLICE_BYTES < len(block)
    fast, slow = encoder(kubernetes={"format": "cri"}), encoder(kubernetes={"format": "cri"})
    fast._piece_bytes = slow._piece_bytes = 3000
    assert fast._cri_block(block, 0) is None
    fast = encoder(kubernetes={"format": "cri"})
    fast._piece_bytes = 3000
    slow._cri = None
    assert outcome(fast.encode(block, 0)) == outcome(slow.encode(block, 0))


@settings(
    max_examples=150, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck)
)
@given(
    lines=st.lists(access, min_size=150, max_size=300),
    odd=st.lists(st.tuples(st.integers(0, 300), other), max_size=3),
    crlf=st.booleans(),
    parser=st.sampled_from(["nginx", "apache"]),
)
def test_big_blocks_with_odd_lines_or_crlf_write_what_the_line_path_writes(
    lines: list[str], odd: list[tuple[int, str]], crlf: bool, parser: str
) -> None:
    """Blocks of several leaves (`LEAF_BYTES`): one odd line (one the parser does not match,
    a blank one, one too long) no longer sends the whole block line by line, it is halved
    until the odd lines are found; a block of CRLF lines is parsed as LF lines, its
    offsets moved back. Both must write what the line path writes."""
    for at, line in odd:
        lines.insert(at, line)
    end = "\r\n" if crlf else "\n"
    block = "".join(line + end for line in lines).encode()
    fast, slow = encoder(parser=parser), encoder(parser=parser)
    same_as_line_path(fast.encode(block, 3), line_by_line(slow, block, 3), block)
    assert fast.take_counts() == slow.take_counts()


def test_a_crlf_block_and_one_odd_line_take_the_block_path_for_the_rest() -> None:
    line = b'10.0.0.1 - bob [24/Nov/2025:10:00:00 +0000] "GET /a HTTP/1.1" 200 512 "-" "curl"'
    fast = encoder(parser="nginx")
    by_line = fast._by_line
    seen: list[bytes] = []

    def counted(part: bytes, start_offset: int) -> Encoded:
        seen.append(part)
        return by_line(part, start_offset)

    fast._by_line = counted  # type: ignore[method-assign]
    crlf = (line + b"\r\n") * 300
    same_as_line_path(fast.encode(crlf, 0), line_by_line(encoder(parser="nginx"), crlf, 0), crlf)
    assert not seen, "CRLF lines read a block at a time"
    odd = (line + b"\n") * 150 + b"-- not an access line --\n" + (line + b"\n") * 150
    assert sum(p.events for p in fast.encode(odd, 0).pieces) == 301
    assert len(seen) == 1 and len(seen[0]) <= LEAF_BYTES, "only the odd line's stretch"
