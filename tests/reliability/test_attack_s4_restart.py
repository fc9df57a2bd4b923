"""Attack round s4: the real agent, started over state a crash, a bug or a person left
behind, ships every line and exits 0 instead of exiting 1 at every start."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from agent.devserver import DevServer
from tests.support.lines import Ledger


@pytest.mark.parametrize(
    ("field", "value"),
    [("offset", -5), ("fingerprint_len", "a"), ("seen_at", "now")],
)
async def test_a_checkpoint_with_a_wrong_field_is_passed_over_and_every_line_ships(
    dev_server: DevServer, file_agent, ledger: Ledger, log_dir: Path, field: str, value: object
) -> None:
    log = log_dir / "app.log"
    agent = file_agent()
    ledger.append(log, 100)
    assert await agent.run_once() == 0
    checkpoints = agent.data_dir / "checkpoints.json"
    doc = orjson.loads(checkpoints.read_bytes())
    doc["files"][0][field] = value
    checkpoints.write_bytes(orjson.dumps(doc))
    (agent.data_dir / "checkpoints.json.prev").unlink(missing_ok=True)

    ledger.append(log, 100)
    assert await agent.run_once() == 0

    assert not ledger.missing()
    assert agent.named("checkpoint_unreadable")
