"""A run's provenance: what ran, where, with what, how long, and what it measured.

Every run (successful or not) writes it into ``artifacts/<profile>/manifest.json`` under the key
``pipeline`` (other keys of that file belong to the library) and shows it in the Prefect UI as a
Markdown artifact.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from roots_course.store.artifacts import git_state, package_versions, update_manifest

SECTION = "pipeline"


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def build(*, flow: str, flow_run_id: str | None, started: str, wall_s: float, status: str,
          profile: str, device: str, resolved_device: str, seed: int, chapters: list[dict[str, Any]],
          error: str | None = None, published: str | None = None) -> dict[str, Any]:
    """The manifest of one run; ``chapters`` holds one entry per chapter considered, in order."""
    return {
        "flow": flow,
        "flow_run_id": flow_run_id,
        "status": status,
        "error": error,
        "started": started,
        "finished": now(),
        "wall_s": round(wall_s, 2),
        "git": git_state(),
        "profile": profile,
        "device": device,
        "resolved_device": resolved_device,
        "seeds": {"seed": seed},
        "packages": package_versions(),
        "chapters": chapters,
        "published": published,
    }


def chapter_entry(name: str, number: int, status: str, record: dict[str, Any] | None = None,
                  error: str | None = None) -> dict[str, Any]:
    """One chapter of a run: ``ran``, ``cached``, ``failed`` or ``not run`` (an upstream failed)."""
    record = record or {}
    return {
        "chapter": number, "name": name, "status": status,
        "wall_s": record.get("wall_s"), "executed": record.get("executed"), "log": record.get("log"),
        "key": record.get("key"), "seed": (record.get("parameters") or {}).get("seed"),
        "metrics": record.get("metrics", {}), "error": error,
    }


def write(manifest_path: Path, manifest: dict[str, Any]) -> dict[str, Any]:
    return update_manifest(manifest_path, SECTION, manifest)


def _cell(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def markdown(manifest: dict[str, Any], max_metrics: int = 4) -> str:
    """The manifest as Markdown: a summary, then a table with one row per chapter."""
    git = manifest.get("git") or {}
    commit = (git.get("commit") or "unknown")[:12]
    dirty = {True: " (uncommitted changes)", False: "", None: ""}[git.get("dirty")]
    packages = ", ".join(f"{k} {v}" for k, v in manifest["packages"].items() if v)
    lines = [
        f"# ROOTS `{manifest['flow']}`: {manifest['status']}",
        "",
        "| what | value |",
        "| --- | --- |",
        f"| profile | `{manifest['profile']}` |",
        f"| device | `{manifest['device']}` ({manifest['resolved_device']}) |",
        f"| seed | {manifest['seeds']['seed']} |",
        f"| commit | `{commit}`{dirty} |",
        f"| wall time | {manifest['wall_s']:.1f} s |",
        f"| started | {manifest['started']} |",
        f"| published | {_cell(manifest.get('published') or 'no')} |",
        f"| packages | {_cell(packages)} |",
        "",
        "| chapter | status | wall time (s) | key metrics |",
        "| --- | --- | ---: | --- |",
    ]
    for entry in manifest["chapters"]:
        metrics = entry.get("metrics") or {}
        shown = ", ".join(f"{k} = {v}" for k, v in list(metrics.items())[:max_metrics])
        if len(metrics) > max_metrics:
            shown += f" (+{len(metrics) - max_metrics} in manifest.json)"
        wall = f"{entry['wall_s']:.1f}" if isinstance(entry.get("wall_s"), (int, float)) else ""
        lines.append(f"| {entry['chapter']} `{entry['name']}` | {entry['status']} | {wall} | {_cell(shown)} |")
    if manifest.get("error"):
        lines += ["", f"**Error:** {_cell(manifest['error'])}"]
    return "\n".join(lines) + "\n"
