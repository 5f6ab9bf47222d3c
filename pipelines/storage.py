"""What a run needs of its artifacts folder: to be able to write there, to be the only run writing there,
and plain words when the disk fails it.

- ``check_writable``: before any work, create the profile's folder and a file in it; a read-only or
  unwritable folder stops the run at once, with nothing run and the book untouched.
- ``run_lock``: the lock ``artifacts/<profile>/.run.lock`` (``roots_course.store.locking``), held for the whole
  run; a second run of the same profile is refused, naming the process that holds it.
- ``explain``: the way out of a disk error (full, read-only, permission) wherever it struck, in a cell
  of a notebook or in the pipeline's own writes, appended to the run's error message.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from roots_course.store.locking import FileLock, held_by_this_process

RUN_LOCK = ".run.lock"
_FULL = (errno.ENOSPC, errno.EDQUOT)
_UNWRITABLE = (errno.EROFS, errno.EACCES, errno.EPERM)
_ERRNO_IN_TEXT = re.compile(r"\[Errno (\d+)\]")


class StorageError(RuntimeError):
    """The artifacts folder cannot take this run (unwritable); the message says what to do."""


def check_writable(folder: str | os.PathLike) -> Path:
    """Create ``folder`` if needed and prove a file can be written in it; StorageError otherwise."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-check-", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise StorageError(f"cannot write to the artifacts folder {folder} ({exc.strerror or exc}): make it "
                           f"writable, or choose another with --artifacts-dir (the flows' artifacts_dir). "
                           f"Nothing was run; the published book and the artifacts already there are as "
                           f"they were.") from exc
    return folder


@contextmanager
def run_lock(profile_dir: str | os.PathLike, profile: str) -> Iterator[None]:
    """Hold ``<profile_dir>/.run.lock`` for a run; BusyError (naming the holder) if another run has it.

    A flow started by ``python -m pipelines run``, which took the lock before starting Prefect, finds
    it held by its own process and goes on.
    """
    path = Path(profile_dir) / RUN_LOCK
    if held_by_this_process(path):
        yield
        return
    with FileLock(path, f"another run of profile {profile!r} is using {profile_dir}", timeout=0):
        yield


def _errno_of(error: BaseException | str) -> int | None:
    if isinstance(error, OSError) and error.errno is not None:
        return error.errno
    if isinstance(error, BaseException) and error.__cause__ is not None:
        return _errno_of(error.__cause__)
    found = _ERRNO_IN_TEXT.search(str(error))
    return int(found.group(1)) if found else None


def explain(error: BaseException | str, artifacts_dir: str | os.PathLike) -> str | None:
    """What to do about ``error`` when it is a disk error (full, read-only, no permission), else None.

    ``error`` may be the exception or its text (a notebook cell's error reaches the pipeline as text).
    """
    code = _errno_of(error)
    artifacts_dir = Path(artifacts_dir)
    if code in _FULL:
        try:
            free = f"{shutil.disk_usage(artifacts_dir).free / 1e6:.1f} MB free now"
        except OSError:
            free = "free space unknown"
        return (f"The disk holding {artifacts_dir} is full ({free}): free some space, or choose a folder on a "
                f"larger disk with --artifacts-dir, then run again. Chapters that finished keep their artifacts "
                f"and are not re-run; the published book was not touched.")
    if code in _UNWRITABLE:
        return (f"{artifacts_dir} (or a file in it) cannot be written: make it writable, or choose another folder "
                f"with --artifacts-dir, then run again. The published book was not touched.")
    return None
