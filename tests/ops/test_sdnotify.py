"""sd_notify against a real AF_UNIX datagram socket, the way systemd listens."""

from __future__ import annotations

import asyncio
import os
import re
import socket
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import structlog

from agent.ops.sdnotify import Notifier, ping_watchdog


@dataclass
class Systemd:
    """The receiving end of NOTIFY_SOCKET."""

    sock: socket.socket
    notify_socket: str  # what systemd would put in the environment

    def receive(self) -> bytes:
        return self.sock.recv(4096)

    def pending(self) -> list[bytes]:
        self.sock.setblocking(False)
        try:
            received: list[bytes] = []
            while True:
                try:
                    received.append(self.sock.recv(4096))
                except BlockingIOError:
                    return received
        finally:
            self.sock.setblocking(True)


@pytest.fixture
def systemd(tmp_path: Path) -> Iterator[Systemd]:
    path = tmp_path / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        sock.settimeout(5)
        yield Systemd(sock, str(path))


@pytest.fixture
def abstract_systemd() -> Iterator[Systemd]:
    name = f"polaris-agent-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(5)
        yield Systemd(sock, "@" + name)


@pytest.fixture
def notifier(systemd: Systemd, monkeypatch: pytest.MonkeyPatch) -> Notifier:
    monkeypatch.setenv("NOTIFY_SOCKET", systemd.notify_socket)
    return Notifier()


def test_ready(notifier: Notifier, systemd: Systemd) -> None:
    notifier.ready()
    notifier.ready("shipping: 0 events sent")

    assert systemd.receive() == b"READY=1"
    assert systemd.receive() == b"READY=1\nSTATUS=shipping: 0 events sent"


def test_status_stays_one_line(notifier: Notifier, systemd: Systemd) -> None:
    notifier.status("auth failing:\n3 events sent")

    assert systemd.receive() == b"STATUS=auth failing: 3 events sent"


def test_stopping_and_watchdog(notifier: Notifier, systemd: Systemd) -> None:
    notifier.stopping()
    notifier.watchdog()

    assert systemd.receive() == b"STOPPING=1"
    assert systemd.receive() == b"WATCHDOG=1"


def test_reloading_carries_the_monotonic_clock(notifier: Notifier, systemd: Systemd) -> None:
    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    notifier.reloading()
    after = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000

    match = re.fullmatch(rb"RELOADING=1\nMONOTONIC_USEC=(\d+)", systemd.receive())
    assert match is not None
    assert before <= int(match[1]) <= after


def test_abstract_socket(abstract_systemd: Systemd) -> None:
    notifier = Notifier({"NOTIFY_SOCKET": abstract_systemd.notify_socket})

    notifier.ready("up")

    assert abstract_systemd.receive() == b"READY=1\nSTATUS=up"


def test_without_notify_socket_nothing_happens(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    monkeypatch.setenv("WATCHDOG_USEC", "10000000")
    notifier = Notifier()

    with structlog.testing.capture_logs() as events:
        notifier.ready("up")
        notifier.status("x")
        notifier.reloading()
        notifier.watchdog()
        notifier.stopping()

    assert not notifier.enabled
    assert notifier.watchdog_interval() is None
    assert events == []


def test_a_vanished_systemd_is_reported_once_and_ignored(tmp_path: Path) -> None:
    notifier = Notifier({"NOTIFY_SOCKET": str(tmp_path / "gone")})

    with structlog.testing.capture_logs() as events:
        notifier.ready()
        notifier.watchdog()
        notifier.stopping()

    assert [(e["event"], e["log_level"]) for e in events] == [("sd_notify_failed", "warning")]


def test_an_unsupported_socket_kind_is_reported_and_disabled() -> None:
    with structlog.testing.capture_logs() as events:
        notifier = Notifier({"NOTIFY_SOCKET": "vsock:2:1234"})
        notifier.ready()

    assert not notifier.enabled
    assert [e["event"] for e in events] == ["sd_notify_unsupported_socket"]


@pytest.mark.parametrize(
    ("environ", "interval"),
    [
        ({"WATCHDOG_USEC": "10000000"}, 5.0),
        ({"WATCHDOG_USEC": "10000000", "WATCHDOG_PID": str(os.getpid())}, 5.0),
        ({"WATCHDOG_USEC": "10000000", "WATCHDOG_PID": str(os.getpid() + 1)}, None),
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "soon"}, None),
        ({}, None),
    ],
)
def test_watchdog_interval_is_half_of_watchdog_sec(
    systemd: Systemd, environ: dict[str, str], interval: float | None
) -> None:
    notifier = Notifier({"NOTIFY_SOCKET": systemd.notify_socket, **environ})

    assert notifier.watchdog_interval() == interval


async def test_watchdog_pings_until_stopped(systemd: Systemd) -> None:
    notifier = Notifier({"NOTIFY_SOCKET": systemd.notify_socket, "WATCHDOG_USEC": "100000"})
    stop = asyncio.Event()

    async with asyncio.timeout(5):
        async with asyncio.TaskGroup() as group:
            group.create_task(ping_watchdog(notifier, stop))
            await asyncio.sleep(0.17)  # a measurement window: pings at 0, 0.05, 0.10, 0.15
            stop.set()

    pings = systemd.pending()
    assert 2 <= len(pings) <= 5
    assert set(pings) == {b"WATCHDOG=1"}


async def test_no_watchdog_no_pings(systemd: Systemd) -> None:
    notifier = Notifier({"NOTIFY_SOCKET": systemd.notify_socket})

    async with asyncio.timeout(1):
        await ping_watchdog(notifier, asyncio.Event())  # returns at once

    assert systemd.pending() == []
