"""The `dev-server query` client: send SQL to a running dev-server, print a table for a person.

Synchronous urllib on purpose: one request, no event loop, no session to manage.
"""

from __future__ import annotations

import base64
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson


class QueryFailed(Exception):
    """The server refused the query or could not be reached; the message says which."""


@dataclass(frozen=True, slots=True)
class QueryAnswer:
    columns: list[str]
    rows: list[list[Any]]


def run_query(url: str, project: str, api_key: str, sql: str, timeout: float = 30.0) -> QueryAnswer:
    """POST `{"query": sql}` to `/v1/projects/{project}/query/sql` and decode the answer.

    Asks for `resultFormat: array` with a `header` row, so the column names come first."""
    endpoint = f"{url.rstrip('/')}/v1/projects/{project}/query/sql"
    token = base64.b64encode(f"{api_key}:".encode()).decode()
    request = urllib.request.Request(
        endpoint,
        data=orjson.dumps({"query": sql, "resultFormat": "array", "header": True}),
        method="POST",
        headers={"Content-Type": "application/json", "Authorization": f"Basic {token}"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            document = orjson.loads(response.read())
    except urllib.error.HTTPError as exc:
        raise QueryFailed(f"HTTP {exc.code}: {_message(exc.read())}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise QueryFailed(f"cannot reach the dev-server at {url}: {reason}") from None
    columns, *rows = document
    return QueryAnswer(list(columns), [list(row) for row in rows])


def _message(body: bytes) -> str:
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        return body.decode("utf-8", "replace")
    if isinstance(document, dict) and "message" in document:
        return str(document["message"])
    return body.decode("utf-8", "replace")


def _cell(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, str):
        return value
    return orjson.dumps(value).decode()


def format_table(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Columns aligned under their headers, a rule, the rows, and a row count."""
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [len(name) for name in columns]
    for row in cells:
        for i, text in enumerate(row):
            widths[i] = max(widths[i], len(text))

    def line(values: Sequence[str]) -> str:
        return "  ".join(v.ljust(w) for v, w in zip(values, widths, strict=True)).rstrip()

    out = [line(list(columns)), "  ".join("-" * w for w in widths)]
    out.extend(line(row) for row in cells)
    out.append(f"({len(rows)} row{'' if len(rows) == 1 else 's'})")
    return "\n".join(out)
