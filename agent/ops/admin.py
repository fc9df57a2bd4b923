"""The admin endpoint (`api.listen`): `/metrics`, `/healthz`, `/readyz`, `/status`.

It runs inside the agent's own event loop, so `/healthz` answering proves the loop is not
stuck. Every request reads one fresh `AgentSnapshot`; nothing is cached or counted here.
No access log: probes arrive every few seconds and would drown the agent's own events.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from typing import Final

from aiohttp import web
from prometheus_client import CollectorRegistry

from agent.ops.health import DEFAULT_STALL_AFTER, liveness, readiness
from agent.ops.metrics import CONTENT_TYPE, SnapshotFn, build_registry, render

MAX_PORT: Final = 65535


class AdminError(Exception):
    """The admin endpoint cannot start."""


class InvalidListenAddress(AdminError, ValueError):
    """`api.listen` is not `host:port` (IPv6 as `[addr]:port`)."""

    def __init__(self, listen: str, problem: str) -> None:
        super().__init__(f"api.listen {listen!r}: {problem} (expected host:port or [ipv6]:port)")
        self.listen = listen


class AdminBindError(AdminError):
    """The address is taken, not local, or not permitted."""

    def __init__(self, listen: str, reason: str) -> None:
        super().__init__(f"admin endpoint cannot listen on {listen} (api.listen): {reason}")
        self.listen = listen
        self.reason = reason


@dataclass(frozen=True, slots=True)
class ListenAddress:
    host: str
    port: int  # 0: let the kernel pick a free port

    @classmethod
    def parse(cls, listen: str) -> ListenAddress:
        """`127.0.0.1:8686`, `localhost:0`, `[::1]:8686`."""
        if listen.startswith("["):
            host, bracket, rest = listen[1:].partition("]")
            if not bracket or not rest.startswith(":"):
                raise InvalidListenAddress(listen, "unclosed [ or no :port after ]")
            port_text = rest[1:]
        else:
            host, colon, port_text = listen.rpartition(":")
            if not colon:
                raise InvalidListenAddress(listen, "no port")
            if ":" in host:
                raise InvalidListenAddress(listen, "IPv6 addresses need brackets")
        if not host:
            raise InvalidListenAddress(listen, "no host (use 0.0.0.0 or [::] for all interfaces)")
        return cls(host, _parse_port(listen, port_text))


def _parse_port(listen: str, text: str) -> int:
    if not text.isdigit() or int(text) > MAX_PORT:
        raise InvalidListenAddress(listen, f"port {text!r} is not 0-{MAX_PORT}")
    return int(text)


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
        document["ready"] = state.ready
        document["reasons"] = list(state.reasons)
        return web.json_response(document)

    async def readyz(self, _: web.Request) -> web.Response:
        state = readiness(self.snapshot(), stall_after=self.stall_after)
        return web.json_response(
            {"ready": state.ready, "reasons": list(state.reasons)},
            status=200 if state.ready else 503,
        )


def build_app(snapshot: SnapshotFn, *, stall_after: float = DEFAULT_STALL_AFTER) -> web.Application:
    """The admin routes, with a registry of their own."""
    handlers = _Handlers(snapshot, build_registry(snapshot), stall_after)
    app = web.Application()
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
    runner = web.AppRunner(
        build_app(snapshot, stall_after=stall_after), access_log=None, handle_signals=False
    )
    await runner.setup()
    try:
        yield await _bind(runner, address, listen)
    finally:
        await runner.cleanup()


async def _bind(runner: web.AppRunner, address: ListenAddress, listen: str) -> AdminServer:
    """Start listening; the first bound socket names the server (a host name resolving to
    several addresses binds them all, with port 0 each on its own port)."""
    site = web.TCPSite(runner, address.host, address.port)
    try:
        await site.start()
    except OSError as exc:
        raise AdminBindError(listen, exc.strerror or str(exc)) from exc
    host, port = runner.addresses[0][:2]
    return AdminServer(host=str(host), port=int(port))
