"""Exclusive locks on files, so that two processes (or two threads) never write the same artifacts at once.

A ``FileLock`` is an ``fcntl.flock`` on a small lock file plus a ``threading.RLock`` for the threads of
this process. The kernel releases a flock when its process ends, however it ends (even SIGKILL), so a
lock can never outlive its holder: there are no stale locks to clean up by hand. While it holds the
lock, the holder writes who it is (pid, host, start time, command) into the lock file, so that a
process that finds the lock taken can say who has it.

Two uses in the course: the pipeline holds ``artifacts/<profile>/.run.lock`` for a whole run, and
``roots_course.store.integrity`` holds ``artifacts/<profile>/.manifest.lock`` around each update of
``manifest.json`` (read, change, write back), so that concurrent updates never lose each other's.
"""

from __future__ import annotations

import errno
import fcntl
import os
import socket
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Self

from roots_course.errors import BusyError

_POLL_S = 0.05
_registry_guard = threading.Lock()
_registry: dict[Path, _Held] = {}


class _Held:
    """This process's hold on one lock file: one open descriptor, shared by nested acquisitions."""

    def __init__(self) -> None:
        self.threads = threading.RLock()   # threads of this process take turns
        self.fd: int | None = None
        self.depth = 0


def _key(path: str | os.PathLike) -> Path:
    """One name per file, however it is spelled: two names for one file would make one process wait on itself."""
    return Path(os.path.realpath(path))


def _held_for(path: Path) -> _Held:
    with _registry_guard:
        return _registry.setdefault(path, _Held())


def _program() -> str:
    """How this process was started, e.g. ``python -m pipelines`` or ``pytest``."""
    first = Path(sys.argv[0]) if sys.argv and sys.argv[0] else None
    if first is None:
        return "python"
    return f"python -m {first.parent.name}" if first.name == "__main__.py" else first.name


def describe_holder(path: str | os.PathLike) -> str:
    """What the lock file says about its holder, e.g. ``pid 123 on host, since 2025-01-01T10:00:00+00:00``."""
    try:
        text = Path(path).read_text(encoding="utf-8").strip()
    except OSError:
        return "a process that did not say who it is"
    return text.splitlines()[0] if text else "a process that did not say who it is"


def held_by_this_process(path: str | os.PathLike) -> bool:
    """True when a thread of this process holds the lock on ``path``."""
    with _registry_guard:
        held = _registry.get(_key(path))
    return held is not None and held.depth > 0


class FileLock:
    """An exclusive lock on ``path`` (created if missing).

    ``timeout``: seconds to wait for another holder; 0 refuses at once. When the wait runs out,
    ``BusyError`` says ``what`` (e.g. "another run is using X"), names the holder (as written in the
    lock file) and the lock's path.
    Re-entrant within a thread; used as a context manager.
    """

    def __init__(self, path: str | os.PathLike, what: str, timeout: float = 0.0) -> None:
        self.path = _key(path)
        self.what = what
        self.timeout = timeout

    def acquire(self) -> FileLock:
        held = _held_for(self.path)
        deadline = time.monotonic() + self.timeout
        taken = held.threads.acquire(timeout=self.timeout) if self.timeout > 0 else held.threads.acquire(blocking=False)
        if not taken:
            raise self._busy(f"another thread of this process ({describe_holder(self.path)})")
        try:
            if held.depth == 0:
                held.fd = self._take_flock(deadline)
            held.depth += 1
        except BaseException:
            held.threads.release()
            raise
        return self

    def _take_flock(self, deadline: float) -> int:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except OSError as exc:
                    if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                        raise
                    if time.monotonic() >= deadline:
                        raise self._busy(describe_holder(self.path)) from None
                    time.sleep(_POLL_S)
            stamp = datetime.now(UTC).isoformat(timespec="seconds")
            command = " ".join([_program(), *sys.argv[1:]])
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}, since {stamp}: {command}\n".encode(), 0)
            return fd
        except BaseException:
            os.close(fd)
            raise

    def release(self) -> None:
        held = _held_for(self.path)
        held.depth -= 1
        if held.depth == 0 and held.fd is not None:
            # closing the descriptor releases the flock; the file stays (deleting it would race a waiter)
            os.close(held.fd)
            held.fd = None
        held.threads.release()

    def _busy(self, holder: str) -> BusyError:
        return BusyError(f"{self.what}: {holder} holds the lock {self.path}. Wait for that process to finish "
                         f"(or stop it), then run again; the lock is released the moment it exits.")

    def __enter__(self) -> Self:
        return self.acquire()

    def __exit__(self, *exc_info: object) -> None:
        self.release()
