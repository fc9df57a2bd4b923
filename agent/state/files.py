"""Creating the agent's own files: private, complete or absent, and never through a link.

Everything the agent keeps (checkpoints, spool, dead letters) lives under `data_dir`, and the
agent may run as root. A symlink or hard link planted in its place would turn a state write
into an overwrite of any file on the machine, so:

- directories are the agent's own (owned by its uid) and writable by nobody else, else the
  agent refuses them (`UnsafeState`): no one else can plant anything in them, and no check
  here races with another user;
- sub-directories are never symlinks; files are opened with `O_NOFOLLOW`;
- files replaced whole (checkpoints, spool entries) go through a temp file created with
  `O_EXCL` (a link in its place is removed, never written through) and `rename`, which
  replaces a link at the final name instead of following it;
- files appended to (dead letters) must be a regular file with one link, owned by the agent;
  anything else at that name is moved aside (logged) and a fresh file is created.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import time
from pathlib import Path
from typing import Final

DIR_MODE: Final = 0o700
FILE_MODE: Final = 0o600
_NOFOLLOW: Final = os.O_NOFOLLOW | os.O_CLOEXEC


class UnsafeState(Exception):
    """A state path the agent will not use: it could send the agent's writes elsewhere, or
    let another user change what the agent reads back."""

    def __init__(self, path: Path, problem: str, fix: str = "") -> None:
        text = f"{path}: {problem}"
        super().__init__(f"{text} ({fix})" if fix else text)
        self.path = path
        self.problem = problem


def private_dir(path: Path, *, follow: bool = False) -> Path:
    """Create `path` (0700) if needed and check it is the agent's own: checkpoints and dead
    letters reveal what is logged, and a directory others can write lets them plant links.

    Raises `UnsafeState` for a symlink, a non-directory, another owner, or group/other write.
    `follow=True` is for `data_dir` itself, which an operator may point elsewhere with a link
    (as systemd's `DynamicUser=` does): then the directory it leads to is checked instead.
    Sub-directories are the agent's own and never links.
    """
    try:
        _make_dirs(path)
    except OSError as exc:
        raise UnsafeState(path, f"cannot be created: {exc.strerror}") from None
    check_private_dir(path, follow=follow)
    return path


def _make_dirs(path: Path) -> None:
    """`mkdir -p` with every directory it creates 0700, not only the last: `mkdir(parents=
    True)` made the missing ones 0755, so a data_dir deleted under the running agent came
    back readable by all (its file names, what is logged, listed to anyone)."""
    try:
        path.mkdir(mode=DIR_MODE)
    except FileExistsError:
        return
    except FileNotFoundError:
        if path.parent == path:
            raise
        _make_dirs(path.parent)
        with contextlib.suppress(FileExistsError):
            path.mkdir(mode=DIR_MODE)


def check_private_dir(path: Path, *, follow: bool = False) -> None:
    """Raise `UnsafeState` unless `path` is a real directory owned by this user (or by root,
    which can write anything anyway) that neither group nor others can write."""
    try:
        info = os.stat(path) if follow else os.lstat(path)
    except FileNotFoundError:
        raise UnsafeState(path, "does not exist") from None
    if stat.S_ISLNK(info.st_mode):
        raise UnsafeState(path, "is a symlink; state directories must be real directories")
    if not stat.S_ISDIR(info.st_mode):
        raise UnsafeState(path, "is not a directory")
    uid = os.geteuid()
    if info.st_uid not in (uid, 0):
        raise UnsafeState(
            path,
            f"is owned by uid {info.st_uid}, not by the agent's uid {uid}",
            f"chown {uid} {path}",
        )
    mode = stat.S_IMODE(info.st_mode)
    if mode & (stat.S_IWGRP | stat.S_IWOTH):
        who = "others" if mode & stat.S_IWOTH else "its group"
        raise UnsafeState(
            path, f"is writable by {who} (mode {mode:04o})", f"chmod {DIR_MODE:o} {path}"
        )
    if not os.access(path, os.W_OK | os.X_OK):
        raise UnsafeState(path, f"is not writable by the agent's uid {uid}", f"chown {uid} {path}")


class TooLarge(ValueError):
    """A state file larger than it can be when the agent wrote it: damaged, not read."""


def read_private(path: Path, *, max_bytes: int | None = None) -> bytes:
    """The whole file, without following a symlink at `path` (OSError ELOOP if it is one).
    Opened O_NONBLOCK: a FIFO planted at a state file's name is refused (EINVAL, not a
    regular file) instead of blocking the agent's start, or `status`, forever."""
    fd = os.open(path, os.O_RDONLY | _NOFOLLOW | os.O_NONBLOCK)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise OSError(errno.EINVAL, "not a regular file", str(path))
        if max_bytes is not None and info.st_size > max_bytes:
            raise TooLarge(f"{info.st_size} bytes, more than {max_bytes}")
        with os.fdopen(fd, "rb", closefd=False) as handle:
            return handle.read()
    finally:
        os.close(fd)


