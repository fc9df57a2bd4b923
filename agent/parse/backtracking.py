"""Patterns that can take exponential time on a line: warned about, bounded when run.

``(a+)+$`` against thirty ``a`` and a ``!`` tries every way of splitting the ``a`` between the
two repeats (2^30) before it fails. Python's `re` has no time limit, so such a pattern the
operator writes once let a line someone else writes stop the reader for minutes, every file
with it; the user's patterns now run under a CPU-time bound (`agent.parse.userregex`), and the
line is given up on past it, but every such line still costs the bound, every file waiting.
The classic shape is an unbounded repeat inside another (``(\\w+\\s?)*``, ``(.*)*``,
``(\\d+)*``). `check` and `run` warn about those, naming the key; they do not refuse them (the
test is by shape, so it can be wrong both ways), and an atomic group or a possessive repeat
(``(?>...)``, ``++``: Python 3.11) is the fix it suggests.
"""

from __future__ import annotations

import re
from typing import Any, Final

from agent.parse.userregex import LINE_TIMEOUT

_sre_parser: Any = getattr(re, "_parser")  # noqa: B009 - the pattern's parse tree
_MAXREPEAT: Final = getattr(re, "_constants").MAXREPEAT  # noqa: B009 - "unbounded"
_BACKTRACKING: Final = frozenset({"MAX_REPEAT", "MIN_REPEAT"})

ADVICE: Final = (
    "an unbounded repeat inside another ((\\w+\\s?)*, (.*)*): a line that almost matches can"
    f" take exponential time, cut off after {LINE_TIMEOUT:g} CPU-s (a parser's line is"
    " dead-lettered as parse_timeout) while every file waits; make the inner or outer repeat"
    " possessive (++, *+) or atomic ((?>...)), or bound it ({1,64})"
)


def may_backtrack_badly(pattern: str) -> bool:
    """Whether `pattern` holds an unbounded, backtracking repeat inside another: False for
    a pattern that does not parse here (the config's own check reports that)."""
    try:
        tree = _sre_parser.parse(pattern)
    except Exception:
        return False
    return _nested(tree, inside=False)


def _nested(items: Any, *, inside: bool) -> bool:
    for op, value in items:
        name = str(op)
        if name in _BACKTRACKING:
            _, high, body = value
            unbounded = high == _MAXREPEAT
            if (unbounded and inside) or _nested(body, inside=inside or unbounded):
                return True
        elif any(_nested(child, inside=inside) for child in _children(name, value)):
            return True
    return False


def _children(name: str, value: Any) -> list[Any]:
    """The sub-patterns a node backtracks into; none for an atomic group or a possessive
    repeat (they give nothing back)."""
    if name == "SUBPATTERN":
        return [value[3]]
    if name == "BRANCH":
        return list(value[1])
    if name in ("ASSERT", "ASSERT_NOT"):
        return [value[1]]
    return []
