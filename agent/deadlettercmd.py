"""`polaris-agent dead-letters list|replay [--reason R] [--since T]`.

`list` prints the records in `data_dir/dead-letter`, oldest first (it needs no secret).

`replay` re-sends the events Polaris refused (reasons `http_*`: the stored line is the event
as it was sent) through the agent's own sending path: the same queue, batcher, HTTP client,
auth, gzip and splitting as `run` (a `Delivery` without a spool). What Polaris accepts is
removed from the files; an event refused again stays where it was, as it was (not written a
second time); what could not be sent (Polaris accepted nothing for `--timeout`) stays too.
Records of other reasons are lines the agent could not make an event of (not JSON, too long,
outside the time window...): they are not events, so they are listed and skipped; a stored
line cut at 1 MiB is never re-sent.

Exit codes: 0 when every selected replayable record was delivered; 1 when any stays.
"""

from __future__ import annotations

import asyncio
import fnmatch
import sys
from collections.abc import Iterable

from agent.batch.batcher import Batcher
from agent.batch.queue import ByteQueue
from agent.config import Config, SpoolConfig
from agent.config.polaris import valid_connection
from agent.delivery import Delivery
from agent.records import Batch, FileId, Origin, Piece, Ticket
from agent.state.acks import AckTracker
from agent.state.deadletter import DeadLetters, StoredLetter, read_letters, remove_letters
from agent.state.layout import dead_letter_dir

EXIT_OK = 0
EXIT_LEFT = 1
_TICK = 0.1


def select(
    letters: Iterable[StoredLetter], reasons: list[str] | None, since: float | None
) -> list[StoredLetter]:
    return [
        letter
        for letter in letters
        if (not reasons or letter.reason in reasons) and (since is None or letter.epoch >= since)
    ]


def list_main(
    config: Config, *, reasons: list[str] | None, since: float | None, as_json: bool
) -> int:
    letters = select(read_letters(dead_letter_dir(config.data_dir)), reasons, since)
    out = sys.stdout.buffer
    counts: dict[str, int] = {}
    for letter in letters:
        counts[letter.reason] = counts.get(letter.reason, 0) + 1
        if as_json:
            out.write(letter.raw + b"\n")
            continue
        record = letter.record
        detail = f"  {record['detail']}" if record.get("detail") else ""
        text = (
            f"{letter.time}  {letter.reason}  {record.get('path')}:{record.get('offset')}"
            f"  {record.get('bytes')} bytes{detail}\n"
        )
        out.write(text.encode())
    summary = ", ".join(f"{reason} {n}" for reason, n in sorted(counts.items()))
    print(f"{len(letters)} dead letters{': ' + summary if summary else ''}", file=sys.stderr)
    return EXIT_OK


def replayable(letter: StoredLetter) -> bool:
    """An event Polaris refused, stored whole: one line, not blank. A record holding several
    lines (or none) is not one event: sent as one, a refusal of its second line raised
    IndexError out of the splitter, after half of it was delivered."""
    line = letter.record.get("line")
    return (
        letter.reason.startswith("http_")
        and isinstance(line, str)
        and letter.record.get("bytes") == len(line.encode())
        and "\n" not in line
        and bool(line.strip())
    )


def replay_main(
    config: Config, *, reasons: list[str] | None, since: float | None, timeout: float
) -> int:
    letters = select(read_letters(dead_letter_dir(config.data_dir)), reasons, since)
    chosen = [letter for letter in letters if replayable(letter)]
    skipped = len(letters) - len(chosen)
    if skipped:
        others = sorted({x.reason for x in letters if not replayable(x)})
        print(
            f"skipped {skipped} records that are not events Polaris refused"
            f" ({', '.join(others)}): fix the source and they are not read again;"
            " see `dead-letters list`",
            file=sys.stderr,
        )
    if not chosen:
        print("nothing to replay", file=sys.stderr)
        return EXIT_OK
    delivered, refused = asyncio.run(_replay(config, chosen, timeout))
    removed = remove_letters(chosen[i] for i in delivered)
    left = len(chosen) - len(delivered) - len(refused)
    print(
        f"replayed {len(chosen)}: {len(delivered)} delivered ({removed} removed),"
        f" {len(refused)} refused again (kept), {left} not sent (kept)",
        file=sys.stderr,
    )
    return EXIT_OK if len(delivered) == len(chosen) else EXIT_LEFT


