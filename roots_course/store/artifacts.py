"""Where the course keeps what it makes, and how it writes it so that nothing is half-written.

Every step of the course writes into ``artifacts/<profile>/`` through this module:

    artifacts/<profile>/
        corpus/            the corpus as a saved datasets.DatasetDict
        tokenizer.json     the trained tokenizer
        tokens/            token ids of the train and validation splits (safetensors)
        checkpoints/<name>/  model.safetensors, config.json, optimizer.safetensors, state.json
        metrics/           one JSON file per measurement
        executed/          notebooks executed by the pipeline, with their logs
        manifest.json      provenance: commit, versions, device, seed, timings

Writes are atomic: the bytes go to a temporary file in the same folder, are flushed to the disk, and
the file is then renamed over the target. A crash leaves either the old file or the new one, never a
truncated mix. Weights are safetensors (no pickle: loading a file a user hands us cannot run code);
everything else is JSON. Inside a profile folder whose manifest records checksums, every write updates
its file's checksum and every load checks it (``roots_course.store.integrity``).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from roots_course.store import integrity
from roots_course._offline import PROJECT_ROOT
from roots_course.errors import CheckpointError
from roots_course.store.integrity import rebuild_hint


def _read_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


# mkstemp makes files only their owner can read; an artifact gets the usual mode (0644 under umask 022)
_FILE_MODE = 0o666 & ~_read_umask()


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` via a temporary file and a rename; return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), _FILE_MODE)
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        with integrity.writing(path):
            os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_folder(path.parent)
    return path


def fsync_folder(folder: str | os.PathLike) -> None:
    """Flush a folder's entries (a rename) to the disk, so a power cut cannot undo a finished write."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass                      # some file systems cannot fsync a folder; the rename itself is still atomic
    finally:
        os.close(fd)


def shown(path: str | os.PathLike) -> str:
    """``path`` as a reader should see it: relative to the project when inside it (``artifacts/cpu/...``),
    so printed output and published chapters don't carry one machine's folders; else unchanged."""
    try:
        return Path(path).resolve().relative_to(PROJECT_ROOT.resolve()).as_posix()
    except ValueError:
        return str(path)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, ensure_ascii=False, sort_keys=False) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    """Read a JSON file; a missing, truncated or altered file raises CheckpointError naming it."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: file not found")
    integrity.verify(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{path}: not valid JSON, the file is truncated or altered ({exc}). "
                              f"{rebuild_hint(path)}") from exc


DIGEST_KEY = "roots_sha256"


def tensors_digest(tensors: dict[str, torch.Tensor]) -> str:
    """SHA-256 over names, dtypes, shapes and bytes of ``tensors``, in name order."""
    digest = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        digest.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        if t.numel():
            digest.update(t.view(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def save_tensors(path: str | os.PathLike, tensors: dict[str, torch.Tensor],
                 metadata: dict[str, str] | None = None) -> Path:
    """Save tensors as safetensors, atomically, with a digest of their bytes in the header.

    safetensors checks that the header and the file size agree, not the bytes themselves; the digest
    lets ``load_tensors`` notice weights that were altered after they were written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # safetensors refuses two names that point at one storage (e.g. tied weights): copy those.
    storages = [v.untyped_storage().data_ptr() for v in tensors.values()]
    clean = {k: (v.detach().clone() if storages.count(v.untyped_storage().data_ptr()) > 1 else v.detach()
                 ).contiguous() for k, v in tensors.items()}
    header = {**(metadata or {}), DIGEST_KEY: tensors_digest(clean)}
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        save_file(clean, tmp, metadata=header)
        os.chmod(tmp, _FILE_MODE)
        with open(tmp, "rb+") as f:          # safetensors does not flush to the disk; do it before the rename
            os.fsync(f.fileno())
        with integrity.writing(path):
            os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_folder(path.parent)
    return path


