"""sd_notify(3) by hand: one datagram per notification to `$NOTIFY_SOCKET`.

A dependency for this would be larger than the protocol (see tooling notes §1.4). Outside
systemd (a terminal, a container, Kubernetes) `NOTIFY_SOCKET` is unset and every call is a
no-op. A failure to send is logged once and otherwise ignored: the agent must keep shipping
if systemd goes away or the socket is full.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import Mapping

import structlog


class Notifier:
    """Tells systemd about readiness, reloads, shutdown and liveness (Type=notify units)."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        value = env.get("NOTIFY_SOCKET", "")
        self._address = _socket_address(value)
        if value and self._address is None:
            _logger().warning("sd_notify_unsupported_socket", notify_socket=value)
        self._watchdog_usec = _watchdog_usec(env)
        self._warned = False

    def __repr__(self) -> str:
        return f"<Notifier socket={self._address!r} watchdog_usec={self._watchdog_usec}>"

    @property
    def enabled(self) -> bool:
        return self._address is not None

    def ready(self, status: str | None = None) -> None:
        self.notify("READY=1", *_status(status))

    def status(self, text: str) -> None:
        self.notify(*_status(text))

    def reloading(self) -> None:
        """RELOADING=1 with the monotonic timestamp systemd ≥ 253 requires for Type=notify-reload;
        send `ready()` when the reload is done."""
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        self.notify("RELOADING=1", f"MONOTONIC_USEC={usec}")

    def stopping(self) -> None:
        self.notify("STOPPING=1")

    def watchdog(self) -> None:
        self.notify("WATCHDOG=1")

    def watchdog_interval(self) -> float | None:
        """Seconds between `watchdog()` pings (half of WatchdogSec), or None: no watchdog."""
        if self._address is None or self._watchdog_usec is None:
            return None
        return self._watchdog_usec / 2 / 1_000_000

    def notify(self, *assignments: str) -> None:
        """Send `KEY=value` lines as one datagram; never raises, never blocks."""
        if self._address is None:
            return
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.setblocking(False)
                sock.connect(self._address)
                sock.sendall("\n".join(assignments).encode())
        except OSError as exc:
            self._warn_once(exc)

    def _warn_once(self, exc: OSError) -> None:
        if not self._warned:
            self._warned = True
            _logger().warning("sd_notify_failed", socket=self._address, error=str(exc))


async def ping_watchdog(notifier: Notifier, stop: asyncio.Event) -> None:
    """Ping the watchdog every `watchdog_interval()` until `stop` is set.

    Run it in the agent's TaskGroup: pings come from the event loop itself, so a stuck loop
    stops them and systemd restarts the agent. Returns at once when there is no watchdog.
    """
    interval = notifier.watchdog_interval()
    if interval is None:
        return
    while not stop.is_set():
        notifier.watchdog()
        try:
            await asyncio.wait_for(stop.wait(), interval)
        except TimeoutError:
            continue


def _socket_address(value: str) -> str | None:
    """A path, or `@name` for the abstract namespace. Anything else (unset, vsock:) is None."""
    if value.startswith("@"):
        return "\0" + value[1:]
    return value if value.startswith("/") else None


def _watchdog_usec(env: Mapping[str, str]) -> int | None:
    """WATCHDOG_USEC when it is meant for this process (WATCHDOG_PID unset or ours)."""
    pid = env.get("WATCHDOG_PID")
    if pid is not None and pid != str(os.getpid()):
        return None
    usec = env.get("WATCHDOG_USEC", "")
    return int(usec) if usec.isdigit() and int(usec) > 0 else None


def _status(text: str | None) -> tuple[str, ...]:
    """STATUS= is one line: a newline would start a new assignment."""
    return () if text is None else ("STATUS=" + " ".join(text.splitlines()),)


def _logger() -> structlog.typing.FilteringBoundLogger:
    """Looked up at the (rare) moment of use, so it follows the current structlog config."""
    logger: structlog.typing.FilteringBoundLogger = structlog.get_logger(__name__)
    return logger
