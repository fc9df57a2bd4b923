"""Turning one Events API request body into event lines, with Polaris' payload rules.

The 1 MB rule is applied to both the bytes on the wire and the decompressed NDJSON: the
compressed check is what a proxy in front of Polaris enforces, and the decompressed check is
what keeps a client honest about its batch size whatever the compression ratio.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import orjson

from agent.devserver.errors import BadRequest, PayloadTooLarge, UnsupportedEncoding

_GZIP_WBITS = 16 + zlib.MAX_WBITS


@dataclass(frozen=True, slots=True)
class DecodedBody:
    """A request body after decompression, before its lines are checked."""

    data: bytes
    content_encoding: str | None


def decode_body(raw: bytes, content_encoding: str | None, max_bytes: int) -> DecodedBody:
    """Check the size, decompress, check the size again. Raises 413/400/415 errors."""
    if len(raw) > max_bytes:
        raise PayloadTooLarge(f"payload of {len(raw)} bytes exceeds the limit of {max_bytes} bytes")
    encoding = (content_encoding or "").strip().lower() or None
    if encoding in (None, "identity"):
        return DecodedBody(raw, encoding)
    if encoding not in ("gzip", "x-gzip"):
        raise UnsupportedEncoding(f"unsupported Content-Encoding {content_encoding!r}; use gzip")
    return DecodedBody(_gunzip(raw, max_bytes), encoding)


def _gunzip(raw: bytes, max_bytes: int) -> bytes:
    """Decompress at most `max_bytes + 1` bytes, so a gzip bomb costs us nothing."""
    decompressor = zlib.decompressobj(_GZIP_WBITS)
    try:
        data = decompressor.decompress(raw, max_bytes + 1)
        if len(data) > max_bytes:
            raise PayloadTooLarge(f"decompressed payload exceeds the limit of {max_bytes} bytes")
        data += decompressor.flush()
    except zlib.error as exc:
        raise BadRequest(f"body is not valid gzip: {exc}") from None
    if not decompressor.eof:
        raise BadRequest("body is not valid gzip: truncated stream")
    if len(data) > max_bytes:
        raise PayloadTooLarge(f"decompressed payload exceeds the limit of {max_bytes} bytes")
    return data


def count_lines(data: bytes) -> int:
    """Non-blank lines in an NDJSON body (what a request record reports)."""
    return sum(1 for line in data.split(b"\n") if line.strip())


def split_events(data: bytes) -> list[bytes]:
    """The body's event lines, each checked to be one JSON object; blank lines are skipped.

    The whole request is rejected (400 naming the first bad line) if any line is not an
    object, so nothing of a malformed request is kept. The fast path parses every line in one
    orjson call; only when that fails do we go line by line to name the culprit.
    """
    lines = [line for line in data.split(b"\n") if line.strip()]
    if not lines:
        return lines
    try:
        parsed = orjson.loads(b"[" + b",".join(lines) + b"]")
    except orjson.JSONDecodeError:
        parsed = None
    if (
        isinstance(parsed, list)
        and len(parsed) == len(lines)
        and all(type(item) is dict for item in parsed)
    ):
        return lines
    _raise_first_bad_line(data)
    return lines  # pragma: no cover - _raise_first_bad_line always raises here


def _raise_first_bad_line(data: bytes) -> None:
    for number, line in enumerate(data.split(b"\n"), start=1):
        if not line.strip():
            continue
        try:
            value = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise BadRequest(f"line {number}: not valid JSON ({exc})") from None
        if not isinstance(value, dict):
            raise BadRequest(f"line {number}: expected a JSON object, got {_json_kind(value)}")
    raise BadRequest("body is not newline-delimited JSON objects")


def _json_kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "an array"
