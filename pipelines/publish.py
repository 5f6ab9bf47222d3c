"""Publish executed chapters into the book: stamp, stage, build, then swap in, all or nothing.

1. Stage: copy the book's sources (not ``_build``) into a temporary folder beside ``book/``; in the
   copy, write each executed notebook stamped with its provenance into ``chapters/`` and rewrite the
   chapter entries of ``_toc.yml``.
2. Build the staged copy with ``jupyter-book build``.
3. Only when the build passed, swap the staged ``chapters/`` with the book's (the old folder renamed
   aside, the new one renamed in, the old one removed: every step a rename, on every OS), then move in
   ``_toc.yml`` and the built ``_build/``.

Any failure before step 3 deletes the staging folder and leaves ``book/`` exactly as it was; a
publish that was killed outright leaves its staging folder behind, and the next publish removes it.
One publish at a time writes into a book (the lock ``.book-publish.lock`` beside it).

A published chapter shows the parameters its run was given (papermill's ``injected-parameters``
cell); the notebook's own ``parameters`` cell, whose defaults that run replaced, gets the tag
``remove-cell`` in the published copy, so the page shows one parameters cell, not two. The notebook
in ``notebooks/`` is unchanged: JupyterLab readers still see and run the defaults.

A run of a profile other than the committed book's publishes into a book of its own
(``pipelines.parameters``); ``seed_book`` copies ``book/``'s sources into it first.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

import nbformat
import yaml

from roots_course.store.artifacts import atomic_write_text
from roots_course.store.locking import FileLock

PUBLISH_WAIT_S = 1800.0
PROVENANCE_ID = "roots-provenance"
HIDDEN_TAG = "remove-cell"   # Jupyter Book leaves a cell with this tag out of the page
CHAPTERS = "chapters"
TOC_HEADER = ("# Jupyter Book's table of contents. `python -m pipelines` rewrites the entries under chapters/ on\n"
              "# every publish, from the chapters that have been executed; other entries are kept as they are.\n")


class PublishError(RuntimeError):
    """Publishing stopped; the book was left as it was."""


# --- provenance stamp ---------------------------------------------------------------------------

def provenance_of(record: dict[str, Any]) -> dict[str, Any]:
    """The provenance a published chapter carries, from the record of the run that executed it."""
    prov = record.get("provenance") or {}
    git = prov.get("git") or {}
    params = record.get("parameters") or {}
    return {
        "chapter": record.get("name"),
        "commit": git.get("commit"),
        "dirty": git.get("dirty"),
        "profile": params.get("profile"),
        "device": record.get("device"),
        "seed": params.get("seed"),
        "python": prov.get("python"),
        "packages": prov.get("packages") or {},
        "wall_s": record.get("wall_s"),
        "executed_at": record.get("finished"),
        "notebook_sha256": record.get("notebook_sha256"),
    }


def provenance_markdown(prov: dict[str, Any]) -> str:
    commit = prov.get("commit") or "unknown (not a git checkout)"
    dirty = {True: "yes", False: "no", None: "unknown"}[prov.get("dirty")]
    packages = ", ".join(f"{k} {v}" for k, v in prov["packages"].items() if v)
    wall = f"{prov['wall_s']:.1f} s" if isinstance(prov.get("wall_s"), (int, float)) else "unknown"
    rows = [
        ("profile", f"`{prov.get('profile')}`"),
        ("device", f"`{prov.get('device')}`"),
        ("seed", f"{prov.get('seed')}"),
        ("commit", f"`{commit}`"),
        ("uncommitted changes", dirty),
        ("wall time", wall),
        ("executed", f"{prov.get('executed_at')}"),
        ("notebook source sha256", f"`{prov.get('notebook_sha256')}`"),
        ("Python", f"{prov.get('python')}"),
        ("packages", packages.replace("|", "\\|")),
    ]
    table = "\n".join(["| what | value |", "| --- | --- |"] + [f"| {k} | {v} |" for k, v in rows])
    day = str(prov.get("executed_at") or "")[:10] or "unknown date"
    minutes = f"{prov['wall_s'] / 60:.1f} min" if isinstance(prov.get("wall_s"), (int, float)) else "unknown time"
    summary = (f"How this page was made: profile {prov.get('profile')}, {prov.get('device')}, "
               f"commit {commit[:7]}, {day}, {minutes}")
    # a dropdown: the summary in its title is always visible, the full record one click away
    return (f"```{{admonition}} {summary}\n:class: note dropdown\n\n"
            "This chapter was executed by the ROOTS pipeline (`python -m pipelines`); "
            "every number on this page comes from that run.\n\n" + table + "\n```\n")


def stamp(nb: nbformat.NotebookNode, prov: dict[str, Any], project_root: Path | None = None) -> nbformat.NotebookNode:
    """Put ``prov`` into the notebook's metadata and as a markdown cell right after the title cell (the
    first cell, when it is markdown opening with a ``# `` title; else at the top), replacing an old stamp.

    papermill's metadata keeps the machine's absolute paths; they are made relative to ``project_root``.
    """
    nb.cells = [c for c in nb.cells if c.get("id") != PROVENANCE_ID
                and PROVENANCE_ID not in c.get("metadata", {}).get("tags", [])]
    cell = nbformat.v4.new_markdown_cell(provenance_markdown(prov))
    cell["id"] = PROVENANCE_ID
    cell.metadata["tags"] = [PROVENANCE_ID]
    first = nb.cells[0] if nb.cells else None
    titled = first is not None and first.cell_type == "markdown" and first.source.lstrip().startswith("# ")
    nb.cells.insert(1 if titled else 0, cell)
    nb.metadata.setdefault("roots", {})["provenance"] = prov
    pm = nb.metadata.get("papermill")
    if pm and project_root is not None:
        for key in ("input_path", "output_path"):
            if pm.get(key) and Path(pm[key]).is_absolute():
                path = Path(pm[key])
                try:
                    pm[key] = path.resolve().relative_to(project_root.resolve()).as_posix()
                except ValueError:
                    pm[key] = path.name
    return nb


def _is_injected(cell: nbformat.NotebookNode) -> bool:
    return "injected-parameters" in cell.get("metadata", {}).get("tags", [])


def with_current_text(executed: nbformat.NotebookNode, clean: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The page to publish: the clean notebook's prose around the executed notebook's code and outputs.

    A chapter's run is keyed on its code alone (``cache.notebook_hash``), so prose, citations and
    figure captions (cell metadata ``mystnb``) edited after the run reach the book at the next
    publish without re-running hours of training; the numbers still come from exactly this code.
    Raises PublishError when the code cells differ, which the hash check before publishing rules out.
    """
    ran = [c for c in executed.cells if c.cell_type == "code" and not _is_injected(c)]
    injected = [c for c in executed.cells if _is_injected(c)]
    written = [c for c in clean.cells if c.cell_type == "code"]
    if [c.source for c in ran] != [c.source for c in written]:
        raise PublishError("the executed notebook's code differs from the clean notebook's; run regenerate first. "
                           "The book was left as it was.")
    outputs = iter(ran)
    cells = []
    for cell in clean.cells:
        if cell.cell_type != "code":
            cells.append(cell)
            continue
        done = next(outputs)
        if "mystnb" in cell.metadata:
            done.metadata["mystnb"] = cell.metadata["mystnb"]
        cells.append(done)
        if "parameters" in cell.metadata.get("tags", []) and injected:
            # the page shows the values the run used (the injected cell), not the defaults they replaced
            tags = done.metadata.setdefault("tags", [])
            if HIDDEN_TAG not in tags:
                tags.append(HIDDEN_TAG)
            cells.extend(injected)
    page = nbformat.from_dict(dict(executed))
    page.cells = cells
    return page


