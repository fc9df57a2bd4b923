"""What a SIGKILL may repeat, counted exactly from what the killed agent left on disk.

After a SIGKILL the agent resumes each file at its checkpoint: the lines from there on are
read and sent again, once. So the repeats one kill can cause are the lines at or past the
checkpoint on disk that the dev-server had already accepted when the agent was started
again; nothing else is sent twice (no retries without faults that lose answers). Unlike a
window of time around each kill (tests/reliability/test_chaos.py's `Kills`, which must
guess how late a loaded machine takes in answers and writes checkpoints), this holds
however slow the machine is.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from agent.state.checkpoint import CheckpointStore
from agent.state.layout import checkpoint_path


def resume_line(data_dir: Path, log: Path) -> int:
    """How many of `log`'s lines come before the checkpoint the agent left in `data_dir`
    (the number of the first line it reads again); 0 when it has none for the file."""
    stat = log.stat()
    records = CheckpointStore(checkpoint_path(data_dir)).load()
    offset = next((r.offset for r in records if (r.dev, r.ino) == (stat.st_dev, stat.st_ino)), 0)
    with log.open("rb") as data:
        return data.read(offset).count(b"\n")


@dataclass
class CheckpointedKills:
    """One log of lines numbered 0.. in the order written, killed and restarted in turn."""

    log: Path
    data_dir: Path
    repeatable: int = 0  # the sum over kills of what each may repeat
    resumes: list[int] = field(default_factory=list)

    def killed(self, accepted: list[int]) -> None:
        """Right after a SIGKILL (before the next start): `accepted`, the line numbers the
        dev-server has accepted so far, with repeats."""
        resume = resume_line(self.data_dir, self.log)
        self.resumes.append(resume)
        self.repeatable += len({n for n in accepted if n >= resume})

    def assert_repeats_bounded(self, duplicates: int, seed: int) -> None:
        print(f"kills: resumed at {self.resumes}, repeatable={self.repeatable}")
        assert duplicates <= self.repeatable, (
            f"{duplicates} repeats, over the {self.repeatable} lines accepted past the"
            f" checkpoints the kills left (seed {seed})"
        )
