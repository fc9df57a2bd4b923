"""A child process (and its children) watched with psutil: RSS and CPU every ~50 ms."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import psutil  # type: ignore[import-untyped]

SAMPLE_SECS = 0.05


@dataclass(frozen=True, slots=True)
class Sample:
    at: float  # time.time()
    rss: int  # bytes, summed over the process tree
    cpu: float  # user + sys seconds, summed over the process tree


@dataclass(slots=True)
class Usage:
    cpu: float  # user + sys seconds of the whole run
    peak_rss: int  # bytes
    exit_code: int | None


@dataclass
class Monitored:
    """``Monitored.start(argv)``: a process whose resource use is sampled until it exits."""

    argv: Sequence[str]
    env: dict[str, str] | None = None
    stderr: Path | None = None
    cwd: Path | None = None
    samples: list[Sample] = field(default_factory=list)
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _reaped: Usage | None = None
    _hwm: int = 0  # bytes

    def start(self) -> Monitored:
        err = self.stderr.open("ab") if self.stderr is not None else subprocess.DEVNULL
        try:
            self.started_at = time.time()
            self.process = subprocess.Popen(
                list(self.argv),
                env=self.env,
                cwd=self.cwd,
                stdin=subprocess.DEVNULL,
                stdout=err,
                stderr=err,
                start_new_session=True,
            )
        finally:
            if not isinstance(err, int):
                err.close()
        self._thread = threading.Thread(target=self._sample_loop, daemon=True)
        self._thread.start()
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def _tree(self, root: psutil.Process) -> list[psutil.Process]:
        try:
            return [root, *root.children(recursive=True)]
        except psutil.Error:
            return [root]

    def _sample_loop(self) -> None:
        try:
            root = psutil.Process(self.pid)
        except psutil.Error:
            return
        cache: dict[int, psutil.Process] = {}
        status = Path(f"/proc/{self.pid}/status")
        while not self._stop.is_set():
            self._read_hwm(status)
            rss, cpu = 0, 0.0
            alive = False
            for proc in self._tree(root):
                proc = cache.setdefault(proc.pid, proc)  # psutil needs the same object for CPU
                try:
                    with proc.oneshot():
                        rss += proc.memory_info().rss
                        times = proc.cpu_times()
                        cpu += times.user + times.system
                        alive = alive or proc.status() != psutil.STATUS_ZOMBIE
                except psutil.Error:
                    continue
            if not alive:
                return
            self.samples.append(Sample(time.time(), rss, cpu))
            self._stop.wait(SAMPLE_SECS)

    def _read_hwm(self, status: Path) -> None:
        """The kernel's own peak RSS of the process since its exec (VmHWM)."""
        try:
            for line in status.read_text().splitlines():
                if line.startswith("VmHWM:"):
                    self._hwm = max(self._hwm, int(line.split()[1]) * 1024)
                    return
        except (OSError, ValueError):
            return

    def running(self) -> bool:
        """Still running (never reaps: wait() must reap with wait4 to read the rusage)."""
        if self._reaped is not None or self.process is None:
            return False
        try:
            return os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None
        except ChildProcessError:
            return False

    def cpu_now(self) -> float:
        """CPU seconds so far (the latest sample)."""
        return self.samples[-1].cpu if self.samples else 0.0

    def rss_at(self, at: float) -> int:
        """The RSS of the last sample taken at or before `at` (time.time())."""
        best = 0
        for sample in self.samples:
            if sample.at > at:
                break
            best = sample.rss
        return best

    def peak_rss(self) -> int:
        """The larger of the sampled tree RSS and the root process' VmHWM."""
        return max(max((s.rss for s in self.samples), default=0), self._hwm)

    def signal(self, sig: int = signal.SIGTERM) -> None:
        if self.running():
            os.kill(self.pid, sig)

    def wait(self, timeout: float | None = None) -> Usage:
        """Reap the process with wait4 (its exact CPU time); kill it after `timeout`.

        CPU is the larger of wait4's figure and the psutil samples (children killed along with
        the process are only in the samples). Peak RSS is not taken from wait4: ru_maxrss
        carries over the forked parent's (this runner's) RSS from before the exec."""
        if self._reaped is not None:
            return self._reaped
        assert self.process is not None
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.running() and (deadline is None or time.monotonic() < deadline):
            time.sleep(0.02)
        if self.running():
            os.killpg(self.pid, signal.SIGKILL)
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        _pid, status, rusage = os.wait4(self.pid, 0)
        self.process.returncode = os.waitstatus_to_exitcode(status)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGKILL)  # whatever it left behind in its group
        cpu = max(rusage.ru_utime + rusage.ru_stime, self.cpu_now())
        self._reaped = Usage(cpu, self.peak_rss(), self.process.returncode)
        return self._reaped

    def stop(self, timeout: float = 30.0) -> Usage:
        self.signal(signal.SIGTERM)
        return self.wait(timeout)
