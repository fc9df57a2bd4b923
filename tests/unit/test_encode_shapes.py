"""A file's next block read with its last block's shape (issue 13): the same output as the line
path, whatever the next block holds.

The JSON block path remembers what every line of a block had in common (`BlockShape`: the time
field or the candidate its own time is under, ISO or epoch, the static fields each line has or
none has) and reads the next block with a row type that requires it. A next block that differs
(another name, ISO among epochs, a time near an edge, a broken line) must fail that read and be
decided as any block is: these properties teach an encoder a shape first, then compare what it
makes of a hostile next block with the line path.
"""

from __future__ import annotations

import json

from hypothesis import HealthCheck, assume, event, example, given, settings
from hypothesis import strategies as st

from agent.config import SourceConfig
from agent.encode import Encoded, Encoder
from agent.encode.blocks import _flat_rows
from agent.encode.scan import BlockShape
from tests.support.pieces import events_and_offsets, pieces_keep_their_rules

NOW = 1_764_028_800.0  # 2025-11-25T00:00:00Z


def encoder(**options: object) -> Encoder:
    source = SourceConfig.model_validate({"name": "s", "include": ["/x/*.log"], **options})
    return Encoder(source, max_event_bytes=1_000_000, piece_bytes=256, now=lambda: NOW)


def outcome(encoded: Encoded) -> tuple[object, ...]:
    return (
        [(p.data, p.events, p.end_offset, list(p.offsets)) for p in encoded.pieces if p.events],
        encoded.pieces[-1].end_offset,
        encoded.rejected,
        encoded.blank,
    )


# Lines each of one shape: (its name for the time, a value of the kind the shape learns).
TEACHERS = {
    "timestamp": b'{"timestamp":"2025-11-24T00:00:00Z","a":1}',
    "event_time": b'{"event_time":"2025-11-24T00:00:00.123Z","a":1}',
    "@timestamp": b'{"a":"x","@timestamp":"2025-11-24T10:00:00+02:00"}',
    "time": b'{"time":1763942400.25,"a":1}',
    "ts": b'{"ts":1763942400123,"a":[1,2]}',
    "missing": b'{"a":1,"b":"c"}',
    "env": b'{"timestamp":"2025-11-24T00:00:00Z","env":"dev"}',
    "env-time": b'{"time":1763942400,"env":"dev"}',
    "timestamp-s": b'{"timestamp":1763942400,"a":1}',
    "timestamp-ms": b'{"a":"x","timestamp":1763942400123.5}',
    "env-timestamp-s": b'{"timestamp":1763942400,"env":"dev"}',
    "timestamp-text": b'{"timestamp":"2025-11-24 00:00:00,123","a":1}',
}
NAMES = ["timestamp", "event_time", "@timestamp", "time", "ts", "datetime", "env", "a"]
VALUES = [
    b'"2025-11-24T00:00:00Z"',
    b'"2025-11-24T00:00:00.123Z"',
    b'"2025-11-24T00:00:00.123456+02:00"',
    b'"2025-11-24T00:00:00"',
    b'"2025-11-24T00:00:00\\u005a"',
    b'"2025-10-26T12:00:00Z"',  # near the late edge
    b'"2025-11-26T00:00:00Z"',  # near the early edge
    b'"2033-01-01T00:00:00Z"',  # too early
    b'"2025-11-24 00:00:00,5"',
    b'"2025-11-24 00:00:00"',
    b'"2025-11-24T00:00:00.123"',
    b'"2025-13-24 00:00:00,123"',  # no month 13
    b'"2025-11-24 24:00:00,123"',
    b'"2025-10-26 12:00:00,000"',  # near the late edge
    b'"2025-11-24 00:00:00,123+01:00"',
    b'"garbage"',
    b'"100%s"',
    b"1763942400",
    b"1763942400.25",
    b"1763942400123",
    b"1763942400123.5",
    b"1763942400123456",
    b"1763942400123456789",
    b"17639424001234567890123",
    b"1761480000",  # near the late edge, in seconds
    b"1700000000",  # too late
    b"1900000000000",  # too early
    b"1e400",
    b"9" * 320,
    b"0.35",
    b"-1",
    b"true",
    b"null",
    b"{}",
    b'{"}":"%"}',
    b'""',
]
TAILS = [b"", b" ", b"\t", b"}", b"{", b"]", b'"', b"\xff", b"\r", b"}],[{", b"%"]


