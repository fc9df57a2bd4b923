"""`POST /query/sql` answers in the formats Polaris' Query API documents.

From docs.imply.io/polaris/QueryApi: `resultFormat` is one of `object` (a JSON array of JSON
objects, `application/json`), `array` (a JSON array of JSON arrays, `application/json`),
`objectLines` / `arrayLines` (one JSON value per line and a trailing blank line,
`text/plain`) and `csv` (one row per line and a trailing blank line, `text/csv`). `header`
adds a first row of the column names; `typesHeader` and `sqlTypesHeader` (each needs
`header`) add the column types. The page names no default; Polaris' SQL API is Druid's, whose
default is `object`, so that is the default here too.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from agent.devserver.errors import BadRequest

FORMATS = ("object", "array", "objectLines", "arrayLines", "csv")
_CONTENT_TYPES = {
    "object": "application/json",
    "array": "application/json",
    "objectLines": "text/plain",
    "arrayLines": "text/plain",
    "csv": "text/csv",
}
# Druid's names for what a column holds; SQLite stores __time as ISO text (a TIMESTAMP here).
_TYPES = {str: ("STRING", "VARCHAR"), int: ("LONG", "BIGINT"), float: ("DOUBLE", "DOUBLE")}


@dataclass(frozen=True, slots=True)
class ResultOptions:
    """The answer's shape, as the request body asked for it."""

    result_format: str = "object"
    header: bool = False
    types_header: bool = False
    sql_types_header: bool = False

    @classmethod
    def from_body(cls, body: dict[str, Any]) -> ResultOptions:
        result_format = body.get("resultFormat", "object")
        if result_format not in FORMATS:
            raise BadRequest(f"resultFormat {result_format!r} is not one of {', '.join(FORMATS)}")
        flags = {}
        for key in ("header", "typesHeader", "sqlTypesHeader"):
            value = body.get(key, False)
            if not isinstance(value, bool):
                raise BadRequest(f"{key} must be true or false")
            flags[key] = value
        if (flags["typesHeader"] or flags["sqlTypesHeader"]) and not flags["header"]:
            raise BadRequest("typesHeader and sqlTypesHeader require header: true")
        return cls(result_format, flags["header"], flags["typesHeader"], flags["sqlTypesHeader"])

    @property
    def content_type(self) -> str:
        return _CONTENT_TYPES[self.result_format]


def render(columns: Sequence[str], rows: Sequence[Sequence[Any]], options: ResultOptions) -> bytes:
    """The response body for `rows` under `options`."""
    fmt = options.result_format
    if fmt in ("object", "objectLines"):
        items: list[Any] = [dict(zip(columns, row, strict=True)) for row in rows]
        if options.header:
            items.insert(0, _object_header(columns, rows, options))
    else:
        items = [list(row) for row in rows]
        if options.header:
            items[:0] = _array_headers(columns, rows, options)
    if fmt in ("object", "array"):
        return orjson.dumps(items)
    if fmt in ("objectLines", "arrayLines"):
        return b"".join(orjson.dumps(item) + b"\n" for item in items) + b"\n"
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    for item in items:
        writer.writerow([_csv_cell(value) for value in item])
    out.write("\n")
    return out.getvalue().encode()


def _types(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[tuple[str, str]]:
    out = []
    for index, name in enumerate(columns):
        if name == "__time":
            out.append(("LONG", "TIMESTAMP"))
            continue
        sample = next((row[index] for row in rows if row[index] is not None), None)
        out.append(_TYPES.get(type(sample), ("STRING", "VARCHAR")))
    return out


def _object_header(
    columns: Sequence[str], rows: Sequence[Sequence[Any]], options: ResultOptions
) -> dict[str, Any]:
    if not (options.types_header or options.sql_types_header):
        return dict.fromkeys(columns)
    header: dict[str, Any] = {}
    for name, (druid_type, sql_type) in zip(columns, _types(columns, rows), strict=True):
        entry: dict[str, str] = {}
        if options.types_header:
            entry["type"] = druid_type
        if options.sql_types_header:
            entry["sqlType"] = sql_type
        header[name] = entry
    return header


def _array_headers(
    columns: Sequence[str], rows: Sequence[Sequence[Any]], options: ResultOptions
) -> list[list[Any]]:
    headers: list[list[Any]] = [list(columns)]
    types = _types(columns, rows)
    if options.types_header:
        headers.append([druid_type for druid_type, _ in types])
    if options.sql_types_header:
        headers.append([sql_type for _, sql_type in types])
    return headers


def _csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return orjson.dumps(value).decode()
