"""Follow the journal through a supervised ``journalctl -o json --follow`` child.

Why a child and not libsystemd bindings (measured in bench/journal_bench.py, README numbers
in the report): the child is the host's own journalctl, so it always reads the host's journal
file format (a wheel such as cysystemd bundles its own libsystemd, which a newer journald's
files can outgrow; python-systemd builds only with a compiler and libsystemd-dev); its JSON
formatting runs on another core, leaving the agent only the parse; and a hang or crash inside
libsystemd stays outside the agent's process. The bindings decode faster on one core, but
the agent's own share of the work is what limits it.

The child:
- gets a process group of its own (``process_group=0``): stopping kills the group;
- dies with the agent: ``prctl(PR_SET_PDEATHSIG, SIGKILL)`` in ``preexec_fn``, then a check
  that the parent did not die before the prctl (the race the kernel leaves). The signal
  follows the *thread* that forked, the event loop's thread, which lives as long as the agent;
- is restarted with capped exponential backoff when it exits on its own, from the last cursor
  it handed on;
- has its stderr logged, bounded: lines cut at 512 bytes, at most 20 per child, the rest
  counted.

Resuming: ``--cursor C`` (not ``--after-cursor``) and the first entry dropped when it *is*
C. journalctl seeks an unknown cursor to the nearest entry by time without saying so, and
``--after-cursor`` then silently skips that entry too; with ``--cursor`` a first entry that
is not C proves the cursor is gone (vacuumed, rotated away, another journal): the reader
logs `journal_cursor_missing` with how much may be missing and goes on from there, which is
the oldest entry still present. A cursor that is not a cursor at all (journalctl exits with
"Invalid argument") is refused before the start: read from the beginning, logged the same.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import re
import shutil
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final

import orjson
import structlog

from agent.encode.values import failure_detail
from agent.journal.event import CORE_FIELDS, EntryEncoder, JournalPiece, quarantined
from agent.journal.settings import JournalSettings

log = structlog.get_logger("agent.journal")

Emit = Callable[[JournalPiece], Awaitable[None]]
"""The reader's only outlet; awaiting it is the back-pressure."""

READ_CHUNK: Final = 1 << 20
MAX_ENTRY_BYTES: Final = 16 << 20  # a longer line is dropped and counted (journald's cap is 64M)
STDERR_LINES: Final = 20
STDERR_LINE_BYTES: Final = 512
KILL_GRACE: Final = 2.0
HEALTHY_AFTER: Final = 10.0  # a child that lived this long resets the backoff

_CURSOR: Final = re.compile(
    r"s=(?P<s>[0-9a-f]{32});i=(?P<i>[0-9a-f]+);b=(?P<b>[0-9a-f]{32});"
    r"m=(?P<m>[0-9a-f]+);t=(?P<t>[0-9a-f]+);x=(?P<x>[0-9a-f]+)"
)
_PR_SET_PDEATHSIG: Final = 1
_libc = ctypes.CDLL(None, use_errno=True)  # loaded before any fork: the child only calls it


class JournalError(Exception):
    """A journald source cannot run."""


class JournalctlMissing(JournalError):
    """No journalctl to run: install systemd (or point `journalctl` at it)."""


def find_journalctl(name: str = "journalctl") -> str:
    """The journalctl to run, or `JournalctlMissing` naming what was looked for: what
    `check` and the runtime's start call."""
    found = shutil.which(name)
    if found is None:
        raise JournalctlMissing(
            f"{name!r} not found on PATH ({os.environ.get('PATH', '')}): a journald source "
            "needs journalctl (Debian/Ubuntu: package systemd)"
        )
    return found


@dataclass(frozen=True, slots=True)
class CursorGap:
    """How much may be missing between a saved cursor and where reading resumed."""

    saved: str
    resumed: str
    entries: int | None  # None: another journal (sequence numbers not comparable)
    seconds: float | None


def cursor_gap(saved: str, resumed: str) -> CursorGap:
    old, new = _CURSOR.fullmatch(saved), _CURSOR.fullmatch(resumed)
    if old is None or new is None:
        return CursorGap(saved, resumed, None, None)
    entries = None
    if old["s"] == new["s"]:
        entries = max(0, int(new["i"], 16) - int(old["i"], 16) - 1)
    seconds = max(0.0, (int(new["t"], 16) - int(old["t"], 16)) / 1e6)
    return CursorGap(saved, resumed, entries, seconds)