@st.composite
def next_lines(draw: st.DrawFn, teacher: bytes) -> bytes:
    """The teacher's line with its members' values, names, order or bytes changed."""
    members = json.loads(teacher)
    pairs = [(name.encode(), json.dumps(value).encode()) for name, value in members.items()]
    for _ in range(draw(st.integers(0, 2))):
        change = draw(st.integers(0, 3))
        at = draw(st.integers(0, len(pairs)))
        if change == 0 and pairs:  # another value
            at %= len(pairs)
            pairs[at] = (pairs[at][0], draw(st.sampled_from(VALUES)))
        elif change == 1:  # another member
            pairs.insert(at, (draw(st.sampled_from(NAMES)).encode(), draw(st.sampled_from(VALUES))))
        elif change == 2 and pairs:  # one left out
            pairs.pop(at % len(pairs))
        elif change == 3 and pairs:  # a name written twice
            at %= len(pairs)
            pairs.insert(at, (pairs[at][0], draw(st.sampled_from(VALUES))))
    line = b"{" + b",".join(b'"%s":%s' % pair for pair in pairs) + b"}"
    if draw(st.integers(0, 3)):
        return line  # still one object: the shaped read must decide it
    tail = draw(st.sampled_from(TAILS))
    where = draw(st.integers(0, len(line)))
    return line[:where] + tail + line[where:] if draw(st.booleans()) else line + tail


@st.composite
def taught_blocks(draw: st.DrawFn) -> tuple[str, bytes]:
    """A shape's name and a next block: the teacher's lines, one or two of them changed."""
    name = draw(st.sampled_from(sorted(TEACHERS)))
    teacher = TEACHERS[name]
    lines = [teacher] * draw(st.integers(1, 5))
    for _ in range(draw(st.integers(1, 2))):
        lines.insert(draw(st.integers(0, len(lines))), draw(next_lines(teacher)))
    return name, b"".join(line.replace(b"\n", b"") + b"\n" for line in lines)


OPTIONS = st.sampled_from([{}, {"fields": {"env": "prod"}}, {"fields": {"env": "100%"}}])


