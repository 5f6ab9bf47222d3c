"""Checksums of artifacts: recorded in the profile's manifest, checked whenever an artifact is loaded.

``artifacts/<profile>/manifest.json`` has a section ``checksums``: for every artifact file under the
profile's folder, its SHA-256, size and modification time::

    "checksums": {"tokenizer.json": {"sha256": "9f2c…", "size": 41872, "mtime_ns": …}, …}

- ``record_tree`` (re)records every artifact; pretraining calls it at its end and the pipeline after
  each chapter. Files whose size and modification time did not change keep their recorded sum.
- Every write through ``roots_course.store.artifacts`` (and every folder swap of a checkpoint or corpus)
  updates its entry while holding the manifest's lock, inside ``writing``, so the record follows
  the course's own rewrites and never raises a false alarm.
- ``verify`` runs in every loader (``load_tensors``, ``read_json``, hence checkpoints, tokenizers and
  metrics): a file whose bytes differ from its recorded sum was truncated or altered after it was
  written, and loading it raises CheckpointError naming the file and how to rebuild it.

The pipeline's own outputs (``executed/``), the manifest itself and hidden files (temporary files,
lock files, half-written ``.name.new`` folders) are not artifacts. Folders without a manifest (a
scratch folder, a test's temporary directory) are not checked.

This is the course's only integrity layer. It covers every kind of artifact (JSON, tokenizer, corpus,
safetensors) and can list every damaged file at once (``python -m roots_course verify --dir DIR``),
which a digest inside each safetensors header (the earlier second layer) could do for weights only.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PurePath, PurePosixPath
from typing import Any

from roots_course.errors import CheckpointError
from roots_course.store import atomic
from roots_course.store.locking import FileLock

MANIFEST_NAME = "manifest.json"
SECTION = "checksums"
LOCK_NAME = ".manifest.lock"
NOT_ARTIFACTS = ("executed",)      # executed notebooks and run records: rewritten by every pipeline run
SEARCH_DEPTH = 4                   # <profile>/checkpoints/<name>/<file>: the manifest is at most 4 folders up
LOCK_TIMEOUT_S = 300.0


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def rebuild_hint(path: str | os.PathLike) -> str:
    """What to do about a damaged artifact at ``path``: the sentence every such error ends with."""
    profile_dir = profile_dir_of(path)
    if profile_dir is None:
        return "Delete it and run again the command that wrote it."
    return (f"Delete it and run again the step that wrote it (`python -m pipelines run --profile P` re-runs "
            f"every chapter whose artifacts are missing or changed); `python -m roots_course verify --dir "
            f"{profile_dir}` lists every damaged file.")


def profile_dir_of(path: str | os.PathLike) -> Path | None:
    """The nearest folder above ``path`` that holds a ``manifest.json`` (its profile's folder), or None."""
    path = Path(os.path.abspath(path))
    for folder in list(path.parents)[:SEARCH_DEPTH]:
        if (folder / MANIFEST_NAME).is_file():
            return folder
    return None


def is_artifact(relative: PurePath) -> bool:
    """Whether a path relative to the profile's folder is an artifact (see the module's docstring)."""
    parts = relative.parts
    return bool(parts) and parts[0] not in NOT_ARTIFACTS and relative.as_posix() != MANIFEST_NAME \
        and not any(part.startswith(".") for part in parts)


def manifest_lock(profile_dir: str | os.PathLike) -> FileLock:
    """The lock every update of ``<profile_dir>/manifest.json`` holds (see ``roots_course.store.locking``)."""
    return FileLock(Path(profile_dir) / LOCK_NAME, f"another process is updating the manifest of {profile_dir}",
                    timeout=LOCK_TIMEOUT_S)


def _checksums(profile_dir: Path) -> dict[str, Any] | None:
    """The recorded checksums, or None when the manifest has none (or cannot be read: its readers say why)."""
    try:
        manifest = json.loads((profile_dir / MANIFEST_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    section = manifest.get(SECTION) if isinstance(manifest, dict) else None
    return section if isinstance(section, dict) else None


def _describe(path: Path) -> dict[str, Any]:
    st = path.stat()
    return {"sha256": sha256_file(path), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _files(folder: Path) -> Iterator[Path]:
    for path in sorted(folder.rglob("*")) if folder.is_dir() else [folder] if folder.is_file() else []:
        if path.is_file() and not path.is_symlink():
            yield path


def _write_checksums(profile_dir: Path, section: dict[str, Any]) -> None:
    path = profile_dir / MANIFEST_NAME
    try:
        manifest = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{path}: not valid JSON, the file is truncated or altered ({exc}). "
                              f"{rebuild_hint(path)}") from exc
    manifest[SECTION] = dict(sorted(section.items()))
    atomic.write_json_atomically(path, manifest)     # not an artifact: no checksum of its own, no hook


def record_tree(profile_dir: str | os.PathLike) -> dict[str, Any]:
    """Record the checksum of every artifact under ``profile_dir`` in its manifest (created if missing).

    From then on the course's writes keep the record up to date and its loaders check against it.
    A file whose size and modification time match its entry keeps the recorded sum without re-reading.
    """
    profile_dir = Path(os.path.abspath(profile_dir))
    with manifest_lock(profile_dir):
        old = _checksums(profile_dir) or {}
        section: dict[str, Any] = {}
        for path in _files(profile_dir):
            rel = path.relative_to(profile_dir)
            if not is_artifact(rel):
                continue
            st, before = path.stat(), old.get(rel.as_posix())
            if isinstance(before, dict) and (before.get("size"), before.get("mtime_ns")) == (st.st_size, st.st_mtime_ns):
                section[rel.as_posix()] = before
            else:
                section[rel.as_posix()] = _describe(path)
        _write_checksums(profile_dir, section)
    return section


@contextmanager
def writing(target: str | os.PathLike) -> Iterator[None]:
    """Around the rename that puts ``target`` (a file or a folder) in place: hold the manifest's lock,
    then record the new checksums. Outside a recorded profile folder this does nothing."""
    target = Path(os.path.abspath(target))
    profile_dir = profile_dir_of(target)
    relative = target.relative_to(profile_dir) if profile_dir is not None else None
    if profile_dir is None or not is_artifact(relative) or _checksums(profile_dir) is None:
        yield
        return
    with manifest_lock(profile_dir):
        yield
        section = _checksums(profile_dir)
        if section is None:
            return
        replaced = PurePosixPath(relative.as_posix())      # the file, or every file of the folder, put in place
        section = {rel: entry for rel, entry in section.items() if not PurePosixPath(rel).is_relative_to(replaced)}
        for path in _files(target):
            rel = path.relative_to(profile_dir)
            if is_artifact(rel):
                section[rel.as_posix()] = _describe(path)
        _write_checksums(profile_dir, section)


def _mismatch(path: Path, entry: Any) -> str | None:
    """Why ``path`` does not match its recorded ``entry`` (None when it does)."""
    if not isinstance(entry, dict):
        return None
    size = path.stat().st_size
    if entry.get("size") is not None and size != entry["size"]:
        return f"it has {size} bytes, {entry['size']} were written"
    if entry.get("sha256") and sha256_file(path) != entry["sha256"]:
        return "its bytes differ from those written (SHA-256 mismatch)"
    return None


def verify(path: str | os.PathLike) -> None:
    """Raise CheckpointError when ``path`` differs from the checksum its manifest recorded for it."""
    path = Path(os.path.abspath(path))
    profile_dir = profile_dir_of(path)
    if profile_dir is None or not path.is_file():
        return
    rel = path.relative_to(profile_dir).as_posix()
    section = _checksums(profile_dir)
    if not section or rel not in section or _mismatch(path, section[rel]) is None:
        return
    with manifest_lock(profile_dir):          # a writer may be between its rename and its record
        section = _checksums(profile_dir) or {}
        problem = _mismatch(path, section.get(rel)) if rel in section else None
    if problem is not None:
        raise CheckpointError(f"{path} is damaged: {problem}, according to the checksum recorded in "
                              f"{profile_dir / MANIFEST_NAME}; it was truncated or altered after it was written. "
                              f"{rebuild_hint(path)}")


def check_tree(profile_dir: str | os.PathLike) -> list[str]:
    """One line per recorded artifact that is missing or damaged (empty when all are intact)."""
    profile_dir = Path(os.path.abspath(profile_dir))
    section = _checksums(profile_dir)
    if section is None:
        return [f"{profile_dir / MANIFEST_NAME}: no checksums recorded (run the course once to record them)"]
    problems = []
    for rel, entry in sorted(section.items()):
        path = profile_dir / rel
        if not path.is_file():
            problems.append(f"{path}: missing")
        elif (problem := _mismatch(path, entry)) is not None:
            problems.append(f"{path}: {problem}")
    return problems
