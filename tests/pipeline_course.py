"""A tiny course of five real notebooks with the chapters' dependency graph, for the pipeline tests.

Each notebook has a title, a ``parameters`` cell like the real chapters', reads what its upstream
chapters wrote under ``artifacts/<profile>/`` and writes its own artifact and a metrics file. They
import no torch, so papermill runs each in about a second.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent

PARAMETERS = "profile = None\ndevice = None\nseed = None\nartifacts_dir = None"

SETUP = """import json
from pathlib import Path
out = Path(artifacts_dir) / profile
(out / "metrics").mkdir(parents=True, exist_ok=True)
print(f"chapter running: profile {profile}, device {device}, seed {seed}")"""

BODIES = {
    1: ("representation", """words = ("the cat sat on the mat " * 50).split()
(out / "corpus.txt").write_text(" ".join(words))
json.dump({"vocab_size": len(set(words)), "tokens": len(words)}, open(out / "metrics" / "representation.json", "w"))
assert len(set(words)) == 5"""),
    2: ("optimization", """corpus = (out / "corpus.txt").read_text().split()
counts = {w: corpus.count(w) for w in sorted(set(corpus))}
(out / "model.json").write_text(json.dumps({"counts": counts, "seed": seed}))
json.dump({"summary": {"val_loss": 1.25, "steps": 10}}, open(out / "metrics" / "optimization.json", "w"))"""),
    3: ("output", """model = json.loads((out / "model.json").read_text())
best = max(model["counts"], key=model["counts"].get)
json.dump({"greedy_token": best, "distinct": len(model["counts"])}, open(out / "metrics" / "output.json", "w"))"""),
    4: ("tasks", """model = json.loads((out / "model.json").read_text())
(out / "finetuned.json").write_text(json.dumps({"base": model["counts"], "task": "copy"}))
json.dump({"accuracy": 0.75}, open(out / "metrics" / "tasks.json", "w"))"""),
    5: ("society", """finetuned = json.loads((out / "finetuned.json").read_text())
output = json.loads((out / "metrics" / "output.json").read_text())
json.dump({"memorized": 0.5, "greedy_token": output["greedy_token"]}, open(out / "metrics" / "society.json", "w"))"""),
}


def notebook(number: int, extra: str | None = None) -> nbformat.NotebookNode:
    slug, body = BODIES[number]
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell(PARAMETERS)
    params.metadata["tags"] = ["parameters"]
    nb.cells = [nbformat.v4.new_markdown_cell(f"# Chapter {number}: {slug}\n\nA test chapter."),
                params, nbformat.v4.new_code_cell(SETUP), nbformat.v4.new_markdown_cell("The lesson."),
                nbformat.v4.new_code_cell(body)]
    if extra:
        nb.cells.append(nbformat.v4.new_code_cell(extra))
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    for i, cell in enumerate(nb.cells):   # stable ids: the file's bytes (and so its hash) are reproducible
        cell["id"] = f"cell-{number}-{i}"
    return nb


def write_notebook(folder: Path, number: int, extra: str | None = None) -> Path:
    path = folder / f"{number:02d}_{BODIES[number][0]}.ipynb"
    nbformat.write(notebook(number, extra), path)
    return path


def make_course(root: Path, chapters: tuple[int, ...] = (1, 2, 3, 4, 5)) -> dict[str, Path]:
    """notebooks/, artifacts/ and a copy of the project's book/ (sources only) under ``root``."""
    notebooks = root / "notebooks"
    notebooks.mkdir(parents=True)
    for n in chapters:
        write_notebook(notebooks, n)
    book = root / "book"
    copy_book(book)
    return {"notebooks": notebooks, "artifacts": root / "artifacts", "book": book}


def copy_book(target: Path) -> Path:
    """The project's book sources (no build output, no published chapters) copied to ``target``."""
    shutil.copytree(ROOT / "book", target, ignore=shutil.ignore_patterns("_build", "chapters", ".*"))
    return target


def tree_state(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` with its bytes: to prove a folder did not change."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}
