"""Atomic file writes: a crash leaves either the old file or the new one, never a truncated mix.

The bytes go to a temporary file in the same folder (hidden: ``.<name>.<random>.tmp``), are flushed to
the disk, and the file is then renamed over the target; the folder is flushed too, so a power cut cannot
undo the rename. This module knows nothing of the course: ``roots_course.store.integrity`` writes the
manifest through it, and ``roots_course.store.artifacts`` every artifact, passing the integrity layer's
hook that records the new checksum around the rename.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any


def _read_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


# mkstemp makes files only their owner can read; an artifact gets the usual mode (0644 under umask 022)
FILE_MODE = 0o666 & ~_read_umask()

AroundRename = Callable[[Path], AbstractContextManager[object]]


def fsync_folder(folder: str | os.PathLike) -> None:
    """Flush a folder's entries (a rename) to the disk, so a power cut cannot undo a finished write."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return                    # e.g. Windows, where a folder cannot be opened: the rename is still atomic
    try:
        os.fsync(fd)
    except OSError:
        pass                      # some file systems cannot fsync a folder; the rename itself is still atomic
    finally:
        os.close(fd)


def write_atomically(path: str | os.PathLike, fill: Callable[[Path], None],
                     around_rename: AroundRename | None = None) -> Path:
    """Make ``path`` from a temporary file that ``fill(tmp)`` writes; return the path.

    ``around_rename(path)``, when given, is a context manager entered just around the rename (the
    integrity layer records the new checksum there).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        fill(tmp)
        os.chmod(tmp, FILE_MODE)
        with open(tmp, "rb+") as f:          # some writers (safetensors) do not flush to the disk: do it here
            os.fsync(f.fileno())
        with (around_rename or nullcontext)(path):
            os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_folder(path.parent)
    return path


def write_bytes_atomically(path: str | os.PathLike, data: bytes, around_rename: AroundRename | None = None) -> Path:
    """Write ``data`` to ``path`` atomically (see ``write_atomically``); return the path."""
    return write_atomically(path, lambda tmp: tmp.write_bytes(data), around_rename)


def write_json_atomically(path: str | os.PathLike, obj: Any, around_rename: AroundRename | None = None) -> Path:
    """Write ``obj`` as indented UTF-8 JSON to ``path`` atomically; return the path."""
    text = json.dumps(obj, indent=2, ensure_ascii=False) + "\n"
    return write_bytes_atomically(path, text.encode("utf-8"), around_rename)
