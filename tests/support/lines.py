"""Lines the scenarios write, and a ledger to compare them with what the dev-server got."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import orjson
import pytest

from agent.devserver import DevServer
from tests.support.config import CONNECTION
from tests.support.waiting import eventually


def write_json_lines(path: Path, start: int, count: int, *, pad: str = "x" * 40) -> None:
    """Append JSON lines numbered `start`.. by a `seq` field."""
    with path.open("ab") as out:
        out.write(
            b"".join(
                orjson.dumps(
                    {"seq": n, "event_time": "2026-11-25T10:00:00.000Z", "level": "info", "p": pad}
                )
                + b"\n"
                for n in range(start, start + count)
            )
        )


def sequence_numbers(server: DevServer) -> list[int]:
    return [orjson.loads(line)["seq"] for line in server.received_lines(CONNECTION)]


class Ledger:
    """Every line a scenario wrote, by id, to compare with what the dev-server received."""

    def __init__(self, server: DevServer) -> None:
        self.server = server
        self.written: Counter[str] = Counter()
        self._next = 0

    def __repr__(self) -> str:
        return f"<Ledger written={sum(self.written.values())} received={len(self._ids())}>"

    def lines(self, count: int, tag: str = "l") -> bytes:
        """`count` JSON lines with fresh ids, recorded as written (the caller writes them)."""
        out = []
        for _ in range(count):
            self._next += 1
            ident = f"{tag}-{self._next}"
            self.written[ident] += 1
            out.append(orjson.dumps({"id": ident, "level": "info", "msg": "x" * 30}) + b"\n")
        return b"".join(out)

    def append(self, path: Path, count: int, tag: str = "l") -> None:
        with path.open("ab") as out:
            out.write(self.lines(count, tag))

    def expect(self, data: bytes) -> bytes:
        """Record lines built by the test itself (e.g. identical headers) as written."""
        for line in data.splitlines():
            self.written[orjson.loads(line)["id"]] += 1
        return data

    def _ids(self) -> Counter[str]:
        return Counter(orjson.loads(x)["id"] for x in self.server.received_lines(CONNECTION))

    def missing(self) -> Counter[str]:
        return self.written - self._ids()

    def duplicates(self) -> int:
        """Lines received more often than written (at least once allows them; we count)."""
        return sum((self._ids() - self.written).values())

    def duplicated_ids(self) -> list[str]:
        return sorted((self._ids() - self.written).keys())

    def unexpected(self) -> set[str]:
        return set(self._ids()) - set(self.written)

    async def all_received(self, within: float = 30, what: str = "") -> int:
        """Wait until every line written has arrived; report and return the duplicates."""
        try:
            await eventually(lambda: not self.missing(), within=within, what=what)
        except AssertionError:
            missing = self.missing()
            raise AssertionError(
                f"{sum(missing.values())} lines lost ({what}): {sorted(missing)[:10]}"
            ) from None
        dups = self.duplicates()
        print(f"[{what}] written={sum(self.written.values())} duplicates={dups}")
        return dups


@pytest.fixture
def ledger(dev_server: DevServer) -> Ledger:
    return Ledger(dev_server)