def is_cursor(text: str) -> bool:
    return _CURSOR.fullmatch(text) is not None


def journalctl_argv(
    journalctl: str,
    settings: JournalSettings,
    *,
    cursor: str | None,
    since: float | None,
    follow: bool = True,
) -> list[str]:
    """The command line: from `cursor` (inclusive) when set, else from `since` (epoch
    seconds) or the configured first start; without `follow`, up to the journal's end as it
    is when the child starts (`run --once`)."""
    argv = [journalctl, "--output=json", "--no-pager", "--all", "--quiet"]
    if follow:
        argv.insert(2, "--follow")
    if settings.directory is not None:
        argv.append(f"--directory={settings.directory}")
    if cursor is not None:
        argv += [f"--cursor={cursor}", "--lines=all"]
    elif since is not None:
        argv += [f"--since=@{int(since)}", "--lines=all"]
    elif settings.since == "beginning":
        argv.append("--lines=all")
    elif settings.since == "now":
        argv.append("--lines=0")
    else:
        argv += [f"--since=@{int(settings.since_epoch() or 0)}", "--lines=all"]
    if settings.priority is not None:
        argv.append(f"--priority={settings.priority}")
    if settings.include_fields:
        fields = sorted({*settings.include_fields, *CORE_FIELDS, "__REALTIME_TIMESTAMP"})
        argv.append(f"--output-fields={','.join(fields)}")
    argv += [f"--unit={unit}" for unit in settings.units]
    argv += settings.matches
    return argv


@dataclass(slots=True)
class ReaderStats:
    """Counters since the start; the metrics layer reads them."""

    entries: int = 0
    bytes: int = 0  # journalctl's JSON output consumed
    events: int = 0
    skipped: int = 0  # exclude_units
    invalid_utf8: int = 0
    unreadable: int = 0
    too_large: int = 0
    restarts: int = 0
    cursor_gaps: int = 0
    stderr_lines: int = 0
    stderr_dropped: int = 0


