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

Writes are atomic (``roots_course.store.atomic``): the bytes go to a temporary file in the same folder,
are flushed to the disk, and the file is then renamed over the target. A crash leaves either the old
file or the new one, never a truncated mix. Weights are safetensors (no pickle: loading a file a user
hands us cannot run code); everything else is JSON. Inside a profile folder whose manifest records
checksums, every write updates its file's checksum and every load checks it
(``roots_course.store.integrity``).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from roots_course._offline import PROJECT_ROOT
from roots_course.errors import CheckpointError
from roots_course.store import atomic, integrity
from roots_course.store.integrity import rebuild_hint


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` via a temporary file and a rename (its checksum follows); return the path."""
    return atomic.write_bytes_atomically(path, data, integrity.writing)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    return atomic.write_json_atomically(path, obj, integrity.writing)


def shown(path: str | os.PathLike) -> str:
    """``path`` as a reader should see it: relative to the project when inside it (``artifacts/cpu/...``),
    so printed output and published chapters don't carry one machine's folders; else unchanged."""
    try:
        return Path(path).resolve().relative_to(PROJECT_ROOT.resolve()).as_posix()
    except ValueError:
        return str(path)


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


def save_tensors(path: str | os.PathLike, tensors: dict[str, torch.Tensor],
                 metadata: dict[str, str] | None = None) -> Path:
    """Save tensors as safetensors, atomically (its checksum follows, see ``roots_course.store.integrity``)."""
    # safetensors refuses two names that point at one storage (e.g. tied weights): copy those.
    storages = [v.untyped_storage().data_ptr() for v in tensors.values()]
    clean = {k: (v.detach().clone() if storages.count(v.untyped_storage().data_ptr()) > 1 else v.detach()
                 ).contiguous() for k, v in tensors.items()}
    return atomic.write_atomically(path, lambda tmp: save_file(clean, str(tmp), metadata=metadata), integrity.writing)


def load_tensors(path: str | os.PathLike, device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """Load a safetensors file; a missing, truncated or altered file raises CheckpointError naming it.

    safetensors itself checks only that the header and the file's size agree; altered bytes are caught
    by the checksum the profile's manifest recorded (``integrity.verify``).
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: file not found")
    integrity.verify(path)
    try:
        tensors = load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{path}: not a readable safetensors file, it is truncated or altered ({exc}). "
                              f"{rebuild_hint(path)}") from exc
    if torch.device(device).type != "cpu":
        tensors = {k: v.to(device) for k, v in tensors.items()}
    return tensors


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class ArtifactPaths:
    """The ``artifacts/<profile>/`` layout. Creating the object creates nothing on disk."""

    root: Path
    profile: str

    @classmethod
    def for_profile(cls, profile: str, root: str | os.PathLike | None = None) -> ArtifactPaths:
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
            out = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, timeout=10, check=False)
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
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
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
        manifest["updated"] = datetime.now(UTC).isoformat(timespec="seconds")
        atomic_write_json(path, manifest)
    return manifest
