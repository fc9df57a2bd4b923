"""The sender in-process, against the fake events client: every way a batch can end (delivered,
retried, split, dead-lettered, spooled, replayed, kept at shutdown) without a socket."""

from __future__ import annotations

import asyncio
import gzip
import struct
import zlib
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import pytest
from structlog.testing import capture_logs

from agent.records import Batch, FileId, LineStarts, Origin, Piece
from agent.ship.client import Answer
from agent.ship.compress import gzip_compressor
from agent.ship.errors import TransportError
from agent.ship.fake import FakeEventsClient, Request, answer
from agent.ship.ratelimit import Pacer
from agent.ship.sender import Sender, SenderSettings
from agent.ship.spool import Spool, decode_entry
from agent.state.acks import AckTracker
from agent.state.deadletter import DeadLetters

LOG = "/var/log/app.log"
FILE = FileId(1)


class ManualClock:
    """Monotonic seconds that move only when the test (or the fake endpoint) says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Rig:
    tmp: Path
    client: FakeEventsClient = field(default_factory=FakeEventsClient)
    acks: AckTracker = field(default_factory=AckTracker)
    clock: ManualClock = field(default_factory=ManualClock)
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    spool: Spool | None = None
    sender: Sender | None = None
    _executor: ThreadPoolExecutor = field(default_factory=lambda: ThreadPoolExecutor(1))
    _seq: int = 0
    _offset: int = 0

    def build(
        self, *, spool: bool = True, retry: tuple[float, float] = (0.001, 0.002), after: float = 30
    ) -> Sender:
        self.acks.track(FILE, 0)
        if spool:
            self.spool = Spool(self.tmp / "spool", 1 << 20, "block")
        self.dead_letters = DeadLetters(self.tmp / "dead-letter")
        self.sender = Sender(
            self.client,
            Pacer(),
            SenderSettings("logs", gzip_compressor(3), *retry, spool_after=after),
            acks=self.acks,
            dead_letters=self.dead_letters,
            executor=self._executor,
            stopping=self.stopping,
            spool=self.spool,
            clock=self.clock,
        )
        return self.sender

    def batch(self, *events: bytes) -> Batch:
        """One batch of one piece of `events`, read from LOG after the earlier ones."""
        data = b"".join(e + b"\n" for e in events)
        ticket = self.acks.issue(FILE, self._offset + len(data))
        origin = Origin(LOG, LineStarts(data, self._offset))
        self._offset += len(data)
        self._seq += 1
        batch = Batch(self._seq)
        batch.add(Piece(data, len(events), ticket, origin))
        return batch

    async def send(self, *batches: Batch) -> None:
        """Run one worker over `batches` until it has taken the end of the stream."""
        assert self.sender is not None
        queue: asyncio.Queue[Batch | None] = asyncio.Queue()
        for batch in batches:
            queue.put_nowait(batch)
        queue.put_nowait(None)
        await asyncio.wait_for(self.sender.work(queue), 10)

    def offset_of(self, event: bytes, events: list[bytes]) -> int:
        return sum(len(e) + 1 for e in events[: events.index(event)])

    def dead_lettered(self) -> list[dict[str, object]]:
        self.dead_letters.sync()
        path = self.dead_letters.today_path()
        if not path.exists():
            return []
        return [orjson.loads(line) for line in path.read_bytes().splitlines()]

    def spooled(self) -> list[Path]:
        return sorted((self.tmp / "spool").glob("*.spool"))

    async def replay_until_empty(self) -> None:
        assert self.sender is not None and self.spool is not None
        done = asyncio.Event()
        replayer = asyncio.create_task(self.sender.replay(done))
        await asyncio.wait_for(self.spool.wait_until_empty(), 10)
        done.set()
        await asyncio.wait_for(replayer, 10)


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    rig = Rig(tmp_path)
    yield rig
    rig.stopping.set()
    rig._executor.shutdown()


def refusing(marker: bytes, status: int = 400) -> Callable[[Request], Answer | None]:
    """Polaris refusing every payload that holds an event with `marker` in it."""

    def respond(request: Request) -> Answer | None:
        return answer(status) if marker in request.body else None

    return respond


EVENTS = [b'{"n":1}', b'{"n":2,"bad":1}', b'{"n":3}', b'{"n":4}']


async def test_a_batch_is_delivered_gzipped_and_its_tickets_complete(rig: Rig) -> None:
    sender = rig.build()
    await rig.send(rig.batch(*EVENTS))

    [request] = rig.client.requests
    assert request.gzip and request.lines == EVENTS
    assert rig.acks.outstanding() == 0
    assert rig.acks.committed(FILE) == sum(len(e) + 1 for e in EVENTS)
    snap = sender.snapshot()
    assert (snap.events_delivered, snap.batches_delivered, snap.retries) == (4, 1, 0)
    assert snap.bytes_delivered == sum(len(e) + 1 for e in EVENTS)
    assert snap.bytes_posted == len(request.wire)
    assert snap.requests == {200: 1}


async def test_a_server_error_is_retried_then_delivered(rig: Rig) -> None:
    sender = rig.build()
    rig.client.fail_next(answer(503), TransportError("connection reset"))

    with capture_logs() as logs:
        await rig.send(rig.batch(*EVENTS))

    assert len(rig.client.requests) == 3
    assert rig.client.delivered == EVENTS
    assert rig.acks.outstanding() == 0 and rig.spooled() == []
    snap = sender.snapshot()
    assert (snap.retries, snap.transport_errors, snap.requests) == (2, 1, {503: 1, 200: 1})
    assert [e["reason"] for e in logs if e["event"] == "delivery_failed"] == [
        "server_error",
        "transport",
    ]


async def test_a_split_dead_letters_the_bad_event_and_spools_what_outlived_the_deadline(
    rig: Rig,
) -> None:
    """400 for the bad event: the half without it is delivered, the bad one dead-lettered,
    and its sibling, which then meets an endpoint down until the batch's deadline, spooled
    with its origin. The deadline is the batch's, not restarted for each half."""
    events = [b'{"n":1,"bad":1}', b'{"n":2}', b'{"n":3}', b'{"n":4}']
    rig.build(after=5)

    def respond(request: Request) -> Answer | None:
        rig.clock.now += 1  # each request takes a second of the batch's five
        if b"bad" in request.body:
            return answer(400)
        if request.lines == [b'{"n":2}']:
            return answer(503)
        return None

    rig.client.respond(respond)
    await rig.send(rig.batch(*events))

    assert rig.client.delivered == [b'{"n":3}', b'{"n":4}']
    [letter] = rig.dead_lettered()
    assert (letter["reason"], letter["path"], letter["offset"]) == ("http_rejected", LOG, 0)
    assert letter["line"] == events[0].decode()
    [file] = rig.spooled()
    entry = decode_entry(file.read_bytes())
    assert entry.body == b'{"n":2}\n'
    assert entry.locate(0) == (LOG, rig.offset_of(events[1], events))
    assert rig.acks.outstanding() == 0  # delivered, dead-lettered or spooled: all safe
    # 5 s from the first request: whole, 2 halves, 2 quarters, then n:2's retries until t=5
    assert len(rig.client.requests) == 5


