"""The user's patterns run on the `regex` package (`agent.parse.userregex`, for its time
limit) but are written, checked and documented as Python `re` patterns: every pattern the
tests, the bench and the docs use finds the same match, with the same groups, on either
engine; a pattern only one engine takes, or that the two read differently (a POSIX class,
``[[:alpha:]]``: characters to `re`), is refused at its key, as is one `regex` would write
out too large to compile (``a{4294967294}`` never finished: `check` hung)."""

from __future__ import annotations

import re
import warnings
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from agent.parse.settings import SourceParsing
from agent.parse.userregex import MAX_UNROLLED, compile_user, present_groups, unrolled_items
from tests.parse.test_backtracking import FINE
from tests.unit.test_parsed_blocks import REGEXES

BENCH = r"^(?P<time>\S+) (?P<message>seq=\d+ (?P<level>[A-Z]+) (?P<service>\S+) .*)$"
OTHERS = [
    BENCH,
    r"^(?P<time>\S+ \S+ [+-]\d\d:\d\d) \[(?P<level>\w+)\] (?P<message>.*)$",
    r"^(?P<level>[A-Z]+) (?P<msg>.*)$",
    r"^(?![\t ]|Caused by:)",
    r"^\d{4}-\d{2}-\d{2} ",
    r"(?P<x>a)??",
    r"(?P<a>a)(?P=a)|(?P<b>b)",
    r"(?P<word>[[]+)",  # a "[" first in a set: a FutureWarning, the same set to both
    r"(?P<c>[]:alph]+)",
    r"(?x) (?P<k> \w+ ) = (?P<v> \S* )",
    r"(?P<x>\w++)(?>\s*)(?P<y>\d*+)",
]
PATTERNS = [*REGEXES, *FINE, *OTHERS]
LINES = st.text(alphabet='aAbxyzINFOWR0129-:.+ \t[]"=,_T/é', max_size=40) | st.sampled_from(
    [
        "2025-11-24T10:00:00.123Z seq=1 INFO checkout GET /cart",
        "2025-11-24 10:00:00.123 +01:00 [WARN] disk",
        "Caused by: x",
        "\tat Foo.bar",
        "aa",
        "key = value",
        "[:alph]]]",
        "[[ab",
    ]
)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(pattern=st.sampled_from(PATTERNS), line=LINES)
def test_both_engines_find_the_same_match_and_groups(pattern: str, line: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # "possible nested set": [[:alpha:]]
        expected = re.compile(pattern).search(line)
    found = compile_user(pattern).search(line)
    if expected is None:
        assert found is None
        return
    assert found is not None
    assert (found.span(), found.groupdict()) == (expected.span(), expected.groupdict())
    fields = present_groups(compile_user(pattern))(found)
    assert list(fields.items()) == [
        (k, v) for k, v in expected.groupdict().items() if v is not None
    ]


@pytest.mark.parametrize(
    ("options", "key", "words"),
    [
        (
            {"parser": {"type": "regex", "pattern": r"(?P<a>a{4294967294})"}},
            "parser.pattern",
            "4,294,967,295 copies",
        ),
        (
            {"multiline": {"start_pattern": r"^(?:\d{1000}){1000}"}},
            "multiline.start_pattern",
            "1,000,001 copies",
        ),
        (
            {"parser": {"type": "regex", "pattern": r"(?P<a>\p{L})|(?P<a>x)"}},
            "parser.pattern",
            "invalid regular expression",  # re refuses what regex takes
        ),
        (
            {"parser": {"type": "regex", "pattern": r"(?P<a>[^[:space:]]+)"}},
            "parser.pattern",
            "POSIX class",
        ),
        (
            {"multiline": {"start_pattern": r"^[x[:digit:]]"}},
            "multiline.start_pattern",
            "POSIX class",
        ),
    ],
    ids=["huge-repeat", "nested-repeats", "re-refuses", "posix-class", "posix-class-start"],
)
def test_a_pattern_the_engine_cannot_run_is_refused_at_its_key(
    options: dict[str, Any], key: str, words: str
) -> None:
    with pytest.raises(ValidationError) as raised:
        SourceParsing.model_validate(options)
    [error] = raised.value.errors()
    assert ".".join(map(str, error["loc"])) == key
    assert words in error["msg"]


def test_ordinary_repeats_are_far_below_the_bound() -> None:
    assert unrolled_items(r"^(?P<ip>\d{1,3}(?:\.\d{1,3}){3}) (?P<d>\d{4}-\d{2}-\d{2})") < 100
    assert unrolled_items(r"(?P<pad>.{64})") < MAX_UNROLLED
    assert unrolled_items(r"a{10001}") > MAX_UNROLLED
