"""Exclusive locks on files, so that two processes (or two threads) never write the same artifacts at once.

The lock between processes is the ``filelock`` library's: an OS lock on a small lock file (``flock`` on
Linux and macOS, ``msvcrt.locking`` on Windows). The OS releases it when its process ends, however it
ends (even SIGKILL), so a lock can never outlive its holder: there are no stale locks to clean up by
hand. The threads of one process take turns through a ``threading.RLock`` in front of it, so a lock is
re-entrant within a thread and one thread can tell another of its own process is the holder.

While it holds the lock, the holder writes who it is (pid, host, start time, command) into a small file
beside it, ``.<name>.holder``, so that a process that finds the lock taken can say who has it. It is a
separate file because ``filelock`` owns the lock file itself (it may truncate it when it opens it, or
remove it on release). The holder removes it before releasing the lock; after a SIGKILL it stays, and
the next holder overwrites it.

Two uses in the course: the pipeline holds ``artifacts/<profile>/.run.lock`` for a whole run, and
``roots_course.store.integrity`` holds ``artifacts/<profile>/.manifest.lock`` around each update of
``manifest.json`` (read, change, write back), so that concurrent updates never lose each other's.
"""

from __future__ import annotations

import os
import socket
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Self

import filelock

from roots_course.errors import BusyError

_UNKNOWN_HOLDER = "a process that did not say who it is"
_registry_guard = threading.Lock()
_registry: dict[Path, _Held] = {}


class _Held:
    """This process's hold on one lock file: one OS lock, shared by nested acquisitions of one thread."""

    def __init__(self, path: Path) -> None:
        self.threads = threading.RLock()   # threads of this process take turns
        # thread_local=False: the RLock above already decides which thread may use it
        self.os_lock = filelock.FileLock(path, thread_local=False)
        self.depth = 0


def _key(path: str | os.PathLike) -> Path:
    """One name per file, however it is spelled: two names for one file would make one process wait on itself."""
    return Path(os.path.realpath(path))


def _held_for(path: Path) -> _Held:
    with _registry_guard:
        if path not in _registry:
            _registry[path] = _Held(path)
        return _registry[path]


def holder_file(path: str | os.PathLike) -> Path:
    """Where the holder of the lock ``path`` says who it is: ``.<name>.holder`` beside it (hidden, so
    never taken for an artifact)."""
    path = Path(path)
    return path.with_name(f".{path.name.lstrip('.')}.holder")


def _program() -> str:
    """How this process was started, e.g. ``python -m pipelines`` or ``pytest``."""
    first = Path(sys.argv[0]) if sys.argv and sys.argv[0] else None
    if first is None:
        return "python"
    return f"python -m {first.parent.name}" if first.name == "__main__.py" else first.name


def _write_holder(path: Path) -> None:
    """Say who holds ``path`` now, replacing the file in one rename so a reader never sees half a line."""
    stamp = datetime.now(UTC).isoformat(timespec="seconds")
    command = " ".join([_program(), *sys.argv[1:]])
    target = holder_file(path)
    tmp = target.with_name(f"{target.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_text(f"pid {os.getpid()} on {socket.gethostname()}, since {stamp}: {command}\n", encoding="utf-8")
    os.replace(tmp, target)


def describe_holder(path: str | os.PathLike) -> str:
    """Who holds the lock ``path``, e.g. ``pid 123 on host, since 2025-01-01T10:00:00+00:00: pytest``."""
    try:
        text = holder_file(path).read_text(encoding="utf-8").strip()
    except OSError:
        return _UNKNOWN_HOLDER
    return text.splitlines()[0] if text else _UNKNOWN_HOLDER


def held_by_this_process(path: str | os.PathLike) -> bool:
    """True when a thread of this process holds the lock on ``path``."""
    with _registry_guard:
        held = _registry.get(_key(path))
    return held is not None and held.depth > 0


class FileLock:
    """An exclusive lock on ``path`` (created if missing).

    ``timeout``: seconds to wait for another holder; 0 refuses at once. When the wait runs out,
    ``BusyError`` says ``what`` (e.g. "another run is using X"), names the holder (pid, host, since
    when, command) and the lock's path.
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
                self._take_os_lock(held, deadline)
            held.depth += 1
        except BaseException:
            held.threads.release()
            raise
        return self

    def _take_os_lock(self, held: _Held, deadline: float) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            held.os_lock.acquire(timeout=max(0.0, deadline - time.monotonic()))
        except filelock.Timeout:
            raise self._busy(describe_holder(self.path)) from None
        try:
            _write_holder(self.path)
        except BaseException:
            held.os_lock.release()
            raise

    def release(self) -> None:
        held = _held_for(self.path)
        held.depth -= 1
        if held.depth == 0:
            # forget the holder while still holding: once released, the next holder's file may be there
            holder_file(self.path).unlink(missing_ok=True)
            held.os_lock.release()
        held.threads.release()

    def _busy(self, holder: str) -> BusyError:
        return BusyError(f"{self.what}: {holder} holds the lock {self.path}. Wait for that process to finish "
                         f"(or stop it), then run again; the lock is released the moment it exits.")

    def __enter__(self) -> Self:
        return self.acquire()

    def __exit__(self, *exc_info: object) -> None:
        self.release()
