"""A refused event is placed by its run's offsets; a run with more lines than offsets (a spool
file or dead letter made by hand, or by a defect) places it nowhere instead of raising."""

from __future__ import annotations

from agent.records import Origin
from agent.ship.payload import UNKNOWN, PieceOrigins


def test_an_event_past_its_runs_offsets_is_placed_nowhere_not_an_index_error() -> None:
    body = b'{"a":1}\n{"a":2}\n{"a":3}\n'
    origins = PieceOrigins(((len(body), Origin("/logs/app.log", [10, 20])),))
    assert origins.locate(body, 0) == ("/logs/app.log", 10)
    assert origins.locate(body, body.index(b'{"a":2}')) == ("/logs/app.log", 20)
    assert origins.locate(body, body.index(b'{"a":3}')) == UNKNOWN