class JournalReader:
    """One journald source: a child at a time, its entries encoded and handed to `emit`."""

    def __init__(
        self,
        name: str,
        settings: JournalSettings,
        encoder: EntryEncoder,
        *,
        resume: str | None,
        journalctl: str = "journalctl",
        backoff: tuple[float, float] = (0.5, 30.0),
        follow: bool = True,
    ) -> None:
        self.name = name
        self._follow = follow
        self._settings = settings
        self._encoder = encoder
        self._journalctl = journalctl
        self._backoff = backoff
        self.stats = ReaderStats()
        self.position: str | None = None
        """The cursor of the last entry handed on (not the safe one: see CursorTracker)."""
        self._expect: str | None = None  # the cursor a fresh child should print first
        self._since: float | None = None
        self.pid: int | None = None  # the running child's, for tests and status
        if resume is not None and not is_cursor(resume):
            log.warning("journal_cursor_invalid", source=name, cursor=resume[:200])
            self.stats.cursor_gaps += 1
            resume = None
            self._since = 0.0  # from the beginning: nothing after an unknown point is lost
        self.position = resume

    def __repr__(self) -> str:
        return f"<JournalReader {self.name} pid={self.pid} entries={self.stats.entries}>"

    async def run(self, stop: asyncio.Event, emit: Emit) -> None:
        """Read until `stop`; the child is gone when this returns or raises."""
        journalctl = find_journalctl(self._journalctl)
        delay = self._backoff[0]
        if self.position is None and self._since is None and self._settings.since == "now":
            # A restart before the first entry must not skip what came in between.
            self._since = time.time()
            first_now = True
        else:
            first_now = False
        while not stop.is_set():
            argv = journalctl_argv(
                journalctl,
                self._settings,
                cursor=self.position,
                since=None if first_now else self._since,
                follow=self._follow,
            )
            first_now = False
            self._expect = self.position
            started = time.monotonic()
            code = await self._run_child(argv, stop, emit)
            if stop.is_set() or (code == 0 and not self._follow):
                return
            if time.monotonic() - started >= HEALTHY_AFTER:
                delay = self._backoff[0]
            self.stats.restarts += 1
            log.warning("journal_child_exited", source=self.name, code=code, retry_in=delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
            delay = min(delay * 2, self._backoff[1])

    async def _run_child(self, argv: list[str], stop: asyncio.Event, emit: Emit) -> int:
        parent = os.getpid()

        def die_with_parent() -> None:
            _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
            if os.getppid() != parent:
                os._exit(1)

        process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            process_group=0,
            preexec_fn=die_with_parent,
            limit=READ_CHUNK,
        )
        self.pid = process.pid
        log.info("journal_child_started", source=self.name, pid=process.pid, argv=argv[1:])
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._log_stderr(process))
                watcher = group.create_task(self._kill_on(stop, process))
                try:
                    await self._pump(process, emit)
                finally:
                    watcher.cancel()
        finally:
            await _kill_group(process)
            self.pid = None
        return process.returncode if process.returncode is not None else -1

    async def _kill_on(self, stop: asyncio.Event, process: asyncio.subprocess.Process) -> None:
        await stop.wait()
        await _kill_group(process)

    async def _pump(self, process: asyncio.subprocess.Process, emit: Emit) -> None:
        assert process.stdout is not None
        rest = b""
        skipping = False  # inside a line longer than MAX_ENTRY_BYTES
        while chunk := await process.stdout.read(READ_CHUNK):
            self.stats.bytes += len(chunk)
            if skipping:
                newline = chunk.find(b"\n")
                if newline == -1:
                    continue
                chunk, skipping = chunk[newline + 1 :], False
            data = rest + chunk if rest else chunk
            end = data.rfind(b"\n")
            if end == -1:
                rest = data
                if len(rest) > MAX_ENTRY_BYTES:
                    self.stats.too_large += 1
                    log.warning("journal_entry_too_large", source=self.name, bytes=len(rest))
                    rest, skipping = b"", True
                continue
            rest = data[end + 1 :]
            lines = data[:end].split(b"\n")
            if self._expect is not None:
                lines = self._check_resume(lines)
            if lines:
                await self._hand_on(lines, emit)

    def _check_resume(self, lines: list[bytes]) -> list[bytes]:
        """The first line of a child started at `--cursor`: dropped when it is that entry,
        else the cursor is gone and the gap is logged."""
        expect, self._expect = self._expect, None
        assert expect is not None
        try:
            first = orjson.loads(lines[0]).get("__CURSOR")
        except (orjson.JSONDecodeError, AttributeError):
            first = None
        if first == expect:
            return lines[1:]
        if type(first) is str:
            gap = cursor_gap(expect, first)
            self.stats.cursor_gaps += 1
            log.warning(
                "journal_cursor_missing",
                source=self.name,
                saved=expect,
                resumed=first,
                missing_entries_at_most=gap.entries,
                missing_seconds=gap.seconds,
                reason="vacuumed, rotated away, another journal, or the filters changed",
            )
        return lines

    async def _hand_on(self, lines: list[bytes], emit: Emit) -> None:
        try:
            encoded = self._encoder.encode(lines)
        except Exception as error:  # a defect of ours: it costs these entries, not the agent
            log.error(
                "encoder_failed",
                source=self.name,
                entries=len(lines),
                error=type(error).__name__,
                detail=failure_detail(error),
            )
            encoded = quarantined(lines)
        stats = self.stats
        stats.entries += len(lines)
        stats.skipped += encoded.skipped
        stats.invalid_utf8 += encoded.invalid_utf8
        stats.unreadable += encoded.unreadable
        for piece in encoded.pieces:
            stats.events += piece.events
            await emit(piece)
            self.position = piece.cursor

    async def _log_stderr(self, process: asyncio.subprocess.Process) -> None:
        assert process.stderr is not None
        logged = 0
        rest = b""
        while chunk := await process.stderr.read(4096):
            *lines, rest = (rest + chunk).split(b"\n")
            rest = rest[-STDERR_LINE_BYTES:]
            for line in lines:
                if logged < STDERR_LINES:
                    logged += 1
                    self.stats.stderr_lines += 1
                    text = line[:STDERR_LINE_BYTES].decode("utf-8", "replace")
                    log.warning("journal_child_stderr", source=self.name, line=text)
                else:
                    self.stats.stderr_dropped += 1
        if rest and logged < STDERR_LINES:
            self.stats.stderr_lines += 1
            text = rest.decode("utf-8", "replace")
            log.warning("journal_child_stderr", source=self.name, line=text)


async def _kill_group(process: asyncio.subprocess.Process) -> None:
    """SIGTERM to the child's group, SIGKILL after `KILL_GRACE`; waits for the child."""
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), KILL_GRACE)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            await process.wait()
    else:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)  # anything the child left in its group
