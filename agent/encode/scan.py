"""Cheap scans of a block, in C: what the whole-block JSON path must check before it may vouch
for every line at once (nesting, UTF-8, row breaks), and the probe row type msgspec decodes."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from itertools import accumulate, repeat
from operator import sub
from typing import Annotated, Any, Final, Literal

import msgspec

MAX_NESTING_DEPTH: Final = 128
"""Arrays and objects nested deeper than this make a JSON line `too_deeply_nested` (dead
letter). Serde's default (Vector's JSON) is the same 128; orjson.dumps stops at 255, msgspec at
whatever is left of Python's recursion limit: with the bound checked first (`too_deep`), no
line the line path reads can reach either, whatever the stack depth of the caller. The
whole-block check reads a block with msgspec before it counts (`shallow`): a RecursionError
there sends the block line by line."""

TOO_DEEPLY_NESTED: Final = "too_deeply_nested"

ROW_SEPARATOR: Final = b"]\n,["
_OPENERS_ONLY: Final = bytes(b for b in range(256) if b not in b"[{\n")
"""What `bytes.translate` deletes to leave only a block's ``[``, ``{`` and newlines."""
_BRACKETS_ONLY: Final = bytes(b for b in range(256) if b not in b"[{]}")
_STEPS: Final = bytes.maketrans(b"[{]}", b"\x02\x02\x00\x00")  # minus one: +1 / -1
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"?')
"""A JSON string, or an unterminated one to the end of the line: one pass, no backtracking."""
_ROW_BREAK = re.compile(rb"\}[ \t]*\][ \t]*,[ \t]*\[[ \t]*\{")
"""A line holding this could start a row of its own in `_probe` (a literal first: the
search skips from one ``}`` to the next in C)."""


def unremarkable(block: bytes) -> bool:
    """Nothing in `block` that msgspec's whole-block check could pass and the line path
    refuse, as far as can be told before it runs: bytes that are not UTF-8 (msgspec does not
    check strings it skips) or a `_ROW_BREAK` (no ``]``, no row break: one memchr). Each a
    scan in C; False only costs the line-by-line path. The nesting bound is checked on what
    msgspec vouched for (`shallow`)."""
    if not block.isascii():
        try:
            block.decode("utf-8")
        except UnicodeDecodeError:
            return False
    return b"]" not in block or _ROW_BREAK.search(block) is None


def occurrences(data: bytes, byte: bytes) -> int:
    """How often `byte` (one byte) occurs in `data`, as ``data.count(byte)``: ``count``
    compares every byte in a plain loop, ``replace`` jumps from one to the next with memchr
    (about 4x faster where they are a line apart), for a transient copy of `data`."""
    return len(data) - len(data.replace(byte, b""))


def shallow(data: bytes, lines: int) -> bool:
    """No line of `data` has more than `MAX_NESTING_DEPTH` ``[``/``{`` (nesting can be no
    deeper than that count), for `data` of `lines` lines that msgspec's whole-block check
    read as one JSON object each (`JsonBlocks.probe`: rows as many as lines, no row break),
    so that every line holds at least its object's ``{``. No line then holds more than all
    the openers less one per other line: when that is within the bound (flat objects, the
    common case: a count or two in C), so is every line; otherwise each line's openers are
    counted (`lines_within` over the openers and newlines alone)."""
    openers = occurrences(data, b"{") - (lines - 1)
    if openers <= MAX_NESTING_DEPTH and b"[" in data:
        openers += occurrences(data, b"[")
    if openers <= MAX_NESTING_DEPTH:
        return True
    return lines_within(data.translate(None, _OPENERS_ONLY), MAX_NESTING_DEPTH)


def nesting_depth(text: bytes) -> int:
    """How deep arrays and objects nest in `text`, brackets in strings not counted: a scan
    in C (strings removed, brackets kept, a running sum), no recursion. For text that is not
    JSON the count is still a bound that depends on the bytes only."""
    brackets = _STRING.sub(b"", text).translate(None, _BRACKETS_ONLY).translate(_STEPS)
    return max(accumulate(map(sub, brackets, repeat(1))), default=0)


