"""`splice_lines`: a suffix before every line's closing brace in one pass (issue 13), exactly as
`splice` writes each line, or None (the line path decides)."""

from __future__ import annotations

import json

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.encode.blocks import _join_at_braces
from agent.encode.cut import braces_close_lines, splice, splice_formatted, splice_lines
from agent.encode.times import ISO_FORMAT, epoch_millis, iso_args, iso_value, own_time

_values = st.recursive(
    st.none() | st.integers() | st.text(alphabet=' }{"\\ab\t', max_size=5),
    lambda children: (
        st.lists(children, max_size=2)
        | st.dictionaries(st.text(alphabet="}{ a", max_size=3), children, max_size=2)
    ),
    max_leaves=4,
)


@st.composite
def object_lines(draw: st.DrawFn) -> bytes:
    obj = draw(st.dictionaries(st.text(alphabet="}{ ab", max_size=3), _values, max_size=3))
    separators = draw(st.sampled_from([(",", ":"), (", ", ": "), (",", ":  ")]))
    text = json.dumps(obj, separators=separators)
    pad = draw(st.sampled_from(["", " ", "\t"]))
    where = draw(st.integers(0, 2))
    if where == 1:
        text = text[:-1] + pad + "}"  # whitespace before the brace
    elif where == 2:
        text += pad  # after it
    return text.encode()


@settings(max_examples=400, derandomize=True, deadline=None)
@given(
    st.lists(object_lines(), min_size=1, max_size=6),
    st.sampled_from([b',"t":"2025-11-25T00:00:00.000Z"', b',"x":"}"', b',"o":{"a":1}']),
)
def test_splice_lines_is_splice_on_every_line_or_none(lines: list[bytes], suffix: bytes) -> None:
    block = b"".join(line + b"\n" for line in lines)
    spliced = splice_lines(block, len(lines), suffix)
    if spliced is not None:
        assert spliced == b"".join(splice(line, suffix) + b"\n" for line in lines)


def test_flat_and_nested_lines_are_spliced() -> None:
    flat = b'{"a":1,"b":"x y"}\n' * 3
    nested = b'{"a":{"b":[{}]},"c":"}"}\n' * 3
    for block in (flat, nested):
        assert splice_lines(block, 3, b',"t":1') == block.replace(b"}\n", b',"t":1}\n')
    assert splice_lines(b'{"a":1 }\n', 1, b',"t":1') is None
    assert splice_lines(b"{}\n", 1, b',"t":1') is None


@settings(max_examples=400, derandomize=True, deadline=None)
@given(st.lists(object_lines(), min_size=1, max_size=6), st.sampled_from([b"", b',"e":"}"']))
def test_the_own_time_join_at_braces_is_splice_on_every_line_or_none(
    lines: list[bytes], fields: bytes
) -> None:
    block = b"".join(line + b"\n" for line in lines)
    values = [b'"%02d"' % n for n in range(len(lines))]
    head, tail = b',"timestamp":', fields + b"}\n"
    joined = _join_at_braces(block, len(lines), head, values, tail)
    if joined is not None:
        expected = [splice(line, head + v + fields) for line, v in zip(lines, values, strict=True)]
        assert joined == b"".join(e + b"\n" for e in expected)
    flat = b'{"a":1,"b":"x y"}\n' * 3
    assert _join_at_braces(flat, 3, head, values[:1] * 3, tail) is not None


@settings(max_examples=400, derandomize=True, deadline=None)
@given(
    st.lists(object_lines(), min_size=1, max_size=6),
    st.sampled_from([b"", b',"e":"50%%"', b',"e":"}"']),
    st.lists(st.sampled_from([b'"2025-11-25T00:00:00Z"', b"%s", b"%%", b"}"]), min_size=6),
)
def test_splice_formatted_is_splice_of_each_lines_own_values_or_none(
    lines: list[bytes], fields: bytes, values: list[bytes]
) -> None:
    """Each line gets its own value through one ``%`` over the block (a ``%`` in a line, in
    a value or in the static fields is written as it is)."""
    block = b"".join(line + b"\n" for line in lines)
    mine = values[: len(lines)]
    formatted = splice_formatted(block, len(lines), b',"t":%b' + fields, tuple(mine))
    if formatted is not None:
        suffixes = [b',"t":' + value + fields.replace(b"%%", b"%") for value in mine]
        want = [splice(line, suffix) + b"\n" for line, suffix in zip(lines, suffixes, strict=True)]
        assert formatted == b"".join(want)