class _Refusals(DeadLetters):
    """Where the splitter writes an event refused again: noted by its index, not stored (its
    record stays where it is)."""

    def __init__(self) -> None:
        self.refused: dict[int, str] = {}
        self.count = 0
        self.by_reason = {}

    def write(self, reason: str, path: str, offset: int, data: bytes, detail: str = "") -> None:
        self.refused[offset] = reason

    def sync(self) -> None:
        pass

    def close(self) -> None:
        pass


def connection_of(config: Config, letter: StoredLetter) -> str:
    """The connection the event was sent to: the record's own, else that of the source whose
    globs match its path, else polaris.connection."""
    named = letter.record.get("connection")
    if isinstance(named, str) and named and _is_connection_name(named):
        return named  # not a name (`../..`): it would steer the event elsewhere on the API
    path = str(letter.record.get("path", ""))
    for source in config.sources:
        if any(fnmatch.fnmatch(path, pattern) for pattern in source.include):
            return source.connection or config.polaris.connection
    return config.polaris.connection


def _is_connection_name(name: str) -> bool:
    try:
        valid_connection(name)
    except ValueError:
        return False
    return True


async def _replay(
    config: Config, letters: list[StoredLetter], patience: float
) -> tuple[list[int], set[int]]:
    """Send `letters` through the run path; (indexes delivered, indexes refused again)."""
    config = config.model_copy(update={"spool": SpoolConfig(enabled=False)})
    acks = AckTracker()
    refusals = _Refusals()
    stopping = asyncio.Event()
    queue: ByteQueue[Piece] = ByteQueue(config.queue.max_bytes)
    batches: asyncio.Queue[Batch | None] = asyncio.Queue(1)
    batcher = Batcher(config.batch.max_bytes, config.batch.max_wait)
    tickets: list[Ticket] = []
    delivery = Delivery(
        config, config.data_dir, acks=acks, dead_letters=refusals, stopping=stopping
    )
    async with delivery, asyncio.TaskGroup() as tasks:
        tasks.create_task(batcher.run(queue, batches))
        workers = [
            tasks.create_task(delivery.sender.work(batches)) for _ in range(config.sender.workers)
        ]
        for index, letter in enumerate(letters):
            acks.track(FileId(index), 0)
            ticket = acks.issue(FileId(index), 1)
            tickets.append(ticket)
            data = str(letter.record["line"]).encode() + b"\n"
            origin = Origin(str(letter.record.get("path", "")), [index])
            piece = Piece(data, 1, ticket, origin, connection_of(config, letter))
            await queue.put(piece, len(data))
        await queue.close()
        await _until_done_or_stalled(workers, tickets, stopping, patience)
    delivered = [i for i, t in enumerate(tickets) if t.done and i not in refusals.refused]
    return delivered, set(refusals.refused)


async def _until_done_or_stalled(
    workers: list[asyncio.Task[None]],
    tickets: list[Ticket],
    stopping: asyncio.Event,
    patience: float,
) -> None:
    """Wait for the workers; stop them when no ticket completed for `patience` seconds."""
    loop = asyncio.get_running_loop()
    done_before, since = -1, loop.time()
    while not all(w.done() for w in workers):
        await asyncio.wait(workers, timeout=_TICK)
        done_now = sum(t.done for t in tickets)
        if done_now != done_before:
            done_before, since = done_now, loop.time()
        elif patience and loop.time() - since >= patience and not stopping.is_set():
            print(
                f"Polaris accepted nothing for {patience:g} s: stopping (what is left is kept)",
                file=sys.stderr,
            )
            stopping.set()
