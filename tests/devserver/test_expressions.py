"""The mapping expression language: tokenizer, parser, evaluation, errors."""

from __future__ import annotations

from typing import Any

import pytest

from agent.devserver.errors import ExpressionError
from agent.devserver.expressions import (
    Timestamp,
    ValueType,
    compile_expression,
    joda_to_strptime,
    tokenize,
)


def run(expression: str, row: dict[str, Any] | None = None) -> Any:
    return compile_expression(expression).evaluate(row or {})


def iso(expression: str, row: dict[str, Any]) -> str:
    value = run(expression, row)
    assert isinstance(value, Timestamp)
    return value.iso()


def test_tokens_unescape_quotes() -> None:
    kinds = [(t.kind, t.text) for t in tokenize("\"a\"\"b\" || 'it''s' 1.5e2")]
    assert kinds == [
        ("field", 'a"b'),
        ("op", "||"),
        ("string", "it's"),
        ("number", "1.5e2"),
        ("end", ""),
    ]


def test_field_reference_reads_the_row_and_reports_its_fields() -> None:
    compiled = compile_expression('"user"')
    assert compiled.evaluate({"user": "ada"}) == "ada"
    assert compiled.evaluate({}) is None
    assert compiled.fields == frozenset({"user"})
    assert compile_expression("user").evaluate({"user": "bare"}) == "bare"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2022-04-16T00:46:58.771Z", "2022-04-16T00:46:58.771Z"),
        ("2022-04-16T02:46:58.771+02:00", "2022-04-16T00:46:58.771Z"),
        ("2022-04-16 00:46:58", "2022-04-16T00:46:58.000Z"),
        ("2022-04-16", "2022-04-16T00:00:00.000Z"),
    ],
)
def test_time_parse_reads_iso_8601(text: str, expected: str) -> None:
    assert iso('TIME_PARSE("t")', {"t": text}) == expected


def test_time_parse_with_joda_format_and_time_zone() -> None:
    expression = "TIME_PARSE(\"t\", 'dd/MM/yyyy HH:mm:ss.SSS', 'America/New_York')"
    assert iso(expression, {"t": "16/04/2022 20:46:58.771"}) == "2022-04-17T00:46:58.771Z"
    assert iso("TIME_PARSE(\"t\", 'yyyyMMdd''T''HHmm')", {"t": "20220416T0046"}) == (
        "2022-04-16T00:46:00.000Z"
    )
    assert joda_to_strptime("yyyy-MM-dd'T'HH:mm:ssZ") == "%Y-%m-%dT%H:%M:%S%z"


def test_time_parse_of_garbage_is_null() -> None:
    assert run('TIME_PARSE("t")', {"t": "not a time"}) is None
    assert run('TIME_PARSE("t")', {}) is None


def test_millis_to_timestamp_and_casts() -> None:
    assert iso('MILLIS_TO_TIMESTAMP("ms")', {"ms": 1650070018771}) == "2022-04-16T00:46:58.771Z"
    assert run('CAST("n" AS BIGINT)', {"n": "42"}) == 42
    assert run('CAST("n" AS DOUBLE)', {"n": "4.5"}) == 4.5
    assert run('CAST("n" AS VARCHAR)', {"n": 7}) == "7"
    assert run('CAST("n" AS BIGINT)', {"n": "many"}) is None
    assert run("CAST(TIME_PARSE('1970-01-01T00:00:01Z') AS BIGINT)") == 1000
    assert compile_expression('CAST("n" AS DOUBLE)').type == ValueType.DOUBLE


def test_coalesce_nvl_lower_upper_concat() -> None:
    assert run('COALESCE("a", "b", \'z\')', {"b": "B"}) == "B"
    assert run("NVL(\"a\", 'dflt')", {}) == "dflt"
    assert run('LOWER("a")', {"a": "MiXeD"}) == "mixed"
    assert run('UPPER("a")', {"a": "MiXeD"}) == "MIXED"
    assert run("CONCAT(\"a\", '-', 3)", {"a": "x"}) == "x-3"
    assert run("CONCAT(\"a\", '-')", {}) is None  # SQL: NULL in, NULL out
    assert run("'a' || 'b'") == "ab"


def test_arithmetic_precedence_and_nesting() -> None:
    assert run("1 + 2 * 3") == 7
    assert run("(1 + 2) * 3") == 9
    assert run("-2 + 5") == 3
    assert run("7 / 2") == 3
    assert run("7.0 / 2") == 3.5
    assert run("1 / 0") is None
    assert run('UPPER(LOWER(CONCAT("a", COALESCE("b", \'Q\'))))', {"a": "p"}) == "PQ"
    assert run("NULL") is None


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("", "non-empty"),
        ('"unterminated', "unterminated quote"),
        ("LOWER(1, 2)", "LOWER takes 1 argument"),
        ("EVAL('1')", "unknown function EVAL"),
        ('CAST("a" AS BLOB)', "unsupported CAST type"),
        ('CAST("a" BIGINT)', "expected AS"),
        ("(1 + 2", "expected ')'"),
        ("1 2", "unexpected '2'"),
        ('TIME_PARSE("t", "fmt")', "string literals"),
        ("TIME_PARSE(\"t\", 'yyyy', 'Mars/Olympus')", "unknown time zone"),
        ("1 ; 2", "unexpected character ';'"),
        ("__import__('os')", "unknown function __IMPORT__"),
    ],
)
def test_bad_expressions_are_rejected_with_a_position(expression: str, message: str) -> None:
    with pytest.raises(ExpressionError) as error:
        compile_expression(expression)
    assert message in str(error.value)