# --- table of contents --------------------------------------------------------------------------

def _is_chapter(entry: Any) -> bool:
    return isinstance(entry, dict) and str(entry.get("file", "")).startswith(f"{CHAPTERS}/")


def _replace_chapters(entries: list[Any], pages: list[dict[str, str]], place: bool) -> tuple[list[Any], bool]:
    first = next((i for i, e in enumerate(entries) if _is_chapter(e)), None)
    rest = [e for e in entries if not _is_chapter(e)]
    if place and first is not None:
        return rest[:first] + pages + rest[first:], True
    return rest, False


def toc_with_chapters(toc: dict[str, Any] | None, pages: list[str]) -> dict[str, Any]:
    """``toc`` with its ``chapters/...`` entries replaced by ``pages``, in order; other entries kept."""
    toc = dict(toc or {})
    toc.setdefault("format", "jb-book")
    toc.setdefault("root", "intro")
    entries = [{"file": p} for p in pages]
    placed = False
    if isinstance(toc.get("parts"), list):
        for part in toc["parts"]:
            part["chapters"], done = _replace_chapters(part.get("chapters") or [], entries, not placed)
            placed = placed or done
        if not placed and entries:
            toc["parts"].insert(0, {"caption": "Chapters", "chapters": entries})
        toc["parts"] = [p for p in toc["parts"] if p.get("chapters")]
    else:
        chapters, placed = _replace_chapters(toc.get("chapters") or [], entries, True)
        if not placed:
            chapters = entries + chapters
        toc["chapters"] = chapters
        if not toc["chapters"]:
            del toc["chapters"]
    return toc


