"""Faults a test switches on to see how a client copes: error answers, slowness, resets.

The same `Faults` object is driven from Python fixtures and from `POST /_dev/faults`; it also
holds the two limits tests like to shrink (rate limit, payload size), so `clear()` puts the
server back exactly as it was built. Faults apply to the Events API only.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from agent.devserver.errors import BadRequest
from agent.devserver.ratelimit import FixedWindowRateLimiter


@dataclass(frozen=True, slots=True)
class FaultAnswer:
    """An error answer given instead of processing the request (the data is not kept)."""

    status: int
    retry_after: float | None = None
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class FaultPlan:
    """What happens to one Events request: reset it, or answer after `delay` seconds,
    with `answer` when set, else normally."""

    reset: bool = False
    delay: float = 0.0
    answer: FaultAnswer | None = None


NO_FAULT = FaultPlan()


def _check_status(status: int) -> int:
    if not 100 <= status <= 599:
        raise BadRequest(f"status must be an HTTP status code, got {status}")
    return status


class Faults:
    """Pending faults, consumed one request at a time in arrival order."""

    def __init__(
        self,
        *,
        rate_limit_per_minute: int,
        max_payload_bytes: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._clock = clock
        self._default_rate_limit = rate_limit_per_minute
        self._default_max_payload = max_payload_bytes
        self.rate_limiter = FixedWindowRateLimiter(rate_limit_per_minute, clock)
        self.max_payload_bytes = max_payload_bytes
        self._fail_next: list[FaultAnswer] = []
        self._fail_until = 0.0
        self._fail_for: FaultAnswer | None = None
        self._delay_seconds = 0.0
        self._delay_count: int | None = 0
        self._resets = 0
        self._refused_markers: list[bytes] = []

    def __repr__(self) -> str:
        return (
            f"<Faults fail_next={len(self._fail_next)} resets={self._resets} "
            f"delay={self._delay_seconds}x{self._delay_count} rate={self.rate_limiter.limit}/min "
            f"max_payload={self.max_payload_bytes}>"
        )

    def fail_next(
        self,
        status: int,
        count: int = 1,
        *,
        retry_after: float | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """The next `count` Events requests answer `status`; their data is not kept."""
        answer = FaultAnswer(_check_status(status), retry_after, dict(headers or {}))
        self._fail_next.extend([answer] * count)

    def fail_for(self, status: int, seconds: float, *, retry_after: float | None = None) -> None:
        """Every Events request in the next `seconds` answers `status`."""
        self._fail_for = FaultAnswer(_check_status(status), retry_after)
        self._fail_until = self._clock() + seconds

    def delay(self, seconds: float, count: int | None = None) -> None:
        """Hold back the next `count` responses (all when None) by `seconds`.

        The request is processed first (its data is kept), as a slow server or network would.
        """
        self._delay_seconds = seconds
        self._delay_count = count

    def refuse_events_containing(self, marker: str) -> None:
        """Answer 400 to every Events request holding an event with `marker` in it, as Polaris
        refuses a payload for one bad event: a client must isolate that event, not the rest."""
        self._refused_markers.append(marker.encode())

    def refuses(self, events: list[bytes]) -> bool:
        """True when one of `events` holds a marker set by `refuse_events_containing`."""
        return any(m in event for m in self._refused_markers for event in events)

    def reset_next(self, count: int = 1) -> None:
        """Abort the TCP connection of the next `count` Events requests, with no response."""
        self._resets += count

    def set_rate_limit(self, per_minute: int) -> None:
        """Change the per-minute budget; a fresh window starts at the next request."""
        self.rate_limiter.set_limit(per_minute)

    def set_max_payload(self, max_bytes: int) -> None:
        """Change the payload limit (applies to the compressed and the decompressed body)."""
        self.max_payload_bytes = max_bytes

    def clear(self) -> None:
        """Drop every pending fault and restore the limits the server was built with."""
        self._fail_next.clear()
        self._fail_for = None
        self._fail_until = 0.0
        self._delay_seconds = 0.0
        self._delay_count = 0
        self._resets = 0
        self._refused_markers.clear()
        self.rate_limiter.set_limit(self._default_rate_limit)
        self.max_payload_bytes = self._default_max_payload

    def next_request(self) -> FaultPlan:
        """Decide (and consume) the faults for one Events request."""
        if self._resets > 0:
            self._resets -= 1
            return FaultPlan(reset=True)
        delay = self._take_delay()
        answer: FaultAnswer | None = None
        if self._fail_next:
            answer = self._fail_next.pop(0)
        elif self._fail_for is not None and self._clock() < self._fail_until:
            answer = self._fail_for
        if answer is None and delay == 0.0:
            return NO_FAULT
        return FaultPlan(delay=delay, answer=answer)

    def _take_delay(self) -> float:
        if self._delay_seconds <= 0:
            return 0.0
        if self._delay_count is None:
            return self._delay_seconds
        if self._delay_count <= 0:
            return 0.0
        self._delay_count -= 1
        return self._delay_seconds


def apply_admin_command(faults: Faults, command: Mapping[str, Any]) -> None:
    """Run one `POST /_dev/faults` command, e.g. `{"action": "fail_next", "status": 503}`."""
    action = command.get("action")
    try:
        if action == "fail_next":
            faults.fail_next(
                int(command["status"]),
                int(command.get("count", 1)),
                retry_after=_opt_float(command.get("retry_after")),
                headers={str(k): str(v) for k, v in dict(command.get("headers") or {}).items()},
            )
        elif action == "fail_for":
            faults.fail_for(
                int(command["status"]),
                float(command["seconds"]),
                retry_after=_opt_float(command.get("retry_after")),
            )
        elif action == "delay":
            count = command.get("count")
            faults.delay(float(command["seconds"]), None if count is None else int(count))
        elif action == "reset_next":
            faults.reset_next(int(command.get("count", 1)))
        elif action == "set_rate_limit":
            faults.set_rate_limit(int(command["per_minute"]))
        elif action == "set_max_payload":
            faults.set_max_payload(int(command["bytes"]))
        elif action == "clear":
            faults.clear()
        else:
            raise BadRequest(
                f"unknown fault action {action!r}; expected one of fail_next, fail_for, delay, "
                "reset_next, set_rate_limit, set_max_payload, clear"
            )
    except KeyError as exc:
        raise BadRequest(f"fault action {action!r} needs the field {exc.args[0]!r}") from None
    except (TypeError, ValueError) as exc:
        raise BadRequest(f"fault action {action!r}: {exc}") from None


def _opt_float(value: object) -> float | None:
    return None if value is None else float(str(value))
