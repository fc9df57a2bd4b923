"""A block in a charset other than UTF-8 -> its lines as text, each with its offset in the file.

The line path decodes each line on its own (`Assembler._text`): a Python step per line, about
25 ms of CPU per MB where UTF-8 text costs 1.5. A single-byte charset (latin-1,
windows-1252, ...) maps each byte to one character and only the byte 0x0A to a newline, so the
whole block decodes in one call to the same text, the same invalid bytes counted, and each
line's offset is where its bytes start in the block (not in the UTF-8 it becomes, where a
``é`` takes two). UTF-16/32 lines are cut by `WideFramer.frame_block`. What the line path then
does to each line's text (a leading BOM stripped and counted, one CR before the newline
dropped) is done to the lines here, so the block paths see the records the line path sees.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from itertools import accumulate, repeat
from operator import add, methodcaller, mul

from agent.parse.charset import BOM, WideBlock, WideFramer, decode

_STARTS_WITH_BOM = methodcaller("startswith", BOM)


@dataclass(frozen=True, slots=True)
class TextLines:
    """A block's records as the line path reads them, before any is built.

    `lines[i]` starts at `starts[i]` in the file; `starts` has one more, where the block ends
    (the next line starts). `invalid` bytes became U+FFFD, `boms` lines lost a leading BOM;
    `wide` is the framer's state after the block, when it came from one."""

    lines: list[str]
    starts: list[int]
    invalid: int
    boms: int
    wide: WideBlock | None = None


@cache
def single_byte(charset: str) -> bool:
    """Whether `charset` decodes every byte alone to one character (or one error), the byte
    0x0A and only it to a newline, and a string of bytes to the string of their characters:
    then a block decodes to its lines' texts joined, errors included."""
    if charset.replace("_", "-").startswith("utf"):
        return False
    try:
        table = bytes(range(256)).decode(charset, "replace")
        alone = [bytes([byte]).decode(charset, "replace") for byte in range(256)]
    except (LookupError, UnicodeError, ValueError, TypeError):
        return False
    return (
        len(table) == 256 and list(table) == alone and table.count("\n") == 1 and alone[10] == "\n"
    )


def single_byte_lines(block: bytes, start_offset: int, charset: str) -> TextLines:
    """The lines of `block` (whole lines at `start_offset`) in a `single_byte` charset: each
    character one byte, so each line's offset counts the characters before it."""
    text, invalid = decode(block, charset)
    return records(text, start_offset, 1, None, invalid)


def wide_lines(framer: WideFramer, block: bytes, start_offset: int) -> TextLines | None:
    """The lines of `block` in `framer`'s wide charset, None when it cannot tell them at once
    (`WideFramer.frame_block`); the framer is left as it was: `framer.take(lines.wide)` once
    they are used."""
    framed = framer.frame_block(block, start_offset)
    if framed is None:
        return None
    unit = 4 if framed.charset.startswith("utf-32") else 2
    astral = unit == 2 and len(framed.text) * 2 != framed.end - framed.start
    found = records(framed.text, framed.start, unit, framed.charset if astral else None, 0)
    if found.starts[-1] != framed.end:
        return None  # cannot be: the lines are what was decoded
    return TextLines(found.lines, found.starts, 0, found.boms, framed)


def records(text: str, start_offset: int, unit: int, astral: str | None, invalid: int) -> TextLines:
    """`text` (lines each ending in a newline, the first at `start_offset`, each character
    `unit` bytes, or measured in charset `astral` when some are not) as `Assembler._text`
    makes each line: a leading BOM stripped (and counted), then one CR before its end."""
    lines = text.split("\n")
    lines.pop()
    if astral is not None:  # characters UTF-16 writes in two units: each line measured
        sizes: Iterable[int] = map(len, map(methodcaller("encode", astral), lines))
    else:
        sizes = map(mul, map(len, lines), repeat(unit))
    starts = list(accumulate(map(add, sizes, repeat(unit)), initial=start_offset))
    if "\r" in text:
        lines = text.replace("\r\n", "\n").split("\n")
        lines.pop()
    boms = 0
    if BOM in text:
        boms = sum(map(_STARTS_WITH_BOM, lines))
        if boms:
            lines = [line[1:] if line.startswith(BOM) else line for line in lines]
    return TextLines(lines, starts, invalid, boms)