def read_toc(book_dir: Path) -> dict[str, Any] | None:
    path = book_dir / "_toc.yml"
    if not path.is_file():
        return None
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    return data if isinstance(data, dict) else None


# --- swapping folders ---------------------------------------------------------------------------

def exchange(new: Path, current: Path) -> None:
    """Put folder ``new`` at ``current``; the old content ends up at ``new``.

    Two renames: ``current`` aside, ``new`` in (undone when it fails), so ``current`` is never a mix of
    both; for the instant between them it is absent, which nobody sees, as publishing holds the book's lock.
    When ``current`` does not exist this is a plain rename and ``new`` disappears.
    """
    if not current.exists():
        os.rename(new, current)
        return
    aside = current.with_name(f".{current.name}.old-{uuid.uuid4().hex[:8]}")
    os.rename(current, aside)
    try:
        os.rename(new, current)
    except BaseException:
        os.rename(aside, current)
        raise
    os.rename(aside, new)


def seed_book(sources: Path, book: Path) -> None:
    """Make ``book`` a copy of the book at ``sources`` (its pages, settings, extensions, _toc.yml),
    keeping the chapters already published into ``book``; files that are already equal are not touched,
    so the book is rebuilt only when something changed."""
    sources, book = Path(sources).resolve(), Path(book).resolve()
    for path in sorted(sources.rglob("*")):
        rel = path.relative_to(sources)
        if rel.parts[0] in ("_build", CHAPTERS, "_toc.yml") or any(part.startswith(".") for part in rel.parts) \
                or "__pycache__" in rel.parts or not path.is_file():
            continue
        _write_if_changed(book / rel, path.read_bytes())
    # the sources' table of contents, with this book's own chapters (once it has some) in place of theirs
    toc, own = read_toc(sources), read_toc(book)
    if own is not None:
        toc = toc_with_chapters(toc, _chapter_pages(own))
    _write_if_changed(book / "_toc.yml", (TOC_HEADER + yaml.safe_dump(toc, sort_keys=False, allow_unicode=True))
                      .encode("utf-8"))


def _write_if_changed(target: Path, data: bytes) -> None:
    if target.is_file() and target.read_bytes() == data:
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)


def _chapter_pages(toc: dict[str, Any] | None) -> list[str]:
    """The ``chapters/...`` pages a table of contents lists, in order."""
    if not toc:
        return []
    entries = [e for part in toc.get("parts") or [] for e in part.get("chapters") or []] + (toc.get("chapters") or [])
    return [e["file"] for e in entries if _is_chapter(e)]


# --- building -----------------------------------------------------------------------------------

def jupyter_book_command() -> list[str]:
    beside = Path(sys.executable).with_name("jupyter-book")
    if beside.is_file():
        return [str(beside)]
    found = shutil.which("jupyter-book")
    if found:
        return [found]
    return [sys.executable, "-c", "from jupyter_book.cli.main import main; main()"]


def build_book(book_dir: Path, log_path: Path | None = None, extra_args: tuple[str, ...] = ()) -> None:
    """``jupyter-book build book_dir``; PublishError with the end of its output when it fails."""
    command = [*jupyter_book_command(), "build", str(book_dir), *extra_args]
    result = subprocess.run(command, check=False, capture_output=True, text=True, cwd=book_dir.parent)
    output = result.stdout + result.stderr
    if log_path is not None:
        atomic_write_text(log_path, f"$ {' '.join(command)}\n{output}")
    if result.returncode != 0:
        tail = "\n".join(output.strip().splitlines()[-15:])
        raise PublishError(f"jupyter-book build failed (exit {result.returncode}); the book was left as it was. "
                           f"Last lines:\n{tail}")


# --- publishing ---------------------------------------------------------------------------------