def test_flat_lines_are_formatted_and_loose_braces_are_not() -> None:
    flat = b'{"a":"100%"}\n{"b":2}\n'
    assert splice_formatted(flat, 2, b',"t":"%b.%03dZ"', (b"x", 7, b"y", 123)) == (
        b'{"a":"100%","t":"x.007Z"}\n{"b":2,"t":"y.123Z"}\n'
    )
    for loose in (b'{"a":1} \n', b'{"a":1 }\n', b"{}\n", b'{"a":{"b":1}}\n', b'{"a":"}"}\n'):
        assert splice_formatted(loose, 1, b',"t":%b', (b"1",)) is None
    assert braces_close_lines(flat)


NEAR_EDGES = [
    946_684_799.9999,  # just before 2000, in seconds
    946_684_800.0,
    99_999_999_999.99998,  # seconds by magnitude, its millis round up to 1e14
    1e11,  # milliseconds by magnitude
    946_684_800_000.0,
    99_999_999_999_999.98,
    1e14,  # microseconds
    1764028800.9999999,  # the product rounds up to the next second
    1764028800.123,
    1.7e9,
    -1764028800.123,
    float("inf"),
    float("-inf"),
]
"""Floats at the edges of a unit, of the plausible range and of a second (one type a list,
as msgspec reads a block of one shape)."""


@settings(max_examples=600, derandomize=True, deadline=None)
@given(
    st.lists(st.integers(0, 2**64), min_size=1, max_size=5)
    | st.lists(st.floats(0, 1e15, allow_nan=False), min_size=1, max_size=5)
    | st.lists(st.integers(946_684_800_000, 4_102_444_800_000), min_size=1, max_size=5)
    | st.lists(st.floats(946_684_800, 4_102_444_800), min_size=1, max_size=5)
    | st.lists(st.sampled_from(NEAR_EDGES), min_size=1, max_size=5)
    | st.lists(st.sampled_from([1_764_028_800, 99_999_999_999, 10**11, 10**14]), min_size=1),
    st.booleans(),
)
def test_epoch_millis_are_each_numbers_own_time(
    numbers: list[int] | list[float], in_order: bool
) -> None:
    """The whole-list conversion gives each number's `own_time`, or None: never another
    time (it may refuse what `own_time` reads, a list of several units or floats past
    milliseconds; the line path decides those). In order (a log's lines mostly are: the
    ends are then taken for the earliest and the latest) or not."""
    if in_order:
        numbers.sort()
    found = epoch_millis(numbers)
    if found is None:
        return
    millis, earliest, latest, ordered = found
    assert (earliest, latest) == (min(millis), max(millis))
    assert ordered == (numbers == sorted(numbers))
    args = iso_args(millis, ordered)
    written = [ISO_FORMAT % pair for pair in zip(args[::2], args[1::2], strict=True)]
    # what the line path reads: orjson's number (an int written as such stays an int)
    assert [own_time(orjson.loads(orjson.dumps(n))) for n in numbers] == list(
        zip(written, millis, strict=True)
    )


@settings(max_examples=300, derandomize=True, deadline=None)
@given(
    st.lists(
        st.integers(0, 60).map(lambda k: 946_684_800_000 + 500 * k)  # on a second, or half
        | st.integers(946_684_800_000, 946_684_900_000),
        min_size=1,
        max_size=60,
    ),
    st.booleans(),
)
def test_iso_args_write_each_millis_as_iso_value_does(millis: list[int], ordered: bool) -> None:
    """In order (a run of lines a second, or too many short runs) or not."""
    if ordered:
        millis.sort()
    args = iso_args(millis)
    written = [ISO_FORMAT % pair for pair in zip(args[::2], args[1::2], strict=True)]
    assert written == list(map(iso_value, millis))
