"""What a test can see of a running agent, the same for the child process and the in-process
agent: its checkpoints (the file it saves), its structured events, what the dev-server
received, and conditions over them to wait on."""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

import orjson

from agent.devserver import DevServer
from tests.support.config import CONNECTION
from tests.support.waiting import Condition, wait_until


class Probes(ABC):
    data_dir: Path
    server: DevServer | None

    @abstractmethod
    def events(self) -> list[dict[str, Any]]:
        """The structured log events the agent wrote, in order."""

    def named(self, event: str) -> list[dict[str, Any]]:
        return [e for e in self.events() if e.get("event") == event]

    def checkpoints(self) -> dict[str, int]:
        """Offsets by path, as last saved to disk (what a restart would resume from)."""
        path = self.data_dir / "checkpoints.json"
        if not path.exists():
            return {}
        return {f["path"]: f["offset"] for f in orjson.loads(path.read_bytes())["files"]}

    # -- conditions ---------------------------------------------------------------------

    def checkpointed(self, path: Path, offset: int | None = None) -> Condition:
        """The saved checkpoint of `path` is at `offset` (default: the file's current end)."""

        def check() -> bool:
            want = path.stat().st_size if offset is None else offset
            return self.checkpoints().get(str(path)) == want

        where = "its end" if offset is None else f"offset {offset}"
        return Condition(f"{path.name} checkpointed at {where}", check)

    def received(self, count: int, connection: str = CONNECTION) -> Condition:
        """The dev-server holds at least `count` events on `connection`."""
        server = self.server
        assert server is not None, "received() needs the agent's dev-server"
        return Condition(
            f"{count} events received on {connection!r}",
            lambda: len(server.received_lines(connection)) >= count,
        )

    def event(self, name: str, **fields: Any) -> Condition:
        """The agent logged `name` (with these field values, if given)."""

        def check() -> bool:
            return any(all(e.get(k) == v for k, v in fields.items()) for e in self.named(name))

        return Condition(f"event {name} {fields or ''}".rstrip(), check)

    async def wait_until(self, *conditions: Condition, within: float = 30) -> None:
        await wait_until(*conditions, within=within)