def is_link_error(exc: OSError) -> bool:
    """Whether `exc` says the path was a symlink that `O_NOFOLLOW` refused to follow."""
    return exc.errno == errno.ELOOP


def write_atomically(path: Path, data: bytes) -> None:
    """tmp + fsync + rename + fsync(dir): after a crash the file is the old or the new one.

    The temp file is created with O_EXCL|O_NOFOLLOW: whatever is at its name (a stale temp
    file, a planted link) is unlinked first, never written through. The rename replaces a
    link at `path` itself."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = _create_exclusive(tmp)
    try:
        try:
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        # A full disk (ENOSPC, EDQUOT) or an I/O error: the torn temp file would keep the
        # disk full until the next start, and the caller's retry could never succeed.
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    sync_dir(path.parent)


def open_append(path: Path) -> int:
    """A descriptor appending to `path`, which must be the agent's own regular file with one
    link. Anything else there (a symlink, a hard link to another file, a FIFO) is moved aside,
    with an error logged, and a fresh file is created in its place."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | _NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        return _create_exclusive(path, append=True)
    except OSError as exc:
        problem = _OPEN_PROBLEMS.get(exc.errno or 0)
        if problem is None:
            raise
        move_aside(path, problem)
        return _create_exclusive(path, append=True)
    info = os.fstat(fd)
    problem = _append_problem(info)
    if problem is None:
        os.set_blocking(fd, True)
        return fd
    os.close(fd)
    move_aside(path, problem)
    return _create_exclusive(path, append=True)


_OPEN_PROBLEMS: Final = {
    errno.ELOOP: "symlink",
    errno.EISDIR: "a directory",
    errno.ENXIO: "a FIFO or socket",  # O_NONBLOCK|O_WRONLY: a FIFO with no reader, a socket
}
"""Why opening a state file for appending failed when something else sits at its name."""


def sync_dir(directory: Path) -> None:
    """fsync a directory: a rename or a new file in it survives a crash."""
    dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | _NOFOLLOW)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _append_problem(info: os.stat_result) -> str | None:
    if not stat.S_ISREG(info.st_mode):
        return "not a regular file"
    if info.st_nlink != 1:
        return f"{info.st_nlink} hard links"
    if info.st_uid != os.geteuid():
        return f"owned by uid {info.st_uid}"
    return None


def _create_exclusive(path: Path, *, append: bool = False) -> int:
    """A new file at `path` (0600), removing what was there: unlink never follows a link.
    `append`: O_APPEND, as an existing file is opened (a write after a truncation, or after
    someone else's append, lands at the end, not at this descriptor's old position)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | (os.O_APPEND if append else 0)
    try:
        return os.open(path, flags, FILE_MODE)
    except FileExistsError:
        try:
            os.unlink(path)
        except IsADirectoryError:  # a directory at a fixed temp name: every write failed
            move_aside(path, "a directory")
        return os.open(path, flags, FILE_MODE)


def move_aside(path: Path, problem: str) -> None:
    """Rename (never follow) what sits at `path`; the rename touches only the name."""
    aside = path.with_name(f"{path.name}.unsafe-{time.time_ns()}")
    os.rename(path, aside)
    import structlog  # here only: `check` reads state without loading asyncio and ssl with it

    structlog.get_logger("agent.state").error(
        "state_file_moved_aside", path=str(path), problem=problem, moved_to=str(aside)
    )
