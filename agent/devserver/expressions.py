"""Polaris input expressions (the job's `mappings`): a tokenizer and a recursive-descent
parser that compile an expression into a Python closure over one input row. No `eval`.

Supported: quoted field references (`"user"`, also bare `user`), string literals (`'x'`),
numbers, NULL/TRUE/FALSE, CURRENT_TIMESTAMP, `+ - * /`, `||`, and the functions
TIME_PARSE(expr[, format[, timezone]]), MILLIS_TO_TIMESTAMP(expr), CAST(expr AS type),
COALESCE(...), NVL(a, b), LOWER(s), UPPER(s), CONCAT(...). As in Druid SQL, a function that
cannot make sense of its input returns NULL rather than failing the row.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from enum import Enum
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import orjson

from agent.devserver.errors import ExpressionError

Row = Mapping[str, Any]

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MILLISECOND = timedelta(milliseconds=1)


@dataclass(frozen=True, slots=True, order=True)
class Timestamp:
    """A point in time as Druid holds it: milliseconds since the epoch, UTC."""

    millis: int

    def iso(self) -> str:
        """ISO 8601 with millisecond precision and `Z`, which sorts like the time itself."""
        seconds, millis = divmod(self.millis, 1000)
        return f"{_second_prefix(seconds)}{millis:03d}Z"


@lru_cache(maxsize=8192)
def _second_prefix(seconds: int) -> str:
    """`YYYY-MM-DDTHH:MM:SS.` of a second; cached because events cluster in time."""
    return (EPOCH + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%S.")


class ValueType(Enum):
    """The type an expression yields; decides the SQLite column type of a mapping."""

    STRING = "string"
    LONG = "long"
    DOUBLE = "double"
    TIMESTAMP = "timestamp"
    JSON = "json"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class Compiled:
    """A compiled expression: call `evaluate(row)`; `fields` lists the input fields it reads."""

    evaluate: Callable[[Row], Any]
    type: ValueType
    fields: frozenset[str] = frozenset()
    literal: bool = False
    text: str = field(default="", compare=False)


# --------------------------------------------------------------------------- conversions


def to_string(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, Timestamp):
        return value.iso()
    return orjson.dumps(value).decode()


def to_long(value: Any) -> int | None:
    if value is None or isinstance(value, bool):
        return None if value is None else int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if value == value and abs(value) != float("inf") else None
    if isinstance(value, Timestamp):
        return value.millis
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            return to_long(to_double(value))
    return None


def to_double(value: Any) -> float | None:
    if value is None or isinstance(value, dict | list):
        return None
    if isinstance(value, Timestamp):
        return float(value.millis)
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def to_timestamp(value: Any) -> Timestamp | None:
    if value is None or isinstance(value, Timestamp):
        return value
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return Timestamp(int(value))
    if isinstance(value, str):
        return parse_iso(value, UTC)
    return None


def _millis(moment: datetime) -> int:
    return (moment - EPOCH) // _MILLISECOND


def parse_iso(text: str, zone: tzinfo) -> Timestamp | None:
    """ISO 8601 (`2022-04-16T00:46:58.771Z`, a date, or with a space); naive means `zone`."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
    return Timestamp(_millis(moment))


_JODA_TOKENS: list[tuple[str, str]] = [
    ("yyyy", "%Y"),
    ("YYYY", "%Y"),
    ("yy", "%y"),
    ("MMMM", "%B"),
    ("MMM", "%b"),
    ("MM", "%m"),
    ("M", "%m"),
    ("dd", "%d"),
    ("d", "%d"),
    ("HH", "%H"),
    ("H", "%H"),
    ("hh", "%I"),
    ("h", "%I"),
    ("mm", "%M"),
    ("m", "%M"),
    ("ss", "%S"),
    ("s", "%S"),
    ("SSSSSS", "%f"),
    ("SSS", "%f"),
    ("SS", "%f"),
    ("S", "%f"),
    ("a", "%p"),
    ("ZZ", "%z"),
    ("Z", "%z"),
    ("EEEE", "%A"),
    ("EEE", "%a"),
    ("DDD", "%j"),
    ("D", "%j"),
]


