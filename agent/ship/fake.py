"""An in-process `Poster` for tests, shipped next to the real one (as httpx ships its
MockTransport): scripted answers, every request recorded, no sockets."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from agent.ship.client import Answer
from agent.ship.compress import gunzip
from agent.ship.errors import TransportError
from agent.ship.ratelimit import RateLimitInfo

NO_LIMITS = RateLimitInfo(None, None, None)

Responder = Callable[["Request"], "Answer | TransportError | None"]


@dataclass(frozen=True, slots=True)
class Request:
    """One post as the fake received it, its body inflated."""

    connection: str
    body: bytes  # NDJSON
    gzip: bool
    wire: bytes  # as posted

    @property
    def lines(self) -> list[bytes]:
        return self.body.splitlines()


def answer(status: int, *, retry_after: float | None = None, message: str = "") -> Answer:
    """An answer as `EventsClient` would return it for `status`."""
    host = "elsewhere.example" if 300 <= status < 400 else ""
    return Answer(status, NO_LIMITS, retry_after, message or f"status {status}", host)


class FakeEventsClient:
    """Answers 200 unless told otherwise: `fail_next` queues answers (or transport errors)
    for the next requests, in order; `respond` decides from the request itself (a bad event,
    a refused connection) and may return None for the default 200."""

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self.delivered: list[bytes] = []  # NDJSON lines acknowledged, in order
        self.closed = False
        self._next: deque[Answer | TransportError] = deque()
        self._respond: Responder | None = None
        self._changed = asyncio.Event()

    def __repr__(self) -> str:
        return f"<FakeEventsClient requests={len(self.requests)} queued={len(self._next)}>"

    def fail_next(self, *answers: Answer | TransportError) -> None:
        self._next.extend(answers)

    def respond(self, responder: Responder | None) -> None:
        self._respond = responder

    async def post(self, connection: str, body: bytes, *, gzip: bool) -> Answer:
        if self.closed:
            raise TransportError("client closed")
        request = Request(connection, gunzip(body) if gzip else body, gzip, body)
        self.requests.append(request)
        self._changed.set()
        await asyncio.sleep(0)  # a real post yields to the loop
        result: Answer | TransportError | None = None
        if self._next:
            result = self._next.popleft()
        elif self._respond is not None:
            result = self._respond(request)
        if isinstance(result, TransportError):
            raise result
        result = result or answer(200)
        if result.ok:
            self.delivered.extend(request.lines)
        return result

    async def aclose(self) -> None:
        self.closed = True

    async def wait_for_requests(self, count: int) -> None:
        """Until at least `count` requests came in."""
        while len(self.requests) < count:
            self._changed.clear()
            await self._changed.wait()
