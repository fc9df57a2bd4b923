"""The read time and Polaris' late/early window, as one encoder sees them for one block."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, Final

import orjson

from agent.encode.times import epoch_unit
from agent.encode.values import NOW, json_text
from agent.parse.timestamps import iso_from_millis

EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_LAST: Final = 253_402_300_799  # 9999-12-31T23:59:59Z, the last second datetime can hold
_MARGIN: Final = 86400  # a day inside each edge: the line path rounds to milliseconds
_NUMBERS: Final = (int, float)


def iso_utc(epoch: float) -> str:
    """``2026-11-26T01:02:03.456Z`` for a `time.time()` value."""
    return iso_from_millis(int(epoch * 1000))


class ReadClock:
    """The read time stamped on events without one, and the edges of the late/early window
    (Polaris silently drops events outside it: they are refused here, with a dead letter).

    `tick` reads the clock once per block: every line of a block gets the same read time,
    and the block path compares against `inside`, a day within each edge, so that only
    times near an edge need the exact, line-by-line check.
    """

    __slots__ = (
        "_early_ms",
        "_late_ms",
        "_now",
        "_time_key",
        "inside",
        "inside_millis",
        "inside_naive",
        "now_ms",
        "stamp",
        "time_suffix",
    )

    def __init__(self, now: NOW, time_field: str, late_window: float, early_window: float) -> None:
        self._now = now
        self._time_key = json_text(time_field)
        self._late_ms = int(late_window * 1000)
        self._early_ms = int(early_window * 1000)
        self.stamp = ""
        self.time_suffix = b""
        self.now_ms = 0
        # Times safely inside the window, for whole blocks: aware, and naive (read as UTC).
        self.inside = (EPOCH, EPOCH)
        self.inside_naive = (EPOCH.replace(tzinfo=None), EPOCH.replace(tzinfo=None))
        self.inside_millis = (0.0, 0.0)
        self.tick()

    def __repr__(self) -> str:
        return f"<ReadClock {self.stamp} late_ms={self._late_ms} early_ms={self._early_ms}>"

    def tick(self) -> None:
        """The read time for events without one, and the window's edges, once per block."""
        now = self._now()
        self.stamp = iso_utc(now)
        self.time_suffix = b"," + self._time_key + b":" + orjson.dumps(self.stamp)
        self.now_ms = int(now * 1000)
        earliest = EPOCH + timedelta(seconds=now - self._late_ms / 1000 + _MARGIN)
        latest = EPOCH + timedelta(seconds=min(now + self._early_ms / 1000 - _MARGIN, _LAST))
        self.inside = (earliest, latest)
        self.inside_naive = (earliest.replace(tzinfo=None), latest.replace(tzinfo=None))
        self.inside_millis = (
            (now - self._late_ms / 1000 + _MARGIN) * 1000,
            min(now + self._early_ms / 1000 - _MARGIN, _LAST) * 1000,
        )

    def outside(self, millis: int) -> str | None:
        """ "too_late" / "too_early" for a time Polaris would drop silently."""
        if millis < self.now_ms - self._late_ms:
            return "too_late"
        if millis > self.now_ms + self._early_ms:
            return "too_early"
        return None

    def well_inside(self, times: list[Any]) -> bool:
        """Every time a datetime a day or more inside the window (those near an edge are
        checked exactly, line by line). Naive times are read as UTC, as the line path does;
        naive and aware times in one block do not compare, and go line by line; so do None
        and msgspec's UNSET (a time null or missing), which compare with nothing and have no
        ``tzinfo``: one pass each for min and max, no search for them first."""
        try:
            earliest, latest = self.inside if times[0].tzinfo else self.inside_naive
            return bool(earliest < min(times) and max(times) < latest)
        except (TypeError, AttributeError):
            return False

    def epochs_well_inside(self, numbers: list[Any]) -> bool:
        """Every time an epoch number a day or more inside the window, read as the line path
        reads a number under the time field (`parse_epoch`: its resolution by magnitude).
        Numbers of one resolution are in the order of their times, so the least and the
        greatest decide; two resolutions, a number not above 0, or anything but numbers
        (None, UNSET, datetimes: they do not compare, or are no int or float) go line by
        line. Ints beyond a float (``1e400`` written out) overflow and go too."""
        try:
            low, high = min(numbers), max(numbers)
            if type(low) not in _NUMBERS or type(high) not in _NUMBERS or low <= 0:
                return False
            unit = epoch_unit(low)
            if epoch_unit(high) != unit:
                return False
            earliest, latest = self.inside_millis
            return bool(earliest < low * unit and high * unit < latest)
        except (TypeError, OverflowError, ValueError):
            return False
