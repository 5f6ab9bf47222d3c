"""When a chapter can be skipped: its cache key, and the record a successful run leaves behind.

A chapter's key is a hash of (``key_parts``)
- the clean notebook (its bytes),
- the ``roots_course`` source tree (every ``.py`` file, by path and content),
- the parameters that change results (the profile's settings, device, seed) and the versions of
  the packages that compute them,
- each upstream chapter's key and the hashes of the artifacts it wrote.

After a successful run the chapter's record goes to ``artifacts/<profile>/executed/<name>.run.json``:
its key, wall time, metrics and the artifacts it wrote (the files under ``artifacts/<profile>/`` that
it created or changed, each with its SHA-256). A later run skips the chapter when the key is the
same, the executed notebook is there and those artifacts are still what the chapter wrote (a file a
later chapter rewrites on purpose does not count against it). Deleting ``artifacts/<profile>/``
therefore re-runs everything; a failed run removes the record, so it re-runs next time too.
"""

from __future__ import annotations

import hashlib
import json
import math
import sys
from pathlib import Path
from typing import Any

import roots_course
from roots_course.store.artifacts import atomic_write_json, package_versions
from roots_course.store.integrity import sha256_file

RECORD_SUFFIX = ".run.json"
# not artifacts of a chapter: the pipeline's own outputs
EXCLUDED = ("executed", "manifest.json")
# the packages whose version changes what the chapters compute
KEY_PACKAGES = ("torch", "numpy", "datasets", "tokenizers", "safetensors", "matplotlib")
SOURCE_DIR = Path(roots_course.__file__).resolve().parent


def _sha(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode("utf-8")).hexdigest()


def notebook_hash(path: Path) -> str:
    """SHA-256 of what a notebook computes: the source and tags of each code cell, in order.

    Prose, outputs and metadata are left out: editing a paragraph, a citation or a figure's
    caption neither re-runs a chapter nor makes its published page stale, because publishing
    takes the prose from the clean notebook (``publish.with_current_text``).
    """
    cells = json.loads(Path(path).read_text(encoding="utf-8")).get("cells", [])
    code = []
    for cell in cells:
        if cell.get("cell_type") != "code":
            continue
        source = cell.get("source", "")
        code.append([sorted((cell.get("metadata") or {}).get("tags", [])),
                     "".join(source) if isinstance(source, list) else source])
    return _sha(code)


def source_hash(root: Path = SOURCE_DIR) -> str:
    """SHA-256 over the relative path and content of every ``.py`` file under ``root``."""
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        if "__pycache__" in path.parts:
            continue
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


def environment_fingerprint() -> dict[str, Any]:
    return {"python": sys.version.split()[0], "packages": package_versions(KEY_PACKAGES)}


def outputs_digest(outputs: dict[str, dict[str, Any]] | None) -> str | None:
    if outputs is None:
        return None
    return _sha(sorted((rel, entry["sha256"]) for rel, entry in outputs.items()))


def upstream_summary(record: dict[str, Any] | None) -> dict[str, Any] | None:
    """What a downstream key sees of an upstream chapter: its key and the artifacts it wrote."""
    if record is None:
        return None
    return {"key": record.get("key"), "outputs": outputs_digest(record.get("outputs"))}


def key_parts(notebook_sha256: str, source_sha256: str, parameters: dict[str, Any],
              environment: dict[str, Any], upstream: dict[int, dict[str, Any] | None]) -> dict[str, Any]:
    """The hashed inputs of a chapter's key, kept in its record so a re-run can say what changed."""
    return {
        "notebook": notebook_sha256,
        "roots_course": source_sha256,
        "parameters": _sha(parameters),
        "environment": _sha(environment),
        "upstream": {str(n): upstream_summary(r) for n, r in sorted(upstream.items())},
    }


def chapter_key(parts: dict[str, Any]) -> str:
    return _sha(parts)


def what_changed(old: dict[str, Any] | None, new: dict[str, Any]) -> str:
    """A reader's account of why two keys differ."""
    if not old:
        return "its cache key changed"
    labels = {"notebook": "its notebook", "roots_course": "the roots_course source",
              "parameters": "its parameters (profile settings, device or seed)",
              "environment": "the Python or package versions"}
    changed = [label for part, label in labels.items() if old.get(part) != new.get(part)]
    old_up, new_up = old.get("upstream") or {}, new.get("upstream") or {}
    changed += [f"upstream chapter {n}" for n in sorted(set(old_up) | set(new_up)) if old_up.get(n) != new_up.get(n)]
    if not changed:
        return "its cache key changed"
    listed = changed[0] if len(changed) == 1 else ", ".join(changed[:-1]) + " and " + changed[-1]
    return f"{listed} changed"