def too_deep(line: bytes) -> bool:
    """Deeper than `MAX_NESTING_DEPTH`; counted exactly only for a line with that many
    ``[``/``{`` (no line with fewer can be so deep)."""
    if line.count(b"[") + line.count(b"{") <= MAX_NESTING_DEPTH:
        return False
    return nesting_depth(line) > MAX_NESTING_DEPTH


BLANK_LINE = re.compile(rb"\n[ \t\x0b\x0c\r]*\n")  # a line of whitespace only


def renamable(names: Iterable[str]) -> bool:
    """Whether msgspec can read members under each of `names`: it refuses to rename a field
    to a name holding a quote, a backslash or a control character. JSON allows any key, so
    a source with such a time field or static field is read line by line instead (once, its
    encoder's construction raised, and the agent died at every start). Nor can it take a
    name that is not Unicode text (a lone surrogate)."""
    for name in names:
        if _UNRENAMABLE.search(name) is not None:
            return False
        try:
            name.encode()
        except UnicodeEncodeError:
            return False
    return True


_UNRENAMABLE: Final = re.compile(r'["\\\x00-\x1f]')


@lru_cache(maxsize=256)
def rows_decoder(
    time_field: str, field_names: tuple[str, ...], candidates: tuple[str, ...] = ()
) -> msgspec.json.Decoder[list[Any]]:
    """The decoder of `row_type` rows: built once per source shape, shared by its files'
    encoders (one per file) and reusable across them (it keeps no state between calls)."""
    row = row_type(time_field, list(field_names), list(candidates))
    return msgspec.json.Decoder(list[row])  # type: ignore[valid-type]


def row_type(time_field: str, field_names: list[str], candidates: list[str] | None = None) -> type:
    """``[object]``, one line's row, holding a struct with only what the whole-block check
    looks at: the time (`f0`, an RFC 3339 datetime or an epoch number: anything else fails
    the block, null too, at once, as the block path never takes one; UNSET when absent),
    the static field names (`f1`..., raw: a value is not read, as the line path forwards
    it; UNSET when absent) and the names the event's own time may be under when
    ``time_field`` is not set (`c1`..., the raw JSON value, UNSET when absent:
    `agent.encode.times`); other keys are validated, not built. Neither is tracked by the
    garbage collector: a million of them a second would only keep it busy."""
    candidates = candidates or []
    fields: list[tuple[str, Any, Any]] = [("f0", datetime | int | float, msgspec.UNSET)]
    fields += [(f"f{i}", msgspec.Raw, msgspec.UNSET) for i in range(1, len(field_names) + 1)]
    fields += [(f"c{i}", msgspec.Raw, msgspec.UNSET) for i in range(1, len(candidates) + 1)]
    names = [time_field, *field_names]
    rename = {f"f{i}": name for i, name in enumerate(names)}
    rename.update({f"c{i}": name for i, name in enumerate(candidates, start=1)})
    probe = msgspec.defstruct("Probe", fields, rename=rename, gc=False)
    return msgspec.defstruct(
        "Row", [("probe", probe)], array_like=True, forbid_unknown_fields=True, gc=False
    )


ABSENT: Final = Annotated[int, msgspec.Meta(ge=1, le=0)]
"""A type no JSON value has: a member of this type anywhere fails the whole decode."""
OwnKind = Literal["iso", "int", "float"]
TimeKind = Literal["iso", "int", "float", "text"]
"""How the time field is written: `OwnKind`, or text that is not RFC 3339
(`agent.encode.texttimes`)."""
_OWN_TYPES: Final[dict[str, Any]] = {"iso": str, "int": int, "float": float}
_TIME_TYPES: Final[dict[str, Any]] = {"iso": datetime, "int": int, "float": float, "text": str}


