"""Parsed sources a block at a time (issue 13): the access-log parsers scan their pattern over
the whole block and build the events in one loop, and must write exactly what the line path
(`ParsedEncoder` record by record, the reference) writes: same events, pieces, offsets,
dead letters and counts, whatever the lines."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from agent.config import SourceConfig
from agent.encode import Encoded
from agent.encode.parsed import ParsedEncoder

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


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
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
    taken = fast._whole_block(block, 3)
    event("block path" if taken is not None else "line path")
    fast = encoder(parser=parser, **extra)
    assert outcome(fast.encode(block, 3)) == outcome(line_by_line(slow, block, 3))
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
        ["2025-11-24T10:00:00.123Z", "2025-11-24T10:00:00+01:00", "-", "2020-01-01T00:00:00Z"]
    ),
    sd=st.sampled_from(["-", '[ex@1 iut="3"]', '[a@1 k="v\\"]"][b@2]', "[open"]),
    message=st.sampled_from(["", " hello", " \ufeffbom", " x\r"]),
)
syslog_lines = st.one_of(SYSLOG_3164, SYSLOG_5424)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
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
    assert outcome(fast.encode(block, 3)) == outcome(line_by_line(slow, block, 3))
    assert fast.take_counts() == slow.take_counts()