# --- what a chapter wrote -----------------------------------------------------------------------

def _counted(rel: Path) -> bool:
    return rel.parts[0] not in EXCLUDED and not any(p.startswith(".") for p in rel.parts)


def snapshot(profile_dir: Path) -> dict[str, tuple[int, int]]:
    """(size, mtime_ns) of every artifact file under ``profile_dir``."""
    state: dict[str, tuple[int, int]] = {}
    if not profile_dir.is_dir():
        return state
    for path in profile_dir.rglob("*"):
        rel = path.relative_to(profile_dir)
        if _counted(rel) and path.is_file():
            st = path.stat()
            state[rel.as_posix()] = (st.st_size, st.st_mtime_ns)
    return state


def written_between(before: dict[str, tuple[int, int]], after: dict[str, tuple[int, int]]) -> list[str]:
    """Files created or changed between two snapshots."""
    return sorted(rel for rel, stat in after.items() if before.get(rel) != stat)


def describe_files(profile_dir: Path, rels: list[str]) -> dict[str, dict[str, Any]]:
    entries = {}
    for rel in rels:
        path = profile_dir / rel
        if path.is_file():
            st = path.stat()
            entries[rel] = {"sha256": sha256_file(path), "size": st.st_size, "mtime_ns": st.st_mtime_ns}
    return entries


def metrics_of(profile_dir: Path, outputs: dict[str, Any], limit: int = 24) -> dict[str, float | int | str]:
    """Scalar numbers from the metrics JSON files a chapter wrote (top level and one level down)."""
    found: dict[str, float | int | str] = {}
    for rel in sorted(outputs):
        if not (rel.startswith("metrics/") and rel.endswith(".json")):
            continue
        try:
            data = json.loads((profile_dir / rel).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        stem = Path(rel).stem
        items = list(data.items()) if isinstance(data, dict) else []
        for key, value in items:
            pairs = value.items() if isinstance(value, dict) else [(None, value)]
            for sub, leaf in pairs:
                if isinstance(leaf, bool) or not isinstance(leaf, (int, float)):
                    continue
                if isinstance(leaf, float) and not math.isfinite(leaf):
                    continue
                name = f"{stem}.{key}" + (f".{sub}" if sub is not None else "")
                found[name] = round(leaf, 6) if isinstance(leaf, float) else leaf
                if len(found) >= limit:
                    return found
    return found


# --- records ------------------------------------------------------------------------------------

def record_path(executed_dir: Path, name: str) -> Path:
    return executed_dir / f"{name}{RECORD_SUFFIX}"


def read_record(path: Path) -> dict[str, Any] | None:
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and record.get("status") == "ok" else None


def write_record(path: Path, record: dict[str, Any]) -> None:
    atomic_write_json(path, record)


def all_records(executed_dir: Path) -> dict[str, dict[str, Any]]:
    """Every valid record in ``executed_dir``, by chapter name."""
    records = {}
    if executed_dir.is_dir():
        for path in sorted(executed_dir.glob(f"*{RECORD_SUFFIX}")):
            record = read_record(path)
            if record is not None:
                records[path.name[: -len(RECORD_SUFFIX)]] = record
    return records


def stale_reason(record: dict[str, Any] | None, parts: dict[str, Any], profile_dir: Path,
                 rewritten_by_others: set[str] = frozenset()) -> str | None:
    """Why the chapter of ``record`` must run again, or None when it can be skipped."""
    if record is None:
        return "it has no record of a successful run"
    if record.get("key") != chapter_key(parts):
        return what_changed(record.get("key_parts"), parts)
    if not Path(record.get("executed", "")).is_file():
        return "its executed notebook is missing"
    for rel, entry in (record.get("outputs") or {}).items():
        path = profile_dir / rel
        if not path.is_file():
            return f"its artifact {rel} is missing"
        st = path.stat()
        if (st.st_size, st.st_mtime_ns) == (entry.get("size"), entry.get("mtime_ns")):
            continue
        if rel in rewritten_by_others or sha256_file(path) == entry.get("sha256"):
            continue
        return f"its artifact {rel} changed since it was written"
    return None
