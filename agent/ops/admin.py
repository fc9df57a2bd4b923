"""The admin endpoint (`api.listen`): `/metrics`, `/healthz`, `/readyz`, `/status`.

It runs inside the agent's own event loop, so `/healthz` answering proves the loop is not
stuck. Every request reads one fresh `AgentSnapshot`; nothing is cached or counted here.
No access log: probes arrive every few seconds and would drown the agent's own events.

The port may be reachable by hostile clients (Kubernetes binds it to the pod IP), and it
shares the process's descriptors with the log files, so it guards itself (`_Gate`):
- at most `MAX_CONNECTIONS` connections; a newcomer past that closes the oldest idle one (a
  probe sends its request at once, so it is never the oldest idle), or itself if all are busy;
- a connection that has not started a request `HEADER_TIMEOUT_SECS` after it opened (or
  after its last response) is closed: idle and slow-header clients cannot hold a slot;
- a burst of refusals, time-outs, accept errors (EMFILE) and server errors is one log line
  per `ERROR_LOG_INTERVAL_SECS`, with counts, never a traceback per event.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field
from typing import Any, Final

import structlog
from aiohttp import web
from aiohttp.web_protocol import RequestHandler
from prometheus_client import CollectorRegistry

from agent.config.listen import ListenAddress
from agent.ops.health import DEFAULT_STALL_AFTER, liveness, readiness
from agent.ops.metrics import CONTENT_TYPE, SnapshotFn, build_registry, render

MAX_CONNECTIONS: Final = 64
"""Open admin connections at most: probes and scrapes need a handful; 64 descriptors is a
small share of even a 1,024 limit, leaving the rest to log files and the spool."""
HEADER_TIMEOUT_SECS: Final = 5.0
"""A connection must start a request within this long of opening (or of its last response)."""
ERROR_LOG_INTERVAL_SECS: Final = 10.0
"""A burst of connection errors is logged as one line per this long, with counts."""
MAX_HEADER_BYTES: Final = 8190  # per line and per field; 32 fields at most
MAX_HEADERS: Final = 32

log = structlog.get_logger("agent.admin")


class AdminError(Exception):
    """The admin endpoint cannot start."""


class AdminBindError(AdminError):
    """The address is taken, not local, or not permitted."""

    def __init__(self, listen: str, reason: str) -> None:
        super().__init__(f"admin endpoint cannot listen on {listen} (api.listen): {reason}")
        self.listen = listen
        self.reason = reason


@dataclass(frozen=True, slots=True)
class AdminServer:
    host: str  # the bound address, e.g. "127.0.0.1" or "::1"
    port: int  # the bound port (the picked one when api.listen said 0)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"


@dataclass(frozen=True, slots=True)
class _Handlers:
    snapshot: SnapshotFn
    registry: CollectorRegistry  # reads `snapshot` itself at every scrape
    stall_after: float

    async def metrics(self, _: web.Request) -> web.Response:
        return web.Response(body=render(self.registry), headers={"Content-Type": CONTENT_TYPE})

    async def healthz(self, _: web.Request) -> web.Response:
        return web.json_response({"status": liveness().status})

    async def status(self, _: web.Request) -> web.Response:
        """Everything at once as JSON, for `polaris-agent status`."""
        snapshot = self.snapshot()
        state = readiness(snapshot, stall_after=self.stall_after)
        document = asdict(snapshot)
        document["events"] = {count.event.name: count.total for count in snapshot.events}
        document["ready"] = state.ready
        document["reasons"] = list(state.reasons)
        return web.json_response(document)

    async def readyz(self, _: web.Request) -> web.Response:
        state = readiness(self.snapshot(), stall_after=self.stall_after)
        return web.json_response(
            {"ready": state.ready, "reasons": list(state.reasons)},
            status=200 if state.ready else 503,
        )


def build_app(
    snapshot: SnapshotFn,
    *,
    stall_after: float = DEFAULT_STALL_AFTER,
    middlewares: tuple[Any, ...] = (),
) -> web.Application:
    """The admin routes, with a registry of their own."""
    handlers = _Handlers(snapshot, build_registry(snapshot), stall_after)
    app = web.Application(middlewares=middlewares)
    app.router.add_get("/metrics", handlers.metrics)
    app.router.add_get("/healthz", handlers.healthz)
    app.router.add_get("/readyz", handlers.readyz)
    app.router.add_get("/status", handlers.status)
    return app


@asynccontextmanager
async def serve_admin(
    listen: str, snapshot: SnapshotFn, *, stall_after: float = DEFAULT_STALL_AFTER
) -> AsyncIterator[AdminServer]:
    """Serve the admin endpoint on `listen` until the block exits.

    Raises `InvalidListenAddress` for a malformed address and `AdminBindError` when the
    address cannot be bound, before anything is served.
    """
    address = ListenAddress.parse(listen)
    loop = asyncio.get_running_loop()
    burst = _BurstLog(loop)
    gate = _Gate(loop, burst)
    runner = web.AppRunner(
        build_app(snapshot, stall_after=stall_after, middlewares=(gate.middleware,)),
        access_log=None,
        handle_signals=False,
        keepalive_timeout=HEADER_TIMEOUT_SECS,
        logger=_burst_logger(burst),
        max_line_size=MAX_HEADER_BYTES,
        max_field_size=MAX_HEADER_BYTES,
        max_headers=MAX_HEADERS,
    )
    await runner.setup()
    assert runner.server is not None
    server: asyncio.Server | None = None
    previous_handler = loop.get_exception_handler()
    try:
        server = await _bind(loop, gate.factory(runner.server), address, listen)
        ours = {sock.fileno() for sock in server.sockets}
        loop.set_exception_handler(_accept_errors_to(burst, ours, previous_handler))
        host, port = server.sockets[0].getsockname()[:2]
        yield AdminServer(host=str(host), port=int(port))
    finally:
        if server is not None:
            server.close()
            loop.set_exception_handler(previous_handler)
        gate.close_all()
        await runner.cleanup()
        burst.close()


async def _bind(
    loop: asyncio.AbstractEventLoop,
    factory: Callable[[], asyncio.Protocol],
    address: ListenAddress,
    listen: str,
) -> asyncio.Server:
    """Start listening (a host name resolving to several addresses binds them all, the first
    bound socket names the server; with port 0 each gets its own port)."""
    try:
        return await loop.create_server(
            factory, address.host, address.port, reuse_address=True, backlog=MAX_CONNECTIONS
        )
    except OSError as exc:
        raise AdminBindError(listen, exc.strerror or str(exc)) from exc


# -- self-defence: connection limit, header time-out, one log line per burst --------------


class _BurstLog:
    """Counts connection troubles and logs them as one `admin_connection_trouble` line per
    `ERROR_LOG_INTERVAL_SECS`: the first at once, the rest of a burst summed up after."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._counts: Counter[str] = Counter()
        self._last_error = ""
        self._logged_at = -math.inf
        self._pending: asyncio.TimerHandle | None = None

    def note(self, kind: str, error: str = "") -> None:
        self._counts[kind] += 1
        if error:
            self._last_error = error
        due = self._logged_at + ERROR_LOG_INTERVAL_SECS
        if self._loop.time() >= due:
            self._flush()
        elif self._pending is None:
            self._pending = self._loop.call_at(due, self._flush)

    def close(self) -> None:
        if self._pending is not None:
            self._pending.cancel()
        self._flush()

    def _flush(self) -> None:
        self._pending = None
        if not self._counts:
            return
        log.warning(
            "admin_connection_trouble",
            **dict(self._counts),
            last_error=self._last_error or None,
            max_connections=MAX_CONNECTIONS,
        )
        self._counts.clear()
        self._last_error = ""
        self._logged_at = self._loop.time()


