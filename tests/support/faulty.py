"""An encoder with a defect on demand: the real one, except that it raises where told.

A fake of our own code, for the tests that prove an encoder's exception costs its lines and
never the agent (`agent.tail.quarantine`)."""

from __future__ import annotations

from typing import Any

import pytest

from agent.encode import Encoded, LineEncoder
from agent.tail import encoders

POISON = b"BOOM"


class Faulty:
    """The real encoder, except that a block holding `POISON` raises OverflowError (what a
    time beyond datetime's range raised), and a flush raises once `failing_flush` is set."""

    failing_flush = False

    def __init__(self, real: LineEncoder) -> None:
        self._real = real

    def encode(self, block: bytes, start_offset: int) -> Encoded:
        if POISON in block:
            raise OverflowError("date value out of range")
        return self._real.encode(block, start_offset)

    def flush(self, now: float | None = None, *, force: bool = False) -> Encoded:
        if Faulty.failing_flush:
            raise ValueError("a held record it cannot write")
        return self._real.flush(now, force=force)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


def install_faulty_encoders(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every file's encoder from now on is a `Faulty` around the real one."""
    real = encoders.encoder_for
    monkeypatch.setattr(Faulty, "failing_flush", False)
    monkeypatch.setattr(encoders, "encoder_for", lambda *a, **k: Faulty(real(*a, **k)))
