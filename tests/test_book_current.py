"""The committed book is a real run of the current chapters: none is missing, none is stale.

A published chapter records the hash of the code it ran (``cache.notebook_hash``) and carries the
prose of the notebook it was published from. When a chapter's code changes, the book needs a new run
(``python -m pipelines run --profile cpu``); when only its prose or captions change, a new publish
(``python -m pipelines publish --profile cpu``). These tests say which.
"""

from pathlib import Path

import nbformat
import pytest

from pipelines.cache import notebook_hash
from pipelines.publish import PROVENANCE_ID, with_current_text

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
CHAPTERS = ROOT / "book" / "chapters"


def published(notebook: Path) -> nbformat.NotebookNode:
    page = CHAPTERS / notebook.name
    assert page.is_file(), f"{notebook.name} is not published: run `python -m pipelines run --profile cpu`"
    return nbformat.read(page, as_version=4)


def stale_reason(clean: nbformat.NotebookNode, page: nbformat.NotebookNode, code_hash: str) -> str | None:
    """Why ``page`` does not show ``clean`` as it is now, or None when it does."""
    provenance = page.metadata.get("roots", {}).get("provenance", {})
    if provenance.get("notebook_sha256") != code_hash:
        return "its code changed since the run that made the page: run `python -m pipelines run --profile cpu`"
    shown = [c.source for c in page.cells if c.cell_type == "markdown" and c.get("id") != PROVENANCE_ID]
    written = [c.source for c in clean.cells if c.cell_type == "markdown"]
    if shown != written:
        return "its prose changed since it was published: run `python -m pipelines publish --profile cpu`"
    captions = [c.metadata.get("mystnb") for c in page.cells if c.cell_type == "code"
                and "injected-parameters" not in c.metadata.get("tags", [])]
    if captions != [c.metadata.get("mystnb") for c in clean.cells if c.cell_type == "code"]:
        return "its figure captions changed since it was published: run `python -m pipelines publish --profile cpu`"
    return None


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_the_published_chapter_is_a_run_of_the_current_notebook(notebook):
    page = published(notebook)
    reason = stale_reason(nbformat.read(notebook, as_version=4), page, notebook_hash(notebook))
    assert reason is None, f"book/chapters/{notebook.name} is stale: {reason}"


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_the_published_chapter_is_executed_and_profiled(notebook):
    page = published(notebook)
    provenance = page.metadata["roots"]["provenance"]
    assert provenance["profile"] == "cpu", "the book shows the cpu profile's run"
    assert provenance["commit"] and provenance["dirty"] is False, "published from a committed state"
    code = [c for c in page.cells if c.cell_type == "code"]
    assert code and all(c.execution_count for c in code), "every code cell of a published chapter ran"


def test_the_book_holds_no_chapter_without_a_notebook():
    names = {p.name for p in NOTEBOOKS}
    extra = [p.name for p in CHAPTERS.glob("*.ipynb") if p.name not in names]
    assert not extra, f"book/chapters/ holds pages with no notebook in notebooks/: {extra}"


def _executed_and_clean():
    clean = nbformat.v4.new_notebook()
    clean.cells = [nbformat.v4.new_markdown_cell("# Title", id="t"), nbformat.v4.new_code_cell("x = 1", id="c")]
    executed = nbformat.from_dict(nbformat.reads(nbformat.writes(clean), as_version=4))
    executed.cells[1].execution_count = 1
    return clean, executed


def test_each_kind_of_staleness_is_caught(tmp_path):
    clean, executed = _executed_and_clean()
    path = tmp_path / "01_x.ipynb"
    nbformat.write(clean, path)
    page = nbformat.reads(nbformat.writes(with_current_text(executed, clean)), as_version=4)  # as on disk
    page.metadata["roots"] = {"provenance": {"notebook_sha256": notebook_hash(path)}}
    assert stale_reason(clean, page, notebook_hash(path)) is None

    clean.cells[0].source = "# Title, reworded"
    assert "prose changed" in stale_reason(clean, page, notebook_hash(path))
    clean.cells[0].source = "# Title"
    clean.cells[1].metadata["mystnb"] = {"image": {"alt": "new"}}
    assert "captions changed" in stale_reason(clean, page, notebook_hash(path))
    clean.cells[1].source = "x = 2"
    nbformat.write(clean, path)
    assert "code changed" in stale_reason(clean, page, notebook_hash(path))


def test_a_page_showing_only_the_injected_parameters_is_still_current(tmp_path):
    clean = nbformat.v4.new_notebook()
    clean.cells = [nbformat.v4.new_markdown_cell("# Title", id="t"),
                   nbformat.v4.new_code_cell("profile = 'cpu'", id="p", metadata={"tags": ["parameters"]}),
                   nbformat.v4.new_code_cell("x = 1", id="c")]
    path = tmp_path / "01_x.ipynb"
    nbformat.write(clean, path)
    executed = nbformat.from_dict(nbformat.reads(nbformat.writes(clean), as_version=4))
    injected = nbformat.v4.new_code_cell("profile = 'smoke'", id="i", metadata={"tags": ["injected-parameters"]})
    executed.cells.insert(2, injected)
    page = nbformat.reads(nbformat.writes(with_current_text(executed, clean)), as_version=4)   # as on disk
    page.metadata["roots"] = {"provenance": {"notebook_sha256": notebook_hash(path)}}
    assert "remove-cell" in page.cells[1].metadata["tags"], "the default parameters are left out of the page"
    assert stale_reason(clean, page, notebook_hash(path)) is None
