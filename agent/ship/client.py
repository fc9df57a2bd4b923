"""The boundary between the ship chain and HTTP: one small Protocol and the value it returns.

`http.EventsClient` speaks to Polaris; `fake.FakeEventsClient` answers in-process, for tests.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from agent.ship.errors import DeliveryError, classify
from agent.ship.ratelimit import RateLimitInfo


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    rate: RateLimitInfo
    retry_after: float | None
    message: str  # the body of a non-2xx answer, squeezed and cut, for logs and dead letters
    location_host: str = ""  # the host a 3xx points at (never followed), for the error
    token_expired: bool = False  # a 401 "token expired" to a token now forgotten: ask again

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def error(self) -> DeliveryError:
        return classify(self.status, self.message, self.retry_after, self.location_host)


class Poster(Protocol):
    """Posts one payload to a connection and returns Polaris' answer. Raises TransportError
    (and nothing else) when there is no answer."""

    async def post(self, connection: str, body: bytes, *, gzip: bool) -> Answer: ...

    async def aclose(self) -> None:
        """Release the connections; called once the client is replaced or the agent stops."""
        ...