@settings(
    max_examples=1500, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
@given(taught=taught_blocks(), options=OPTIONS)
@example(  # a static field the shape says no line has
    ("timestamp", b'{"timestamp":"2025-11-24T00:00:00Z","a":1,"env":"x"}\n'),
    {"fields": {"env": "p"}},
)
@example(("event_time", b'{"event_time":"2025-11-24T00:00:00Z","ts":1763942400123}\n'), {})
@example(("ts", b'{"ts":1700000000000}\n'), {})  # an epoch too late
@example(  # a static field's own value beyond a double: the shaped read once forwarded it and
    # the line path refused it; both forward it now, as for any other member
    ("env", b'{"timestamp":"2025-11-24T00:00:00Z","env":1e400}\n'),
    {"fields": {"env": "prod"}},
)
@example(("timestamp-s", b'{"timestamp":1763942400}\n{"timestamp":1763942400.5}\n'), {})
def test_the_next_block_read_with_the_last_ones_shape_is_what_the_line_path_writes(
    taught: tuple[str, bytes], options: dict[str, object]
) -> None:
    name, block = taught
    fast, slow = encoder(**options), encoder(**options)
    first = (TEACHERS[name] + b"\n") * 3
    assert outcome(fast.encode(first, 0)) == outcome(slow._line_by_line(first, 0))
    shape, missing = fast._json_blocks.shape, fast._json_blocks.missing
    shaped = shape is not None and fast._json_blocks._shaped(block, 7, shape) is not None
    fast._json_blocks.missing = missing  # a look only
    event("shaped" if shaped else "not shaped")

    got, want = fast.encode(block, len(first)), slow._line_by_line(block, len(first))

    assert outcome(got) == outcome(want)
    assert fast.take_counts() == slow.take_counts()


SHAPES = {
    "timestamp": BlockShape(has_time=True),
    "event_time": BlockShape(has_time=False, candidate=4, kind="iso"),
    "@timestamp": BlockShape(has_time=False, candidate=1, kind="iso"),
    "time": BlockShape(has_time=False, candidate=2, kind="float"),
    "ts": BlockShape(has_time=False, candidate=3, kind="int"),
    "missing": BlockShape(has_time=False),
    "timestamp-s": BlockShape(has_time=True, time_kind="int"),
    "timestamp-ms": BlockShape(has_time=True, time_kind="float"),
    "timestamp-text": BlockShape(has_time=True, time_kind="text"),
}


def test_each_shape_is_learnt_and_its_next_block_read_with_it() -> None:
    """The property above is only worth something if the shaped path is taken: a block of
    each shape teaches it, and the next block of that shape is read with it alone."""
    for name, shape in SHAPES.items():
        fast, slow = encoder(), encoder()
        block = (TEACHERS[name] + b"\n") * 3
        fast.encode(block, 0)
        assert fast._json_blocks.shape == shape, name
        shaped = fast._json_blocks._shaped(block, len(block), shape)
        assert shaped is not None, name
        assert outcome(shaped) == outcome(slow._line_by_line(block, len(block)))


def test_static_fields_each_line_has_or_none_has_are_part_of_the_shape() -> None:
    fast = encoder(fields={"env": "prod", "team": "core"})
    fast.encode(b'{"timestamp":"2025-11-24T00:00:00Z","env":"dev"}\n' * 2, 0)
    assert fast._json_blocks.shape == BlockShape(has_time=True, present=(True, False))
    events = fast.encode(b'{"timestamp":"2025-11-24T00:00:00Z","env":"dev"}\n', 100)
    assert events.pieces[0].data == (
        b'{"timestamp":"2025-11-24T00:00:00Z","env":"dev","team":"core"}\n'
    )


def test_a_block_of_another_shape_is_read_as_any_block_and_teaches_its_own() -> None:
    fast = encoder()
    fast.encode(b'{"ts":1763942400123}\n' * 2, 0)
    assert fast._json_blocks.shape == SHAPES["ts"]
    mixed = b'{"ts":1763942400123}\n{"ts":"2025-11-24T00:00:00Z"}\n'
    events = fast.encode(mixed, 100)
    assert events.pieces[0].data == (
        b'{"ts":1763942400123,"timestamp":"2025-11-24T00:00:00.123Z"}\n'
        b'{"ts":"2025-11-24T00:00:00Z","timestamp":"2025-11-24T00:00:00Z"}\n'
    )
    assert fast._json_blocks.shape is None  # mixed: nothing in common to learn
    fast.encode(b'{"a":1}\n', 200)
    assert fast._json_blocks.shape == SHAPES["missing"]
    assert fast.take_counts() == {"time_missing": 1}


def test_iso_times_of_several_widths_keep_their_shape() -> None:
    """Go's RFC3339Nano trims trailing zeros: one block holds times of several widths."""
    fast, slow = encoder(), encoder()
    fast.encode(b'{"event_time":"2025-11-24T00:00:00.12Z"}\n', 0)
    block = b'{"event_time":"2025-11-24T00:00:00.1Z"}\n{"event_time":"2025-11-24T00:00:01Z"}\n'
    shaped = fast._json_blocks._shaped(block, 41, SHAPES["event_time"])
    assert shaped is not None
    assert outcome(shaped) == outcome(slow._line_by_line(block, 41))


# Where a flat line may be broken without changing its braces: after a member, after its
# opening brace, before its closing one; and what may be put there.
BREAKS = [b"\n", b"\n\n", b" \n", b"\n ", b"\n\t", b" \n "]


@st.composite
def broken_flat_blocks(draw: st.DrawFn) -> tuple[str, bytes]:
    """A shape's name and a next block of its teacher's lines, with newlines (and spaces)
    put between tokens, where ``decode_lines`` reads on as if nothing happened: an object
    spanning lines, a blank line, a line of spaces, leading whitespace. Every brace still
    closes its line, so the block is read straight from its bytes (`_flat_rows`)."""
    name = draw(st.sampled_from([n for n in sorted(TEACHERS) if n != "ts"]))  # "ts": a list
    block = bytearray((TEACHERS[name] + b"\n") * draw(st.integers(1, 4)))
    gaps = [i + 1 for i, byte in enumerate(block) if byte in b"{,:"]
    gaps += [i for i, byte in enumerate(block) if byte == ord("}")]
    for at in sorted(draw(st.lists(st.sampled_from(gaps), min_size=1, max_size=3)), reverse=True):
        block[at:at] = draw(st.sampled_from(BREAKS))
    return name, bytes(block)


@settings(max_examples=600, deadline=None, derandomize=True)
@given(taught=broken_flat_blocks(), options=OPTIONS)
@example(("missing", b'{"a":1,\n"b":"c"}\n{"a":1,"b":"c"}\n'), {})  # two lines, one object
@example(("env", b'{"timestamp":"2025-11-24T00:00:00Z",\n"env":"dev"}\n\n'), {})
@example(("event_time", b'\n{"event_time":"2025-11-24T00:00:00.123Z","a":1}\n'), {})
def test_lines_read_straight_from_the_block_are_counted_against_its_newlines(
    taught: tuple[str, bytes], options: dict[str, object]
) -> None:
    name, block = taught
    fast, slow = encoder(**options), encoder(**options)
    first = (TEACHERS[name] + b"\n") * 3
    fast.encode(first, 0)
    slow._line_by_line(first, 0)
    # text times are learnt only without static fields (`JsonBlocks._text_timed`)
    assume(name != "timestamp-text" or not options)
    assert fast._json_blocks.shape is not None

    got, want = fast.encode(block, len(first)), slow._line_by_line(block, len(first))

    assert outcome(got) == outcome(want)
    assert fast.take_counts() == slow.take_counts()


def test_flat_lines_to_splice_are_read_straight_from_the_block() -> None:
    """The property above proves something only if such blocks take that way."""
    for name in ("missing", "event_time", "time", "env"):
        fast, slow = encoder(fields={"team": "core"}), encoder(fields={"team": "core"})
        block = (TEACHERS[name] + b"\n") * 3
        fast.encode(block, 0)
        shape = fast._json_blocks.shape
        assert shape is not None, name
        decoded = _flat_rows(fast._json_blocks._shaped_lines, block)  # type: ignore[arg-type]
        assert decoded is not None and len(decoded[0]) == 3, name
        shaped = fast._json_blocks._shaped(block, len(block), shape)
        assert shaped is not None, name
        assert outcome(shaped) == outcome(slow._line_by_line(block, len(block)))


# ISO own times as msgspec decodes them to strings, hostile to text built from them.
ISO_STRINGS = [
    b'"2025-11-24T00:00:00.123Z"',
    b'"2025-11-24T00:00:00.123\\u005a"',  # escaped: the line path writes the string
    b'"2025-11-24T00:00:00\\/"',
    b'"2025-11-24T00:00:00.123Z\\",\\"2025-11-24T00:00:00.123Z"',  # one string, quotes in it
    b'"2025-11-24T00:00:00.123Z\\n2025-11-24T00:00:00.123Z"',  # one string, a newline in it
    b'"2025-11-24T00:00:00.123Z\\\\"',
    b'"\\ud800"',  # a lone surrogate
    b'"2025-11-24T00:00:00.1Z"',  # another width
    b'"2025-11-24T00:00:00.123+02:00"',
    b'"2025-11-24T00:00:00.123Z\\t"',
]


@settings(max_examples=300, deadline=None, derandomize=True)
@given(
    values=st.lists(st.sampled_from(ISO_STRINGS), min_size=1, max_size=4),
    options=OPTIONS,
)
@example([b'"2025-11-24T00:00:00.123Z\\",\\"2025-11-24T00:00:00.123Z"'], {})
def test_iso_own_times_read_as_strings_are_written_as_the_line_path_writes_them(
    values: list[bytes], options: dict[str, object]
) -> None:
    fast, slow = encoder(**options), encoder(**options)
    first = (TEACHERS["event_time"] + b"\n") * 3
    fast.encode(first, 0)
    slow._line_by_line(first, 0)
    shape = fast._json_blocks.shape
    assert shape is not None and (shape.candidate, shape.kind) == (4, "iso")
    block = b"".join(b'{"event_time":%b,"a":1}\n' % value for value in values)

    got, want = fast.encode(block, len(first)), slow._line_by_line(block, len(first))

    assert outcome(got) == outcome(want)
    assert fast.take_counts() == slow.take_counts()


def test_an_escaped_iso_own_time_keeps_the_shaped_path() -> None:
    """The line path writes the decoded string: an escape in the line is no reason to leave
    the shape (it was, while the block path copied the value's bytes)."""
    fast, slow = encoder(), encoder()
    fast.encode((TEACHERS["event_time"] + b"\n") * 2, 0)
    block = b'{"event_time":"2025-11-24T00:00:00.123\\u005a"}\n' * 2
    shaped = fast._json_blocks._shaped(block, 100, SHAPES["event_time"])
    assert shaped is not None
    assert outcome(shaped) == outcome(slow._line_by_line(block, 100))


@given(depth=st.sampled_from([127, 128, 129, 300]), name=st.sampled_from(["missing", "env"]))
@settings(max_examples=20, deadline=None, derandomize=True)
def test_arrays_nested_deep_in_flat_lines_are_refused_as_the_line_path_refuses_them(
    depth: int, name: str
) -> None:
    """A flat line (its only brace closing it) nests only arrays: read straight from the
    block, it is still held to the nesting bound."""
    fast, slow = encoder(fields={"team": "core"}), encoder(fields={"team": "core"})
    first = (TEACHERS[name] + b"\n") * 2
    fast.encode(first, 0)
    slow._line_by_line(first, 0)
    deep = b'{"deep":' + b"[" * depth + b"]" * depth + b"," + TEACHERS[name][1:] + b"\n"
    block = TEACHERS[name] + b"\n" + deep

    got, want = fast.encode(block, len(first)), slow._line_by_line(block, len(first))

    assert outcome(got) == outcome(want)


def timed(teacher: bytes, i: int) -> bytes:
    """The teacher's line with a time of its own: line `i`, `i` seconds later."""
    clock = b"T%02d:%02d:%02d" % (i // 3600, i // 60 % 60, i % 60)
    iso = teacher.replace(b"T00:00:00", clock).replace(b"T10:00:00", clock)
    return iso.replace(b"1763942400", b"%d" % (1763942400 + i))


def big_encoder(piece_bytes: int, **options: object) -> Encoder:
    source = SourceConfig.model_validate({"name": "s", "include": ["/x/*.log"], **options})
    return Encoder(source, max_event_bytes=1_000_000, piece_bytes=piece_bytes, now=lambda: NOW)


@settings(max_examples=40, deadline=None, derandomize=True)
@given(
    name=st.sampled_from(sorted(TEACHERS)),
    lines=st.integers(2000, 6000),
    piece_bytes=st.sampled_from([5000, 125_000, 400_000]),
    hostile=st.one_of(st.none(), st.tuples(st.floats(0, 1), st.sampled_from(VALUES + TAILS))),
    options=OPTIONS,
)
def test_blocks_of_many_chunks_and_pieces_are_what_the_line_path_writes(
    name: str,
    lines: int,
    piece_bytes: int,
    hostile: tuple[float, bytes] | None,
    options: dict[str, object],
) -> None:
    """Blocks as big as the tailer reads (hundreds of KB): read in several chunks
    (`DECODE_CHUNK`), spliced a chunk at a time, cut into several pieces; one line changed
    anywhere (a value or stray bytes at its end) or none."""
    fast, slow = big_encoder(piece_bytes, **options), big_encoder(piece_bytes, **options)
    teacher = TEACHERS[name]
    first = (teacher + b"\n") * 3
    fast.encode(first, 0)
    slow._line_by_line(first, 0)
    padded = [timed(teacher, i)[:-1] + b',"n":"' + b"x" * (i % 97) + b'"}' for i in range(lines)]
    if hostile is not None:
        where, change = hostile
        at = int(where * (lines - 1))
        if change in TAILS:
            padded[at] += change
        else:
            padded[at] = padded[at][:-1] + b',"timestamp":' + change + b"}"
    block = b"\n".join(padded) + b"\n"
    event("shaped" if fast._json_blocks.shape is not None else "no shape")

    got, want = fast.encode(block, len(first)), slow._line_by_line(block, len(first))

    # a block refused whole is halved (`agent.encode.halves`): pieces are cut at the halves'
    # bounds too, so the events and offsets are compared across them
    assert events_and_offsets(got) == events_and_offsets(want)
    if hostile is None:
        assert outcome(got) == outcome(want)
    pieces_keep_their_rules(got, piece_bytes)
    assert fast.take_counts() == slow.take_counts()


def test_a_time_field_of_epoch_numbers_is_read_a_block_at_a_time() -> None:
    """A time field that holds epoch numbers (pino's ``time``, zap's ``ts``, a ``timestamp``
    in milliseconds) once sent every block line by line: 27-71 ms/MB against 2 for ISO
    times. The numbers are checked against the window by their least and greatest (one
    resolution: the same order as their times), and the lines forwarded as written."""
    for options, line in [
        ({"time_field": "ts"}, b'{"level":"info","ts":1763942400.123,"msg":"m"}'),
        ({"time_field": "time"}, b'{"level":30,"time":1763942400123,"msg":"m"}'),
        ({}, b'{"timestamp":1763942400,"msg":"m"}'),
        ({"fields": {"env": "prod"}}, b'{"timestamp":1763942400123456,"msg":"m"}'),
    ]:
        fast, slow = encoder(**options), encoder(**options)
        block = line + b"\n" + line.replace(b"00.123", b"01.5").replace(b"0123", b"1123") + b"\n"
        assert fast._json_block(block, 0) is not None, options
        assert outcome(fast.encode(block, 0)) == outcome(slow._line_by_line(block, 0))
        shape = fast._json_blocks.shape
        assert shape is not None and shape.has_time and shape.time_kind != "iso", options
        assert fast._json_blocks._shaped(block, len(block), shape) is not None, options


def test_epoch_times_near_an_edge_or_of_two_resolutions_go_line_by_line() -> None:
    late = b'{"timestamp":1761480000}\n'  # a day and a bit inside the late edge: near it
    too_late = b'{"timestamp":1700000000}\n'
    seconds_and_millis = b'{"timestamp":1763942400}\n{"timestamp":1763942400123}\n'
    negative = b'{"timestamp":-1763942400}\n'
    huge = b'{"timestamp":%d}\n' % 10**400
    for block in [late, too_late, seconds_and_millis, negative, huge, too_late + late]:
        fast, slow = encoder(), encoder()
        assert fast._json_block(block, 0) is None, block
        assert outcome(fast.encode(block, 0)) == outcome(slow._line_by_line(block, 0))


def test_a_time_field_written_as_text_of_one_ordered_shape_is_read_a_block_at_a_time() -> None:
    """python-json-logger's ``asctime`` (``2025-11-24 00:00:00,123``) and the like: read by
    the line path, not by msgspec as a datetime; such a file went line by line (28 ms/MB)."""
    lines = [
        b'{"asctime":"2025-11-24 00:%02d:%02d,%03d","levelname":"INFO","message":"m"}'
        % (i // 60, i % 60, i)
        for i in range(600)
    ]
    block = b"\n".join(lines) + b"\n"
    fast, slow = encoder(time_field="asctime"), encoder(time_field="asctime")
    assert fast._json_block(block, 0) is not None
    assert outcome(fast.encode(block, 0)) == outcome(slow._line_by_line(block, 0))
    assert fast._json_blocks.shape == BlockShape(has_time=True, time_kind="text")
    assert fast._json_blocks._shaped(block, len(block), fast._json_blocks.shape) is not None


def test_text_times_of_several_shapes_or_with_offsets_or_invalid_go_line_by_line() -> None:
    for values in [
        [b"2025-11-24 00:00:00,123", b"2025-11-24T00:00:01,123"],  # two shapes
        [b"2025-11-24 00:00:00,1+01:00", b"2025-11-24 00:00:00,1+02:00"],  # offsets
        [b"2025-11-24 00:00:00,123", b"2025-02-30 00:00:00,123"],  # no such day
        [b"2025-10-26 12:00:00,000", b"2025-11-24 00:00:00,000"],  # near the late edge
        [b"24/Nov/2025:00:00:00 +0000", b"24/Nov/2025:00:00:01 +0000"],  # not year first
    ]:
        block = b"".join(b'{"timestamp":"%s","n":1}\n' % value for value in values)
        fast, slow = encoder(), encoder()
        assert fast._json_block(block, 0) is None, values
        assert outcome(fast.encode(block, 0)) == outcome(slow._line_by_line(block, 0))
