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


class ServerFailed(DeliveryError):
    """5xx, 408, 425: the endpoint failed this time; the same payload may pass later. (Not
    the management API's `polaris.errors.ServerError`.)"""

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


class EndpointRefused(DeliveryError):
    """Nothing is wrong with the data, something with the endpoint or its configuration: the
    data is kept (retried, or spooled when an outage begins), never split or dead-lettered,
    and the agent reports itself not ready until a request succeeds again."""

    retryable = True
    reason = "endpoint"


class AuthFailed(EndpointRefused):
    """401/403: the key is wrong or lacks the permission."""

    reason = "auth"

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status


class Redirected(EndpointRefused):
    """3xx: never followed. Following would send the key (and the data) to whatever host the
    Location names, and a 301/302/303 would turn the POST into a bodiless GET whose 200 would
    count as delivered. `polaris.url` is wrong (or something in between rewrites it)."""

    reason = "redirect"

    def __init__(self, status: int, location_host: str) -> None:
        where = f" to host {location_host!r}" if location_host else " with no usable Location"
        super().__init__(f"HTTP {status}: redirected{where}; redirects are not followed")
        self.status = status
        self.location_host = location_host


class ConnectionMissing(EndpointRefused):
    """404 on the events URL: the connection (or project) does not exist. Every event of every
    batch would be refused alike, so splitting would only dead-letter good data."""

    reason = "not_found"

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status


class BlanketRefusal(EndpointRefused):
    """A 400-class refusal of every part of a batch that splitting tried (see the sender's
    BLANKET_REFUSALS): taken as the endpoint refusing everything, not as bad events."""

    reason = "blanket_refusal"

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status} for every part of the batch: {message}")
        self.status = status
        self.message = message


class PayloadTooLarge(DeliveryError):
    """413: split the payload in two and send the halves. Not retryable as it is."""

    reason = "too_large"


class PayloadRejected(DeliveryError):
    """Another 4xx: some event in the payload is bad; split to isolate it, then dead-letter.
    Not retryable as it is. (The management API's refusal is `polaris.errors.RequestRejected`.)"""

    reason = "rejected"

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status
        self.message = message


Refusal = PayloadTooLarge | PayloadRejected
"""A refusal of the payload's content (not retryable as it is): the splitter's to handle."""


def classify(
    status: int, message: str, retry_after: float | None, location_host: str = ""
) -> DeliveryError:
    """The error for a non-2xx status."""
    if 300 <= status < 400:
        return Redirected(status, location_host)
    if status == 404:
        return ConnectionMissing(status, message)
    if status == 429:
        return Throttled(retry_after)
    if status in (401, 403):
        return AuthFailed(status, message)
    if status == 413:
        return PayloadTooLarge(f"HTTP 413: {message}")
    if status in (408, 425) or status >= 500:
        return ServerFailed(status, message)
    return PayloadRejected(status, message)