class _BurstHandler(logging.Handler):
    """aiohttp's server logger (e.g. `Error handling request`) into the burst count."""

    def __init__(self, burst: _BurstLog) -> None:
        super().__init__(logging.WARNING)
        self._burst = burst

    def emit(self, record: logging.LogRecord) -> None:
        error = record.exc_info[1] if record.exc_info else None
        self._burst.note("server_errors", repr(error) if error else record.getMessage())


def _burst_logger(burst: _BurstLog) -> logging.Logger:
    """A logger of its own (not in the logging registry, never propagating to root)."""
    logger = logging.Logger("agent.admin.server", logging.WARNING)
    logger.propagate = False
    logger.addHandler(_BurstHandler(burst))
    return logger


ExceptionHandler = Callable[[asyncio.AbstractEventLoop, dict[str, Any]], object]


def _accept_errors_to(
    burst: _BurstLog, sockets: set[int], previous: ExceptionHandler | None
) -> ExceptionHandler:
    """The loop's exception handler, with errors of our listening sockets (`accept()` out of
    descriptors) counted instead of printed with a traceback each."""

    def handle(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        sock = context.get("socket")
        if sock is not None and _fileno(sock) in sockets:
            burst.note("accept_errors", repr(context.get("exception")))
            return
        if previous is not None:
            previous(loop, context)
        else:
            loop.default_exception_handler(context)

    return handle


def _fileno(sock: Any) -> int:
    try:
        return int(sock.fileno())
    except (OSError, ValueError, TypeError, AttributeError):
        return -1


@dataclass(eq=False, slots=True)
class _Connection:
    transport: asyncio.Transport
    busy: int = 0  # requests in progress
    served: int = 0
    timer: asyncio.TimerHandle | None = None


@dataclass(eq=False)
class _Gate:
    """Admits connections up to `MAX_CONNECTIONS` and closes the idle ones on time."""

    loop: asyncio.AbstractEventLoop
    burst: _BurstLog
    open: dict[asyncio.BaseTransport, _Connection] = field(default_factory=dict)

    def factory(self, server: web.Server) -> Callable[[], asyncio.Protocol]:
        return lambda: _Guarded(server(), self)

    def admit(self, transport: asyncio.Transport) -> bool:
        if len(self.open) >= MAX_CONNECTIONS:
            idle = next((c for c in self.open.values() if not c.busy), None)
            if idle is None:
                self.burst.note("refused")
                return False
            self.burst.note("evicted_idle" if idle.served else "evicted_never_asked")
            self._close(idle)
        connection = _Connection(transport)
        self.open[transport] = connection
        self._arm(connection)
        return True

    def release(self, transport: asyncio.BaseTransport) -> None:
        connection = self.open.pop(transport, None)
        if connection is not None and connection.timer is not None:
            connection.timer.cancel()

    @web.middleware
    async def middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        connection = self.open.get(request.transport) if request.transport else None
        if connection is None:
            return await handler(request)
        connection.busy += 1
        if connection.timer is not None:
            connection.timer.cancel()
        try:
            return await handler(request)
        finally:
            connection.busy -= 1
            connection.served += 1
            self._arm(connection)

    def close_all(self) -> None:
        for connection in list(self.open.values()):
            self._close(connection)

    def _arm(self, connection: _Connection) -> None:
        if connection.timer is not None:
            connection.timer.cancel()
        connection.timer = self.loop.call_later(HEADER_TIMEOUT_SECS, self._expire, connection)

    def _expire(self, connection: _Connection) -> None:
        connection.timer = None
        if connection.busy:
            return
        if not connection.served:  # a keep-alive client going quiet is normal, not trouble
            self.burst.note("timed_out")
        self._close(connection)

    def _close(self, connection: _Connection) -> None:
        self.release(connection.transport)
        connection.transport.abort()


class _Guarded(asyncio.Protocol):
    """aiohttp's protocol behind the gate: a connection the gate refuses never reaches it."""

    def __init__(self, inner: RequestHandler, gate: _Gate) -> None:
        self._inner = inner
        self._gate = gate
        self._transport: asyncio.Transport | None = None  # set once admitted

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        if not self._gate.admit(transport):
            transport.abort()
            return
        self._transport = transport
        self._inner.connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._transport is not None:
            self._gate.release(self._transport)
            self._inner.connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._transport is not None:
            self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        if self._transport is not None:
            self._inner.eof_received()
        return None  # close the transport: aiohttp answers nothing after the client's EOF

    def pause_writing(self) -> None:
        if self._transport is not None:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._transport is not None:
            self._inner.resume_writing()
