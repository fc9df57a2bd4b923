"""What can go wrong delivering a payload, classified once, with retryability declared."""

from __future__ import annotations

from typing import ClassVar


class DeliveryError(Exception):
    retryable: ClassVar[bool] = False
    reason: ClassVar[str] = "error"  # a bounded label for logs and metrics


class TransportError(DeliveryError):
    """No HTTP answer: connection refused or reset, timeout, DNS, TLS."""

    retryable = True
    reason = "transport"


class ServerError(DeliveryError):
    retryable = True
    reason = "server_error"

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status


class Throttled(DeliveryError):
    """429: the whole pool waits `retry_after_secs` (from RateLimit-Reset or Retry-After)."""

    retryable = True
    reason = "throttled"

    def __init__(self, retry_after_secs: float | None) -> None:
        super().__init__(f"rate limited; retry after {retry_after_secs}s")
        self.retry_after_secs = retry_after_secs


class AuthFailed(DeliveryError):
    """401/403: nothing is wrong with the data; keep it and report unhealthy until fixed."""

    retryable = True
    reason = "auth"

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status


class PayloadTooLarge(DeliveryError):
    """413: split the payload in two and send the halves."""

    reason = "too_large"


class Rejected(DeliveryError):
    """Another 4xx: some event in the payload is bad; split to isolate it, then dead-letter."""

    reason = "rejected"

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status
        self.message = message


def classify(status: int, message: str, retry_after: float | None) -> DeliveryError:
    """The error for a non-2xx status."""
    if status == 429:
        return Throttled(retry_after)
    if status in (401, 403):
        return AuthFailed(status, message)
    if status == 413:
        return PayloadTooLarge(f"HTTP 413: {message}")
    if status in (408, 425) or status >= 500:
        return ServerError(status, message)
    return Rejected(status, message)
