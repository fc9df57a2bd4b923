"""Errors the dev-server answers with: each carries its HTTP status, so handlers raise and one
place (the middleware in `server.py`) turns them into `{"message": ...}` responses."""

from __future__ import annotations

from typing import ClassVar


class ApiError(Exception):
    """A client-visible failure; `status` is the HTTP status code it maps to."""

    status: ClassVar[int] = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadRequest(ApiError):
    status = 400


class Unauthorized(ApiError):
    status = 401


class NotFound(ApiError):
    status = 404


class Conflict(ApiError):
    status = 409


class PayloadTooLarge(ApiError):
    status = 413


class UnsupportedEncoding(ApiError):
    status = 415


class InvalidSpec(BadRequest):
    """A connection or job specification the dev-server refuses (as Polaris would)."""


class ExpressionError(InvalidSpec):
    """An input expression that does not tokenize, parse or type-check."""