def joda_to_strptime(pattern: str) -> str:
    """Translate the common Joda-Time pattern letters to a `strptime` format.

    A pattern that already contains `%` is taken to be a strptime format as it is.
    """
    if "%" in pattern:
        return pattern
    out: list[str] = []
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if char == "'":
            end = pattern.find("'", i + 1)
            if end < 0:
                raise ExpressionError(f"unterminated quote in time format {pattern!r}")
            out.append(pattern[i + 1 : end] or "'")
            i = end + 1
            continue
        for token, directive in _JODA_TOKENS:
            if pattern.startswith(token, i):
                out.append(directive)
                i += len(token)
                break
        else:
            if char.isalpha():
                raise ExpressionError(f"unsupported letter {char!r} in time format {pattern!r}")
            out.append(char)
            i += 1
    return "".join(out)


def _time_parser(pattern: str | None, zone: tzinfo) -> Callable[[Any], Timestamp | None]:
    if pattern is None or pattern.lower() == "iso":

        def iso(value: Any) -> Timestamp | None:
            return parse_iso(value, zone) if isinstance(value, str) else None

        return iso
    fmt = joda_to_strptime(pattern)

    def formatted(value: Any) -> Timestamp | None:
        if not isinstance(value, str):
            return None
        try:
            moment = datetime.strptime(value.strip(), fmt)
        except ValueError:
            return None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=zone)
        return Timestamp(_millis(moment))

    return formatted


def _zone(name: str) -> tzinfo:
    if name.upper() in ("UTC", "Z", "ETC/UTC"):
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ExpressionError(f"unknown time zone {name!r}") from None


# --------------------------------------------------------------------------- tokenizer


@dataclass(frozen=True, slots=True)
class Token:
    kind: str  # "field", "string", "number", "ident", "op", "end"
    text: str
    position: int