def render(book: Path, executed: list[tuple[str, Path, dict[str, Any]]], keep: set[str] | None,
           project_root: Path | None, extra_pages: dict[str, str] | None = None) -> tuple[dict[str, bytes], str]:
    """What ``chapters/`` (its files, by name) and ``_toc.yml`` will hold after publishing.

    Chapters already in the book stay unless ``keep`` (page names) is given and leaves them out.
    ``extra_pages`` (file name -> Markdown) are written beside the chapters and listed after them.
    """
    folder = book / CHAPTERS
    new_names = {name for name, _, _ in executed}
    files = {p.name: p.read_bytes() for p in sorted(folder.glob("*.ipynb"))
             if p.stem not in new_names and (keep is None or p.stem in keep)} if folder.is_dir() else {}
    for name, path, record in executed:
        nb = nbformat.read(path, as_version=4)
        clean = Path(record.get("notebook") or "")
        if clean.is_file():
            nb = with_current_text(nb, nbformat.read(clean, as_version=4))
        nb = stamp(nb, provenance_of(record), project_root)
        nbformat.validate(nb)
        text = nbformat.writes(nb)
        files[f"{name}.ipynb"] = (text if text.endswith("\n") else text + "\n").encode("utf-8")
    pages = [f"{CHAPTERS}/{Path(n).stem}" for n in sorted(files)]
    for name, text in (extra_pages or {}).items():
        files[name] = text.encode("utf-8")
        pages.append(f"{CHAPTERS}/{Path(name).stem}")
    toc = TOC_HEADER + yaml.safe_dump(toc_with_chapters(read_toc(book), pages), sort_keys=False, allow_unicode=True)
    return files, toc


def is_current(book: Path, files: dict[str, bytes], toc: str) -> bool:
    """True when the book already holds exactly this content and its HTML is newer than its sources."""
    folder = book / CHAPTERS
    index = book / "_build" / "html" / "index.html"
    if not (folder.is_dir() and index.is_file() and (book / "_toc.yml").is_file()):
        return False
    if (book / "_toc.yml").read_text(encoding="utf-8") != toc:
        return False
    present = {p.name: p for p in folder.iterdir() if p.is_file()}
    if set(present) != set(files) or any(present[n].read_bytes() != data for n, data in files.items()):
        return False
    built = index.stat().st_mtime
    sources = (p for p in book.rglob("*") if p.is_file() and
               not any(part.startswith((".", "_build")) for part in p.relative_to(book).parts))
    return all(p.stat().st_mtime <= built for p in sources)


def publish(book_dir: str | os.PathLike, executed: list[tuple[str, Path, dict[str, Any]]],
            keep: set[str] | None = None, build: bool = True, build_log: Path | None = None,
            project_root: Path | None = None, build_args: tuple[str, ...] = (),
            extra_pages: dict[str, str] | None = None) -> Path:
    """Publish ``executed`` — (page name, executed notebook, its run record) — into ``book_dir``.

    Chapters already in the book stay unless ``keep`` (page names) is given and leaves them out.
    Returns the built ``index.html`` (or the chapters folder when ``build`` is False).
    """
    book = Path(book_dir).resolve()
    if not (book / "_config.yml").is_file():
        raise PublishError(f"{book} is not a Jupyter Book folder (no _config.yml)")
    # runs of two profiles may publish into one book: one at a time (a build takes a minute or two)
    with FileLock(book.parent / f".{book.name}-publish.lock", f"another process is publishing into {book}",
                  timeout=PUBLISH_WAIT_S):
        for leftover in book.parent.glob(f".{book.name}-publish-*"):    # of a publish that was killed
            if leftover.is_dir():
                shutil.rmtree(leftover, ignore_errors=True)
        return _publish_locked(book, executed, keep, build, build_log, project_root, build_args, extra_pages)


def _publish_locked(book: Path, executed: list[tuple[str, Path, dict[str, Any]]], keep: set[str] | None,
                    build: bool, build_log: Path | None, project_root: Path | None, build_args: tuple[str, ...],
                    extra_pages: dict[str, str] | None) -> Path:
    files, toc = render(book, executed, keep, project_root, extra_pages)
    stage_root = Path(tempfile.mkdtemp(prefix=f".{book.name}-publish-", dir=book.parent))
    try:
        stage = stage_root / book.name
        shutil.copytree(book, stage, symlinks=True,
                        ignore=lambda d, names: [n for n in names if Path(d) == book and
                                                 (n == "_build" or n.startswith("."))])
        chapters = stage / CHAPTERS
        chapters.mkdir(exist_ok=True)
        for old in chapters.iterdir():
            if old.is_file():
                old.unlink()
        for name, data in files.items():
            (chapters / name).write_bytes(data)
        (stage / "_toc.yml").write_text(toc, encoding="utf-8")
        if build:
            build_book(stage, build_log, build_args)
        # --- commit: nothing above touched book/ ---
        exchange(chapters, book / CHAPTERS)
        os.replace(stage / "_toc.yml", book / "_toc.yml")
        if build:
            # Sphinx's pickled environment remembers the staging path; drop it so the next
            # `jupyter-book build book/` starts its environment afresh instead of trusting it.
            shutil.rmtree(stage / "_build" / ".doctrees", ignore_errors=True)
            exchange(stage / "_build", book / "_build")
    finally:
        shutil.rmtree(stage_root, ignore_errors=True)
    return book / "_build" / "html" / "index.html" if build else book / CHAPTERS