@dataclass(frozen=True, slots=True)
class BlockShape:
    """What every line of a block had in common, remembered for the file's next block: its
    rows are then read with a row type that requires it (`shape_rows_decoder`), so that the
    decode itself vouches for what the general row type leaves to a Python pass per column.

    `has_time`: the time field is in every line (written as `time_kind`: an RFC 3339
    datetime, epoch numbers, all ints or all floats, or text of one ordered shape), else in
    none.
    `present`: each static field is in every line (True) or in none (False).
    `candidate`: without the time field, the 1-based index of the own-time candidate every
    line has its time under (and none has one before it), written as `kind`; 0: no line has
    any candidate (each gets the read time)."""

    has_time: bool
    present: tuple[bool, ...] = ()
    candidate: int = 0
    kind: OwnKind = "iso"
    time_kind: TimeKind = "iso"


@lru_cache(maxsize=256)
def shape_rows_decoder(
    time_field: str, field_names: tuple[str, ...], candidates: tuple[str, ...], shape: BlockShape
) -> msgspec.json.Decoder[list[Any]]:
    """The decoder of rows of lines that all have `shape` (a line that has not fails the
    decode), built once per source and shape: each row ``[probe]`` (`shape_probe`), as
    `JsonBlocks.probe` lays the lines out."""
    row = msgspec.defstruct(
        "ShapedRow",
        [("probe", shape_probe(time_field, field_names, candidates, shape))],
        array_like=True,
        forbid_unknown_fields=True,
        gc=False,
    )
    return msgspec.json.Decoder(list[row])  # type: ignore[valid-type]


@lru_cache(maxsize=256)
def shape_lines_decoder(
    time_field: str, field_names: tuple[str, ...], candidates: tuple[str, ...], shape: BlockShape
) -> msgspec.json.Decoder[Any]:
    """The decoder of lines that all have `shape`, one `shape_probe` a line, read with
    ``decode_lines`` straight from the block: no row text to build, but msgspec takes any
    whitespace between values for a line break, so the caller must prove that each line holds
    one object (`JsonBlocks._flat_rows`)."""
    return msgspec.json.Decoder(shape_probe(time_field, field_names, candidates, shape))


@lru_cache(maxsize=256)
def shape_probe(
    time_field: str, field_names: tuple[str, ...], candidates: tuple[str, ...], shape: BlockShape
) -> type:
    """What a line of `shape` must hold. The probe holds the time (`f0`: a datetime or an
    epoch number of the shape's type, required, or `ABSENT`), the static fields (`f1`...: raw
    and required, or `ABSENT`), and without the time, the candidates before the one the time
    is under (`ABSENT`) and that one (`t`: required, a string for ISO (the line path writes
    the string, not its bytes), else an int or a float); later candidates are not looked at,
    as the line path stops at the first time."""
    required: list[tuple[str, Any]] = []
    absent: list[tuple[str, Any, Any]] = []
    names = {"f0": time_field}
    if shape.has_time:
        required.append(("f0", _TIME_TYPES[shape.time_kind]))
    else:
        absent.append(("f0", ABSENT, msgspec.UNSET))
    for index, (name, present) in enumerate(zip(field_names, shape.present, strict=True), 1):
        names[f"f{index}"] = name
        if present:
            required.append((f"f{index}", msgspec.Raw))
        else:
            absent.append((f"f{index}", ABSENT, msgspec.UNSET))
    if not shape.has_time:
        last = shape.candidate - 1 if shape.candidate else len(candidates)
        for index, name in enumerate(candidates[:last], start=1):
            names[f"c{index}"] = name
            absent.append((f"c{index}", ABSENT, msgspec.UNSET))
        if shape.candidate:
            names["t"] = candidates[shape.candidate - 1]
            required.append(("t", _OWN_TYPES[shape.kind]))
    return msgspec.defstruct(
        "ShapedProbe", [*required, *absent], rename=names, kw_only=True, gc=False
    )


def lines_within(block: bytes, limit: int) -> bool:
    """No line of `block` is longer than `limit`: a jump of about `limit` bytes per step."""
    position, size = 0, len(block)
    while position < size:
        newline = block.rfind(b"\n", position, position + limit + 1)
        if newline == -1:
            return False
        position = newline + 1
    return True