_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<field>"(?:[^"]|"")*")
  | (?P<string>'(?:[^']|'')*')
  | (?P<number>(?:\d+\.\d*|\.\d+|\d+)(?:[eE][+-]?\d+)?)
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<op>\|\||[(),+\-*/])
    """,
    re.VERBOSE,
)


def tokenize(text: str) -> list[Token]:
    """Split an expression into tokens; raises ExpressionError at the first stray character."""
    tokens: list[Token] = []
    position = 0
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None:
            if text[position] in "\"'":
                raise ExpressionError(f"unterminated quote at position {position} in {text!r}")
            raise ExpressionError(
                f"unexpected character {text[position]!r} at position {position} in {text!r}"
            )
        kind = match.lastgroup or ""
        raw = match.group()
        if kind == "field":
            tokens.append(Token("field", raw[1:-1].replace('""', '"'), position))
        elif kind == "string":
            tokens.append(Token("string", raw[1:-1].replace("''", "'"), position))
        elif kind != "space":
            tokens.append(Token(kind, raw, position))
        position = match.end()
    tokens.append(Token("end", "", len(text)))
    return tokens


# --------------------------------------------------------------------------- parser

_CAST_TYPES: dict[str, ValueType] = {
    **dict.fromkeys(("VARCHAR", "STRING", "CHAR", "TEXT"), ValueType.STRING),
    **dict.fromkeys(
        ("BIGINT", "INTEGER", "INT", "SMALLINT", "TINYINT", "LONG", "BOOLEAN"), ValueType.LONG
    ),
    **dict.fromkeys(("DOUBLE", "FLOAT", "REAL", "DECIMAL"), ValueType.DOUBLE),
    "TIMESTAMP": ValueType.TIMESTAMP,
}

_CONVERTERS: dict[ValueType, Callable[[Any], Any]] = {
    ValueType.STRING: to_string,
    ValueType.LONG: to_long,
    ValueType.DOUBLE: to_double,
    ValueType.TIMESTAMP: to_timestamp,
}


def _constant(value: Any, value_type: ValueType, text: str) -> Compiled:
    return Compiled(lambda _row: value, value_type, literal=True, text=text)


class _Parser:
    """Recursive descent over the token list; each method returns a Compiled node."""

    def __init__(self, text: str) -> None:
        self._text = text
        self._tokens = tokenize(text)
        self._index = 0

    def parse(self) -> Compiled:
        node = self._concat()
        token = self._peek()
        if token.kind != "end":
            self._fail(f"unexpected {token.text!r}", token)
        return node

    # -- helpers
    def _peek(self) -> Token:
        return self._tokens[self._index]

    def _next(self) -> Token:
        token = self._tokens[self._index]
        self._index += 1
        return token

    def _accept_op(self, *ops: str) -> str | None:
        token = self._peek()
        if token.kind == "op" and token.text in ops:
            self._index += 1
            return token.text
        return None

    def _expect_op(self, op: str) -> None:
        if self._accept_op(op) is None:
            token = self._peek()
            self._fail(f"expected {op!r}, found {token.text or 'end of expression'!r}", token)

    def _fail(self, message: str, token: Token) -> None:
        raise ExpressionError(f"{message} at position {token.position} in {self._text!r}")

    # -- grammar
    def _concat(self) -> Compiled:
        node = self._additive()
        while self._accept_op("||"):
            node = _concat_of([node, self._additive()])
        return node

    def _additive(self) -> Compiled:
        node = self._term()
        while (op := self._accept_op("+", "-")) is not None:
            node = _arithmetic(op, node, self._term())
        return node

    def _term(self) -> Compiled:
        node = self._unary()
        while (op := self._accept_op("*", "/")) is not None:
            node = _arithmetic(op, node, self._unary())
        return node

    def _unary(self) -> Compiled:
        if self._accept_op("-"):
            operand = self._unary()
            return _arithmetic("-", _constant(0, ValueType.LONG, "0"), operand)
        return self._primary()

    def _primary(self) -> Compiled:
        token = self._next()
        if token.kind == "number":
            is_int = token.text.isdigit()
            value: Any = int(token.text) if is_int else float(token.text)
            return _constant(value, ValueType.LONG if is_int else ValueType.DOUBLE, token.text)
        if token.kind == "string":
            return _constant(token.text, ValueType.STRING, token.text)
        if token.kind == "field":
            return _field(token.text)
        if token.kind == "op" and token.text == "(":
            node = self._concat()
            self._expect_op(")")
            return node
        if token.kind == "ident":
            return self._identifier(token)
        self._fail(f"unexpected {token.text or 'end of expression'!r}", token)
        raise AssertionError("unreachable")

    def _identifier(self, token: Token) -> Compiled:
        upper = token.text.upper()
        is_call = self._peek().kind == "op" and self._peek().text == "("
        if not is_call:
            if upper == "NULL":
                return _constant(None, ValueType.UNKNOWN, "NULL")
            if upper in ("TRUE", "FALSE"):
                return _constant(int(upper == "TRUE"), ValueType.LONG, upper)
            if upper == "CURRENT_TIMESTAMP":
                return Compiled(
                    lambda _row: Timestamp(_millis(datetime.now(UTC))), ValueType.TIMESTAMP
                )
            return _field(token.text)
        self._index += 1  # the "("
        if upper == "CAST":
            return self._cast(token)
        args: list[Compiled] = []
        if not self._accept_op(")"):
            args.append(self._concat())
            while self._accept_op(","):
                args.append(self._concat())
            self._expect_op(")")
        return _call(upper, args, token, self._fail)

    def _cast(self, token: Token) -> Compiled:
        operand = self._concat()
        keyword = self._next()
        if keyword.kind != "ident" or keyword.text.upper() != "AS":
            self._fail("expected AS in CAST", keyword)
        type_token = self._next()
        target = _CAST_TYPES.get(type_token.text.upper()) if type_token.kind == "ident" else None
        if target is None:
            self._fail(
                f"unsupported CAST type {type_token.text!r}; use one of "
                + ", ".join(sorted(_CAST_TYPES)),
                type_token,
            )
            raise AssertionError("unreachable")
        self._expect_op(")")
        convert = _CONVERTERS[target]
        inner = operand.evaluate

        def cast(row: Row) -> Any:
            return convert(inner(row))

        return Compiled(cast, target, operand.fields)


def _field(name: str) -> Compiled:
    def get(row: Row) -> Any:
        return row.get(name)

    return Compiled(get, ValueType.UNKNOWN, frozenset({name}), text=name)


def _fields(args: Sequence[Compiled]) -> frozenset[str]:
    return frozenset().union(*(arg.fields for arg in args))


def _number(value: Any) -> int | float | None:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int | float):
        return value
    if isinstance(value, Timestamp):
        return value.millis
    if isinstance(value, str):
        long = to_long(value) if value.strip().lstrip("-").isdigit() else None
        return long if long is not None else to_double(value)
    return None


def _arithmetic(op: str, left: Compiled, right: Compiled) -> Compiled:
    both_long = left.type == ValueType.LONG and right.type == ValueType.LONG
    lhs, rhs = left.evaluate, right.evaluate

    def apply(row: Row) -> Any:
        a, b = _number(lhs(row)), _number(rhs(row))
        if a is None or b is None:
            return None
        if op == "+":
            return a + b
        if op == "-":
            return a - b
        if op == "*":
            return a * b
        if b == 0:
            return None
        if isinstance(a, int) and isinstance(b, int):
            return int(a / b)
        return a / b

    result = ValueType.LONG if both_long else ValueType.DOUBLE
    return Compiled(apply, result, left.fields | right.fields)


def _concat_of(args: Sequence[Compiled]) -> Compiled:
    parts = [arg.evaluate for arg in args]

    def concat(row: Row) -> Any:
        values = [to_string(part(row)) for part in parts]
        if any(value is None for value in values):
            return None
        return "".join(value for value in values if value is not None)

    return Compiled(concat, ValueType.STRING, _fields(args))


Fail = Callable[[str, Token], None]


def _call(name: str, args: list[Compiled], token: Token, fail: Fail) -> Compiled:
    arity = _ARITY.get(name)
    if arity is None:
        fail(f"unknown function {name}; supported: {', '.join(sorted(_ARITY))}", token)
        raise AssertionError("unreachable")
    low, high = arity
    if not low <= len(args) <= (high if high is not None else len(args)):
        expected = f"{low}" if low == high else f"{low} to {high if high is not None else 'any'}"
        fail(f"{name} takes {expected} argument(s), got {len(args)}", token)
    if name == "TIME_PARSE":
        return _time_parse(args, token, fail)
    if name == "MILLIS_TO_TIMESTAMP":
        inner = args[0].evaluate

        def millis(row: Row) -> Any:
            number = _number(inner(row))
            return None if number is None else Timestamp(int(number))

        return Compiled(millis, ValueType.TIMESTAMP, args[0].fields)
    if name in ("COALESCE", "NVL"):
        evaluators = [arg.evaluate for arg in args]

        def coalesce(row: Row) -> Any:
            for evaluate in evaluators:
                value = evaluate(row)
                if value is not None:
                    return value
            return None

        types = {arg.type for arg in args if not (arg.literal and arg.type == ValueType.UNKNOWN)}
        result = types.pop() if len(types) == 1 else ValueType.UNKNOWN
        return Compiled(coalesce, result, _fields(args))
    if name in ("LOWER", "UPPER"):
        inner = args[0].evaluate
        method = str.lower if name == "LOWER" else str.upper

        def case(row: Row) -> Any:
            text = to_string(inner(row))
            return None if text is None else method(text)

        return Compiled(case, ValueType.STRING, args[0].fields)
    return _concat_of(args)  # CONCAT


def _time_parse(args: list[Compiled], token: Token, fail: Fail) -> Compiled:
    options: list[str | None] = []
    for arg in args[1:]:
        if not arg.literal or not isinstance(arg.evaluate({}), str | None):
            fail("TIME_PARSE format and time zone must be string literals", token)
        options.append(arg.evaluate({}))
    pattern = options[0] if options else None
    zone = _zone(options[1]) if len(options) > 1 and options[1] else UTC
    parse = _time_parser(pattern, zone)
    inner = args[0].evaluate

    def time_parse(row: Row) -> Any:
        return parse(to_string(inner(row)))

    return Compiled(time_parse, ValueType.TIMESTAMP, args[0].fields)


_ARITY: dict[str, tuple[int, int | None]] = {
    "TIME_PARSE": (1, 3),
    "MILLIS_TO_TIMESTAMP": (1, 1),
    "COALESCE": (1, None),
    "NVL": (2, 2),
    "LOWER": (1, 1),
    "UPPER": (1, 1),
    "CONCAT": (1, None),
}


def compile_expression(text: str) -> Compiled:
    """Parse and compile one mapping expression; raises ExpressionError with the position."""
    if not isinstance(text, str) or not text.strip():
        raise ExpressionError("expression must be a non-empty string")
    compiled = _Parser(text).parse()
    return Compiled(compiled.evaluate, compiled.type, compiled.fields, compiled.literal, text)
