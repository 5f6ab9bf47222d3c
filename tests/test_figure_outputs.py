"""book/_ext/figure_outputs.py: a captioned cell's caption goes to its (last) image, not to its tables."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import SimpleNamespace

import nbformat

EXTENSION = Path(__file__).resolve().parents[1] / "book" / "_ext" / "figure_outputs.py"
_spec = importlib.util.spec_from_file_location("figure_outputs", EXTENSION)
figure_outputs = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(figure_outputs)

CAPTION = {"figure": {"caption": "What the plot shows.", "name": "fig-01-test"}, "image": {"alt": "A plot."}}


def image(kind: str = "execute_result"):
    data = {"image/png": "iVBORw0KGgo=", "text/plain": "<Figure>"}
    if kind == "execute_result":
        return nbformat.v4.new_output(kind, data=data, execution_count=1)
    return nbformat.v4.new_output(kind, data=data)


def table():
    return nbformat.v4.new_output("display_data", data={"text/html": "<table></table>", "text/plain": "t"})


def printed():
    return nbformat.v4.new_output("stream", name="stdout", text="hello\n")


def captioned(*outputs, cell_id: str = "abc123"):
    cell = nbformat.v4.new_code_cell("show()", outputs=list(outputs), execution_count=1)
    cell["id"] = cell_id
    cell.metadata["mystnb"] = json.loads(json.dumps(CAPTION))
    return cell


def test_a_cell_whose_only_rich_output_is_one_image_is_left_alone():
    cell = captioned(printed(), image())
    assert figure_outputs.split_captioned_cell(cell) == [cell]
    assert figure_outputs.split_captioned_cell(cell)[0] is cell


def test_a_cell_without_a_caption_is_left_alone_whatever_it_shows():
    cell = nbformat.v4.new_code_cell("show()", outputs=[table(), image(), image("display_data")])
    assert figure_outputs.split_captioned_cell(cell)[0] is cell


def test_table_then_image_gives_the_caption_to_the_image_only():
    first, second = figure_outputs.split_captioned_cell(captioned(printed(), table(), image()))
    assert [o["output_type"] for o in first["outputs"]] == ["stream", "display_data"]
    assert "figure" not in first["metadata"]["mystnb"] and "remove_code_source" not in first["metadata"]["mystnb"]
    assert second["outputs"] == [image()]
    assert second["metadata"]["mystnb"]["figure"] == CAPTION["figure"]
    assert second["metadata"]["mystnb"]["image"] == CAPTION["image"]
    assert second["metadata"]["mystnb"]["remove_code_source"] is True
    assert second["source"] == first["source"] == "show()"  # myst-nb skips a cell whose source is empty
    assert second["id"] == "abc123-out1" and first["id"] == "abc123"


def test_image_then_table_keeps_the_order_and_captions_the_image():
    first, second = figure_outputs.split_captioned_cell(captioned(image("display_data"), table()))
    assert first["metadata"]["mystnb"]["figure"] == CAPTION["figure"] and "remove_code_source" not in first[
        "metadata"]["mystnb"]
    assert second["outputs"] == [table()] and "figure" not in second["metadata"]["mystnb"]


def test_two_images_get_one_caption_under_the_last_and_both_keep_their_alt_text():
    pieces = figure_outputs.split_captioned_cell(captioned(image("display_data"), image()))
    assert len(pieces) == 2
    assert "figure" not in pieces[0]["metadata"]["mystnb"] and pieces[0]["metadata"]["mystnb"]["image"]
    assert pieces[1]["metadata"]["mystnb"]["figure"]["name"] == "fig-01-test"
    assert all(p["metadata"]["mystnb"]["image"]["alt"] == "A plot." for p in pieces)


def test_the_original_cell_is_not_modified():
    cell = captioned(table(), image())
    before = json.dumps(cell, sort_keys=True)
    figure_outputs.split_captioned_cell(cell)
    assert json.dumps(cell, sort_keys=True) == before


def test_a_long_id_stays_a_valid_cell_id():
    pieces = figure_outputs.split_captioned_cell(captioned(table(), image(), cell_id="x" * 64))
    assert len(pieces[1]["id"]) == 64 and pieces[1]["id"].endswith("-out1")


def notebook_with_mixed_cells():
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# Page"), captioned(table(), image(), cell_id="mixed"),
                captioned(image(), cell_id="single")]
    return nb


def test_split_notebook_is_valid_and_has_unique_ids():
    nb = notebook_with_mixed_cells()
    assert figure_outputs.split_captioned_cells(nb) is True
    assert [c["id"] for c in nb.cells] == [nb.cells[0]["id"], "mixed", "mixed-out1", "single"]
    nbformat.validate(nbformat.from_dict(nb))
    assert figure_outputs.split_captioned_cells(nb) is False  # already split: nothing more to do


def test_source_read_rewrites_notebooks_and_nothing_else():
    app = SimpleNamespace(env=SimpleNamespace(doc2path=lambda name: Path(f"/book/{name}.ipynb" if name.startswith(
        "chapters/") else f"/book/{name}.md")))
    text = nbformat.writes(notebook_with_mixed_cells())
    source = [text]
    figure_outputs.rewrite_notebook_source(app, "chapters/01_x", source)
    rewritten = nbformat.reads(source[0], as_version=4)
    assert len(rewritten.cells) == 4 and "figure" not in rewritten.cells[1].metadata["mystnb"]
    page = ["# Glossary\n\n{not json}"]
    figure_outputs.rewrite_notebook_source(app, "glossary", page)
    assert page == ["# Glossary\n\n{not json}"]