async def test_a_split_replays_a_spooled_batch_and_dead_letters_with_spooled_origins(
    rig: Rig,
) -> None:
    rig.build()
    rig.client.fail_next(answer(401))
    await rig.send(rig.batch(*EVENTS))  # refused key: spooled whole, as posted
    [file] = rig.spooled()
    assert decode_entry(file.read_bytes()).gzipped == rig.client.requests[0].wire

    rig.client.respond(refusing(b"bad"))
    await rig.replay_until_empty()

    assert sorted(rig.client.delivered) == [EVENTS[0], EVENTS[2], EVENTS[3]]
    [letter] = rig.dead_lettered()
    assert (letter["path"], letter["offset"]) == (LOG, rig.offset_of(EVENTS[1], EVENTS))
    assert rig.spooled() == []


async def test_a_spool_file_written_before_the_ship_chain_still_replays(rig: Rig) -> None:
    """The format of files already on disk: no `size` in the header, stdlib gzip body."""
    Spool(rig.tmp / "spool", 1 << 20, "block")  # the directory, as an earlier run made it
    header = orjson.dumps({"connection": "old", "events": 2, "origins": [[LOG, [0, 8]]]})
    body = gzip.compress(b'{"n":1}\n{"n":2,"bad":1}\n')
    crc = zlib.crc32(body, zlib.crc32(header))
    data = struct.pack("<4sIIQ", b"PAS1", crc, len(header), len(body)) + header + body
    (rig.tmp / "spool" / "00000000000000000001-1-00000001.spool").write_bytes(data)
    rig.build()  # a start finds it
    rig.client.respond(refusing(b"bad"))

    await rig.replay_until_empty()

    assert rig.client.delivered == [b'{"n":1}']
    assert {r.connection for r in rig.client.requests} == {"old"}
    [letter] = rig.dead_lettered()
    assert (letter["path"], letter["offset"]) == (LOG, 8)


