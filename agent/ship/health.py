"""Whether the endpoint works: the flags /readyz reads, and one log line per change of state
(not one per request). Never the key, never a URL path or query: only a Location's host."""

from __future__ import annotations

import time
from collections.abc import Callable

import structlog

from agent.ship.errors import (
    AuthFailed,
    ConnectionMissing,
    DeliveryError,
    EndpointRefused,
    Redirected,
)

log = structlog.get_logger("agent.sender")


class EndpointHealth:
    """Set by refusals and failures, cleared by the next success."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self.auth_failing = False
        self.endpoint_failing = ""  # reason of the last EndpointRefused but auth
        self.outage = False  # a batch gave up: live batches go straight to the spool
        self.last_success = 0.0

    def __repr__(self) -> str:
        state = "outage" if self.outage else "ok"
        failing = " auth_failing" if self.auth_failing else ""
        refusing = f" refusing={self.endpoint_failing}" if self.endpoint_failing else ""
        return f"<EndpointHealth {state}{failing}{refusing}>"

    def delivered(self) -> None:
        """A request was acknowledged: every failing state ends."""
        self.last_success = self._clock()
        if self.outage:
            self.outage = False
            log.info("outage_over")
        if self.auth_failing:
            self.auth_failing = False
            log.info("auth_recovered")
        if self.endpoint_failing:
            log.info("endpoint_recovered", reason=self.endpoint_failing)
            self.endpoint_failing = ""

    def begin_outage(self, error: DeliveryError) -> None:
        """A delivery gave up: until a success, live batches go to the spool."""
        if not self.outage:
            self.outage = True
            log.warning("outage_spooling", reason=error.reason, error=str(error))

    def refused(self, error: EndpointRefused, connection: str, message: str) -> None:
        """One error line when the endpoint starts refusing, and the flag that makes /readyz
        say so until a request succeeds."""
        if isinstance(error, AuthFailed):
            if not self.auth_failing:
                self.auth_failing = True
                log.error("auth_failed", status=error.status, message=message)
            return
        if self.endpoint_failing == error.reason:
            return
        self.endpoint_failing = error.reason
        if isinstance(error, Redirected):
            log.error(
                "redirect_refused",
                status=error.status,
                location_host=error.location_host,
                connection=connection,
                hint="check polaris.url: redirects are never followed; the data is kept",
            )
        elif isinstance(error, ConnectionMissing):
            log.error(
                "connection_missing",
                connection=connection,
                message=message,
                hint="create the connection (polaris-agent setup) or fix polaris.connection; "
                "the data is kept",
            )
        else:
            log.error(
                "endpoint_refuses_everything",
                reason=error.reason,
                connection=connection,
                error=str(error),
                hint="every part of a batch was refused alike; the data is kept",
            )
