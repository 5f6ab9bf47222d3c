"""Give a captioned notebook cell's caption to its figure alone, not to every output it shows.

A chapter's code cell carries its figure's caption in the cell metadata
``mystnb: {figure: {caption, name}, image: {alt}}``. myst-nb 1.4 wraps *every* rich output of such a
cell (each ``display_data`` and ``execute_result``) in a figure with that caption and name. So a cell
that displays a table and then a plot would show the table as a captioned figure too, and a second
output repeats the first one's name, which Sphinx reports as "Duplicate explicit target name".

This extension rewrites those cells on the page as the book is read (Sphinx's ``source-read`` event
hands over the notebook's JSON text before myst-nb parses it; the file on disk is untouched). The
cell's outputs are cut at each image into consecutive cells that show the code only in the first: the
images keep the alt text, non-image outputs render as they would with no caption, and the figure's
caption and name go to the cell's *last* image. A cell that draws several images therefore gets one
caption under the last of them, written to describe them all (for example "above: ...; below: ...").
A cell whose only rich output is one image is left exactly as it is.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from sphinx.application import Sphinx

RICH_OUTPUTS = ("display_data", "execute_result")
ID_LIMIT = 64  # nbformat 4.5: a cell id is 1 to 64 characters


def is_image(output: dict[str, Any]) -> bool:
    return (output.get("output_type") in RICH_OUTPUTS
            and any(mime.startswith("image/") for mime in output.get("data", {})))


def _segments(outputs: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """The outputs in order, cut so that every image stands alone in its segment."""
    segments: list[list[dict[str, Any]]] = []
    pending: list[dict[str, Any]] = []
    for output in outputs:
        if is_image(output):
            if pending:
                segments.append(pending)
                pending = []
            segments.append([output])
        else:
            pending.append(output)
    if pending:
        segments.append(pending)
    return segments


def split_captioned_cell(cell: dict[str, Any]) -> list[dict[str, Any]]:
    """The cells that show ``cell`` with its figure caption on its last image only (see the module)."""
    options = cell.get("metadata", {}).get("mystnb") or {}
    if cell.get("cell_type") != "code" or "figure" not in options:
        return [cell]
    outputs = cell.get("outputs", [])
    rich = [o for o in outputs if o.get("output_type") in RICH_OUTPUTS]
    if len(rich) == 1 and is_image(rich[0]):
        return [cell]
    segments = _segments(outputs) or [[]]
    last_image = max((k for k, seg in enumerate(segments) if len(seg) == 1 and is_image(seg[0])), default=None)
    pieces = []
    for k, segment in enumerate(segments):
        piece = copy.deepcopy({key: value for key, value in cell.items() if key != "outputs"})
        piece["outputs"] = copy.deepcopy(segment)
        piece_options = piece["metadata"]["mystnb"]
        if k != last_image:
            piece_options.pop("figure", None)
        if k > 0:  # a continuation of the same cell: its outputs, not its code again
            piece_options["remove_code_source"] = True  # (the source stays: myst-nb skips empty cells)
            if "id" in cell:
                suffix = f"-out{k}"
                piece["id"] = str(cell["id"])[: ID_LIMIT - len(suffix)] + suffix
        pieces.append(piece)
    return pieces


def split_captioned_cells(notebook: dict[str, Any]) -> bool:
    """Apply ``split_captioned_cell`` to every cell of ``notebook`` in place; True if anything changed."""
    cells: list[dict[str, Any]] = []
    changed = False
    for cell in notebook.get("cells", []):
        pieces = split_captioned_cell(cell)
        changed = changed or len(pieces) != 1 or pieces[0] is not cell
        cells.extend(pieces)
    if changed:
        notebook["cells"] = cells
    return changed


def rewrite_notebook_source(app: Sphinx, docname: str, source: list[str]) -> None:
    if not str(app.env.doc2path(docname)).endswith(".ipynb"):
        return
    notebook = json.loads(source[0])
    if split_captioned_cells(notebook):
        source[0] = json.dumps(notebook, ensure_ascii=False)


def setup(app: Sphinx) -> dict[str, object]:
    app.connect("source-read", rewrite_notebook_source)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
