"""`api.listen`: the admin endpoint's `host:port`, parsed by the one set of rules that both
config validation and the endpoint use."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

MAX_PORT: Final = 65535


class InvalidListenAddress(ValueError):
    """`api.listen` is not `host:port` (IPv6 as `[addr]:port`)."""

    def __init__(self, listen: str, problem: str) -> None:
        super().__init__(f"api.listen {listen!r}: {problem} (expected host:port or [ipv6]:port)")
        self.listen = listen


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
