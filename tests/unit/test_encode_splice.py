"""`splice_lines`: a suffix before every line's closing brace in one pass (issue 13), exactly as
`splice` writes each line, or None (the line path decides)."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from agent.encode.blocks import _join_at_braces
from agent.encode.cut import splice, splice_lines

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