async def test_a_429_during_a_split_pauses_and_counts_no_retry(rig: Rig) -> None:
    sender = rig.build()
    seen: list[list[bytes]] = []

    def respond(request: Request) -> Answer | None:
        seen.append(request.lines)
        if b"bad" in request.body:
            return answer(400)
        if request.lines == EVENTS[2:] and seen.count(EVENTS[2:]) == 1:
            return answer(429, retry_after=0)
        return None

    rig.client.respond(respond)
    with capture_logs() as logs:
        await rig.send(rig.batch(*EVENTS))

    assert sorted(rig.client.delivered) == [EVENTS[0], EVENTS[2], EVENTS[3]]
    assert seen.count(EVENTS[2:]) == 2  # re-sent after the pause, not split
    assert [e["event"] for e in logs].count("throttled") == 1
    assert len(rig.dead_lettered()) == 1
    assert sender.snapshot().retries == 0
    assert rig.acks.outstanding() == 0


async def test_shutdown_during_a_backoff_returns_at_once_and_keeps_the_batch(rig: Rig) -> None:
    rig.build(spool=False, retry=(60, 60))
    rig.client.respond(lambda request: answer(503))
    worker = asyncio.create_task(rig.send(rig.batch(*EVENTS)))
    await asyncio.wait_for(rig.client.wait_for_requests(1), 5)

    rig.stopping.set()
    await asyncio.wait_for(worker, 1)  # not a minute later

    assert rig.acks.outstanding() == 1  # not acknowledged: read again after a restart
    assert rig.acks.committed(FILE) == 0


async def test_shutdown_during_a_backoff_spools_the_batch_when_there_is_a_spool(
    rig: Rig,
) -> None:
    rig.build(retry=(60, 60))
    rig.client.respond(lambda request: answer(503))
    worker = asyncio.create_task(rig.send(rig.batch(*EVENTS)))
    await asyncio.wait_for(rig.client.wait_for_requests(1), 5)

    rig.stopping.set()
    await asyncio.wait_for(worker, 1)

    [file] = rig.spooled()
    assert decode_entry(file.read_bytes()).body.splitlines() == EVENTS
    assert rig.acks.outstanding() == 0


async def test_a_refused_key_spools_at_once_and_later_batches_skip_the_endpoint(
    rig: Rig,
) -> None:
    sender = rig.build(retry=(60, 60))
    rig.client.fail_next(answer(401))
    with capture_logs() as logs:
        await rig.send(rig.batch(*EVENTS[:2]), rig.batch(*EVENTS[2:]))

    assert len(rig.client.requests) == 1  # the second batch went straight to the spool
    assert len(rig.spooled()) == 2
    snap = sender.snapshot()
    assert snap.auth_failing and snap.outage and snap.batches_spooled == 2
    assert [e["event"] for e in logs].count("auth_failed") == 1
    assert rig.acks.outstanding() == 0

    await rig.replay_until_empty()  # the key is fixed

    assert rig.client.delivered == EVENTS
    snap = sender.snapshot()
    assert not snap.auth_failing and not snap.outage


async def test_a_blanket_refusal_keeps_the_whole_batch_and_dead_letters_nothing(
    rig: Rig,
) -> None:
    sender = rig.build()
    events = [b'{"n":%d}' % n for n in range(32)]
    rig.client.respond(lambda request: answer(400))

    await rig.send(rig.batch(*events))

    assert len(rig.client.requests) == 1 + 2 + 4 + 8  # three levels of halves, all refused
    assert rig.dead_lettered() == []
    [file] = rig.spooled()
    entry = decode_entry(file.read_bytes())
    assert entry.body.splitlines() == events
    assert entry.gzipped == rig.client.requests[0].wire  # spooled as posted
    assert sender.snapshot().endpoint_refusing == "blanket_refusal"


async def test_reconfigure_sends_through_the_new_client_and_closes_the_old_one(
    rig: Rig,
) -> None:
    sender = rig.build()
    old = rig.client
    await rig.send(rig.batch(*EVENTS[:2]))
    new = FakeEventsClient()
    settings = SenderSettings("logs", None, 0.001, 0.002)

    await sender.reconfigure(settings, new)
    await rig.send(rig.batch(*EVENTS[2:]))

    assert old.closed and not new.closed
    assert old.delivered == EVENTS[:2]
    assert new.delivered == EVENTS[2:]
    assert not new.requests[0].gzip  # compression = none applies to the next batch
    assert sender.snapshot().events_delivered == 4
