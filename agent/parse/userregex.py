"""The operator's patterns, run under a time limit.

Python's `re` backtracks and has no time limit: ``(a|aa)+$`` against sixty ``a`` and a ``!``,
or ``.*a.*b.*c.*d`` against a 16 KB line, runs for minutes, and the reader, every file with
it, waits (SPEC: no log line can stall a file). `agent.parse.backtracking` warns about the
usual shapes, but a warning can be ignored and a heuristic can miss one. So every pattern the
config gives (a ``regex`` parser's, a multiline ``start_pattern``) runs on the `regex`
package (mrab-regex), whose calls take a ``timeout`` and raise `TimeoutError` past it. The
built-in parsers stay on `re`: their patterns are ours, linear on any line
(tests/unit/test_attack_blocks.py), and cost no clock reads.

`regex.VERSION0` is `re`'s syntax and behaviour (the default, said out loud so that an inline
``(?V1)`` is the only way to the other one); the config is checked by both engines, so a
pattern is one `re` accepts and means what it means there (tests/parse/test_user_regex.py).

The time is C's ``clock()``, the process's CPU time, not the wall clock: a machine loaded by
other processes does not use the bound up, only the agent's own threads can.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final, TypeAlias

if TYPE_CHECKING:  # imported by the first `compile_user`: ~20 ms and ~2 MB a source without
    import regex  # a user pattern does not pay

UserPattern: TypeAlias = "regex.Pattern[str]"
UserMatch: TypeAlias = "regex.Match[str]"

_sre_parser: Any = getattr(re, "_parser")  # noqa: B009 - the pattern's parse tree
_REPEATS: Final = frozenset({"MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"})

LINE_TIMEOUT: Final = 0.2
"""CPU seconds one line's match may take. A normal line takes microseconds (the bench's
pattern: ~3 us), a 256 KiB line (``max_line_bytes``' default) under a linear pattern ~0.2 ms,
a 1 MB one a few ms: 0.2 s is ~40x the longest line's worst honest case, with the agent's
other threads' CPU counted in. A hostile line costs this, and `BLOCK_TIMEOUT` for each
scan that meets it on the way there, so even a file of nothing but such lines moves on at
several lines a second."""

BLOCK_TIMEOUT: Final = 0.05
"""CPU seconds one scan over a slice of a block may take (``SLICE_BYTES``, 16 KiB of lines:
~0.1 ms honestly). Past it the slice goes line by line, each line under `LINE_TIMEOUT`:
the same events, so this bound only has to be generous for speed's sake, and short: a
refused block is halved (`agent.encode.halves`) and each half that holds the hostile line
is scanned again, so it meets this bound about once per halving level (~6 for a 368 KB
read down to 8 KiB leaves). Measured on a 357 KB block of a user regex with 1, 8 and 45
such lines: 0.73, 3.7 and 14.6 CPU-s, where the same block line by line took 0.42, 1.8 and
9.2: about 0.3 s more a hostile line, ~0.5 s in all."""


class PatternTimeout(Exception):
    """A user pattern did not finish on a text within its bound."""

    def __init__(self, chars: int, seconds: float) -> None:
        super().__init__(chars, seconds)
        self.chars = chars
        self.seconds = seconds

    @property
    def detail(self) -> str:
        """What a dead letter says about it: the bound, the size, and what to do."""
        return (
            f"the parser's pattern did not finish within {self.seconds:g} CPU-s on this"
            f" {self.chars}-character line (catastrophic backtracking): make its repeats"
            " possessive (++, *+) or atomic ((?>...)), or bound them ({1,64})"
        )


MAX_UNROLLED: Final = 10_000
"""The most pattern items `regex` may write out for a pattern's required repeats. It compiles
``a{N}`` as N copies of ``a`` (`re` keeps a count): ``a{10000000}`` took 3.4 s and 2.6 GB,
``a{4294967294}`` never finished; 10,000 is ~4 MB and ~4 ms, far above a real pattern's
``\\d{4}`` or ``.{64}``."""


class UnsupportedPattern(ValueError):
    """A pattern `re` takes but the engine cannot run as `re` means it."""


class PatternTooLarge(UnsupportedPattern):
    """A pattern whose required repeats `regex` would write out past `MAX_UNROLLED` items."""

    def __init__(self, items: int) -> None:
        super().__init__(
            f"its repeats need {items:,} copies of their items (at most {MAX_UNROLLED:,}):"
            " use a smaller {n} or an open repeat ({n,})"
        )
        self.items = items


class PosixClass(UnsupportedPattern):
    """A pattern holding ``[:alpha:]`` in a set: a POSIX class to `regex`, the characters
    ``[:alph`` and ``]`` to `re` (which warns about it). The same config must not mean two
    things, so neither reading is guessed."""

    def __init__(self) -> None:
        super().__init__(
            "a set holds [:name:], which Python's re reads as characters and this engine as a"
            " POSIX class: write the class out ([a-zA-Z], \\s) or escape the bracket (\\[)"
        )


_POSIX_CLASS: Final = re.compile(r"\[:\^?[A-Za-z]+:\]")


def compile_user(pattern: str, *, multiline: bool = False) -> UserPattern:
    """`pattern` compiled as `re` would read it (`regex.VERSION0`), with ``re.M`` when
    `multiline`; raises `UnsupportedPattern` (`PatternTooLarge` and `PosixClass` before
    `regex` tries)."""
    items = unrolled_items(pattern)
    if items > MAX_UNROLLED:
        raise PatternTooLarge(items)
    if _POSIX_CLASS.search(pattern) is not None and _posix_class(pattern):
        raise PosixClass()
    import regex  # here, not above: see TYPE_CHECKING

    flags = regex.VERSION0 | (regex.MULTILINE if multiline else 0)
    try:
        return regex.compile(pattern, flags)
    except (regex.error, ValueError) as exc:  # ValueError: an inline (?V1) against VERSION0
        raise UnsupportedPattern(str(exc)) from None


def _posix_class(pattern: str) -> bool:
    """Whether a set of `pattern` holds ``[:name:]`` (``[[:alpha:]]``, ``[^[:space:]x]``): a
    scan of its sets as both engines delimit them (an escape is one item; ``]`` right after
    ``[`` or ``[^`` is a member)."""
    position, in_set = 0, False
    while position < len(pattern):
        char = pattern[position]
        if char == "\\":
            position += 2
            continue
        if in_set:
            if char == "]":
                in_set = False
            elif char == "[" and _POSIX_CLASS.match(pattern, position) is not None:
                return True
        elif char == "[":
            in_set = True
            position += 2 if pattern.startswith("^", position + 1) else 1
            if pattern.startswith("]", position):
                position += 1
            continue
        position += 1
    return False


def present_groups(pattern: UserPattern) -> Callable[[UserMatch], dict[str, Any]]:
    """A match's named groups that took part in it, in `re`'s ``groupdict()`` order: from
    ``groups()`` (one tuple) and the names' numbers, read once; ``groupdict()`` of a `regex`
    match costs ~1.5 us a line more, on the line and the block paths alike."""
    places = [(name, number - 1) for name, number in pattern.groupindex.items()]

    def present(match: UserMatch) -> dict[str, Any]:
        groups = match.groups()
        return {name: groups[place] for name, place in places if groups[place] is not None}

    return present


def unrolled_items(pattern: str) -> int:
    """How many items `pattern` becomes once each required repeat (``{n}``, ``{n,m}``: the
    ``n``) is written out, as `regex` compiles it; 0 for a pattern `re` does not parse
    (`regex` then says why it refuses it, or reads it as small)."""
    try:
        tree = _sre_parser.parse(pattern)
    except Exception:
        return 0
    return _items(tree)


def _items(items: Any) -> int:
    total = 0
    for op, value in items:
        name = str(op)
        if name in _REPEATS:
            low, _, body = value
            total += max(low, 1) * _items(body)
        elif name == "SUBPATTERN":
            total += 1 + _items(value[3])
        elif name == "BRANCH":
            total += 1 + sum(_items(branch) for branch in value[1])
        elif name == "ATOMIC_GROUP":
            total += 1 + _items(value)
        elif name in ("ASSERT", "ASSERT_NOT"):
            total += 1 + _items(value[1])
        elif name == "GROUPREF_EXISTS":
            total += 1 + sum(_items(branch) for branch in value[1:] if branch is not None)
        else:
            total += 1
    return total


def search_within(
    pattern: UserPattern, text: str, seconds: float = LINE_TIMEOUT
) -> UserMatch | None:
    """``pattern.search(text)``, or `PatternTimeout` when it takes longer than `seconds`."""
    try:
        return pattern.search(text, timeout=seconds)
    except TimeoutError:
        raise PatternTimeout(len(text), seconds) from None
