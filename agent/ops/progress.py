"""The progress line of `run --once` on a terminal: files, bytes read, MB/s, ETA.

Drawn on stderr with a carriage return, twice a second, only when stderr is a terminal (a
pipe, a file or the journal never see it); cleared when the run ends. It reads the same
`AgentSnapshot` /metrics reads: nothing is counted for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Final, TextIO

from agent.ops.snapshot import AgentSnapshot

EVERY_SECS: Final = 0.5
_SMOOTHING: Final = 0.3  # weight of the newest rate in the moving average
_CLEAR: Final = "\r\x1b[K"


def human_bytes(count: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if abs(count) < 1000:
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1000
    return f"{count:.1f} TB"


def _clock_text(seconds: float) -> str:
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


class Progress:
    """Turns successive snapshots into one line; `rate` is bytes read per second, smoothed."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._last: tuple[float, int] | None = None
        self.rate = 0.0

    def line(self, snap: AgentSnapshot) -> str:
        now = self._clock()
        read = sum(s.bytes_read for s in snap.sources)
        if self._last is not None and now > self._last[0]:
            instant = (read - self._last[1]) / (now - self._last[0])
            self.rate = (
                instant if self.rate == 0 else (_SMOOTHING * instant + (1 - _SMOOTHING) * self.rate)
            )
        self._last = (now, read)
        left = sum(s.checkpoint_lag_bytes for s in snap.sources)
        files = sum(s.files for s in snap.sources)
        eta = _clock_text(left / self.rate) if self.rate > 0 and left else "--:--"
        return (
            f"{files} files  {human_bytes(read)} read  {human_bytes(self.rate)}/s"
            f"  {snap.events_sent} events sent  {human_bytes(left)} left  ETA {eta}"
        )


async def show_progress(
    snapshot: Callable[[], AgentSnapshot], done: asyncio.Event, out: TextIO
) -> None:
    """Redraw the line until `done`; then clear it. Call only when `out` is a terminal."""
    progress = Progress()
    try:
        while not done.is_set():
            out.write(_CLEAR + progress.line(snapshot()))
            out.flush()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(done.wait(), EVERY_SECS)
    finally:
        out.write(_CLEAR)
        out.flush()
