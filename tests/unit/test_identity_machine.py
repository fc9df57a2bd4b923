"""File identity against a model: whatever sequence of writes, reads, rotations (rename and a
new file), copytruncate and restarts happens, every complete line is emitted exactly once,
and each content's lines in the order they were written.

A Hypothesis state machine drives a real Tailer over real files; the model is the list of
complete lines written. The tailer reads whenever the machine says so, so rotations and
truncations land at any point relative to what was read (none in the middle of a line:
logrotate cuts between lines, and a cut line is the writer's loss, not the agent's).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from pathlib import Path

import orjson
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from agent.config import SourceConfig
from agent.encode import EncodeLimits
from agent.records import Piece
from agent.state.acks import AckTracker
from agent.state.checkpoint import FileCheckpoint
from agent.state.deadletter import DeadLetters
from agent.tail.tailer import Tailer

PASSES_TO_SETTLE = 6  # an adopted copy is read from the pass after the truncation is seen


class Rotations(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="identity-"))
        self.log = self.dir / "app.log"
        self.log.write_bytes(b"")
        self.source = SourceConfig(name="app", include=[f"{self.dir}/app.log*"], format="text")
        self.content = 0  # which content app.log holds now: a new one after each cut
        self.numbers = 0
        self.rotated = 0
        self.half = b""  # the first half of a line being written, or nothing
        self.written: list[str] = []  # complete lines, in the order they were written
        self.emitted: list[str] = []
        self.dead_letters = DeadLetters(self.dir / "dead")
        self.acks = AckTracker()
        self.tailer = self._start([])

    def _start(self, saved: list[FileCheckpoint]) -> Tailer:
        async def emit(piece: Piece) -> None:
            self.acks.complete(piece.ticket)  # delivered at once: checkpoints follow reads
            self.emitted += [orjson.loads(x)["message"] for x in piece.data.splitlines()]

        return Tailer(
            [self.source],
            saved,
            acks=self.acks,
            dead_letters=self.dead_letters,
            emit=emit,
            limits=EncodeLimits(max_event_bytes=1_000_000, piece_bytes=4096),
        )

    def teardown(self) -> None:
        self.tailer.close()
        self.dead_letters.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def _append(self, data: bytes) -> None:
        with self.log.open("ab") as out:
            out.write(data)

    def _pass(self) -> None:
        async def one() -> None:
            self.tailer.scan()
            await self.tailer.read_all(asyncio.Event())

        asyncio.run(one())

    # -- what writers and logrotate do ----------------------------------------------------

    @rule(count=st.integers(1, 40))
    def write_lines(self, count: int) -> None:
        lines = [f"c{self.content} n{self.numbers + i}" for i in range(count)]
        self.numbers += count
        data = "".join(f"{line}\n" for line in lines).encode()
        if self.half:  # this write's first line completes the half line
            lines[0] = self.half.decode() + lines[0]
            self.half = b""
        self._append(data)
        self.written += lines

    @precondition(lambda self: not self.half)
    @rule()
    def write_half_a_line(self) -> None:
        self.half = f"c{self.content} half{self.numbers} ".encode()
        self.numbers += 1
        self._append(self.half)

    @precondition(lambda self: not self.half)
    @rule()
    def rotate_by_rename(self) -> None:
        self.rotated += 1
        self.log.rename(self.dir / f"app.log.{self.rotated}")
        self.log.write_bytes(b"")
        self.content += 1

    @precondition(lambda self: not self.half)
    @rule()
    def copytruncate(self) -> None:
        self.rotated += 1
        shutil.copyfile(self.log, self.dir / f"app.log.{self.rotated}")
        with self.log.open("r+b") as out:
            out.truncate(0)
        self.content += 1

    # -- what the agent does ----------------------------------------------------------------

    @rule()
    def read(self) -> None:
        self._pass()

    @rule()
    def restart(self) -> None:
        saved = self.tailer.checkpoints()
        self.tailer.close()
        self.acks = AckTracker()
        self.tailer = self._start(saved)

    @rule()
    def settle(self) -> None:
        """Enough passes for everything written to be read: then all of it was emitted."""
        for _ in range(PASSES_TO_SETTLE):
            self._pass()
        assert sorted(self.emitted) == sorted(self.written), "every complete line, once"

    # -- what must always hold ------------------------------------------------------------

    @invariant()
    def nothing_is_emitted_twice_or_invented(self) -> None:
        assert len(set(self.emitted)) == len(self.emitted), "a line emitted twice"
        assert set(self.emitted) <= set(self.written), "a line never written (or cut)"

    @invariant()
    def each_content_in_the_order_written(self) -> None:
        position = {line: i for i, line in enumerate(self.written)}
        last: dict[str, int] = {}
        for line in self.emitted:
            content = line.split(" ")[0]
            assert position[line] > last.get(content, -1), f"{line} out of order"
            last[content] = position[line]


def test_copytruncate_restart_then_rename_emits_the_line_once() -> None:
    """Found by this machine: the line was read and checkpointed (a restart saves the
    checkpoints: an orderly stop, not a crash), then app.log copytruncated to app.log.1, the
    agent restarted, the truncated app.log renamed to app.log.2. The copy is the checkpoint's
    content; it was read from 0 again (see test_tailer's regression test)."""
    machine = Rotations()
    try:
        machine.write_lines(count=1)
        machine.read()
        machine.copytruncate()
        machine.restart()
        machine.rotate_by_rename()
        machine.settle()
        machine.nothing_is_emitted_twice_or_invented()
        machine.each_content_in_the_order_written()
    finally:
        machine.teardown()


RANDOM_EXAMPLES = int(os.environ.get("IDENTITY_MACHINE_EXAMPLES", "0"))
"""0 (CI): the same 60 derandomized examples on every run, so a seed never turns CI red on an
unrelated change. N: N random examples, for a longer hunt (IDENTITY_MACHINE_EXAMPLES=2000)."""

TestRotations = Rotations.TestCase
TestRotations.settings = settings(
    max_examples=RANDOM_EXAMPLES or 60,
    stateful_step_count=30,
    deadline=None,
    derandomize=not RANDOM_EXAMPLES,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