def _unreadable(path: Path, exc: Exception) -> CheckpointError:
    return CheckpointError(f"{path}: not a readable safetensors file, it is truncated or altered ({exc}). "
                           f"{rebuild_hint(path)}")


def read_tensors_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The metadata stored in a safetensors header (CheckpointError naming the file when unreadable)."""
    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            return dict(f.metadata() or {})
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise _unreadable(path, exc) from exc


def load_tensors(path: str | os.PathLike, device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """Load a safetensors file; a missing, truncated or altered file raises CheckpointError naming it."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: file not found")
    integrity.verify(path)
    try:
        tensors = load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise _unreadable(path, exc) from exc
    expected = read_tensors_metadata(path).get(DIGEST_KEY)
    if expected is not None and tensors_digest(tensors) != expected:
        raise CheckpointError(f"{path}: the tensors do not match the digest written with them; the file was "
                              f"altered. {rebuild_hint(path)}")
    if torch.device(device).type != "cpu":
        tensors = {k: v.to(device) for k, v in tensors.items()}
    return tensors


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class ArtifactPaths:
    """The ``artifacts/<profile>/`` layout. Creating the object creates nothing on disk."""

    root: Path
    profile: str

    @classmethod
    def for_profile(cls, profile: str, root: str | os.PathLike | None = None) -> "ArtifactPaths":
        return cls(Path(root) if root is not None else PROJECT_ROOT / "artifacts", profile)

    @property
    def dir(self) -> Path:
        return self.root / self.profile

    @property
    def corpus(self) -> Path:
        return self.dir / "corpus"

    @property
    def tokenizer(self) -> Path:
        return self.dir / "tokenizer.json"

    @property
    def tokens(self) -> Path:
        return self.dir / "tokens"

    @property
    def checkpoints(self) -> Path:
        return self.dir / "checkpoints"

    def checkpoint(self, name: str = "pretrained") -> Path:
        return self.checkpoints / name

    @property
    def metrics(self) -> Path:
        return self.dir / "metrics"

    def metric(self, name: str) -> Path:
        return self.metrics / f"{name}.json"

    @property
    def executed(self) -> Path:
        return self.dir / "executed"

    @property
    def manifest(self) -> Path:
        return self.dir / "manifest.json"


# --- provenance -------------------------------------------------------------------------------

TRACKED_PACKAGES = ("torch", "numpy", "datasets", "tokenizers", "safetensors", "matplotlib",
                    "prefect", "papermill", "jupyter-book", "nbval", "jupyterlab", "tqdm", "transformers")


def package_versions(names: tuple[str, ...] = TRACKED_PACKAGES) -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def git_state(repo: Path = PROJECT_ROOT) -> dict[str, Any]:
    """The commit checked out and whether the tree has uncommitted changes (None outside git)."""
    def run(*args: str) -> str | None:
        try:
            out = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    commit = run("rev-parse", "HEAD")
    status = run("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": None if status is None else bool(status)}


def config_hash(obj: Any) -> str:
    """A stable short hash of a JSON-able configuration."""
    return sha256_text(json.dumps(obj, sort_keys=True, default=str))[:16]


def provenance(**extra: Any) -> dict[str, Any]:
    """What a reader needs to know to trust (or reproduce) a number: code, machine, versions, time."""
    record = {
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "git": git_state(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "packages": package_versions(),
    }
    record.update(extra)
    return record


def update_manifest(path: str | os.PathLike, section: str, entry: dict[str, Any]) -> dict[str, Any]:
    """Merge ``entry`` under ``section`` of the manifest at ``path`` (created if missing), atomically.

    The read, change and write happen under the manifest's lock: chapters running side by side (each in
    its own kernel) update the same manifest, and neither may lose the other's section.
    """
    path = Path(path)
    with integrity.manifest_lock(path.parent):
        manifest = read_json(path) if path.exists() else {}
        manifest[section] = entry
        manifest["updated"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
        atomic_write_json(path, manifest)
    return manifest
