"""The book's scholarly apparatus, checked without building it: citations against references.bib,
figure captions and alt text on every plotting cell, the glossary, and where both pages sit in the
table of contents.

Each rule is a small function that returns the problems it finds; the tests run it on the real files
and, once, on a deliberately broken input, so that a rule which stopped finding problems would fail.
"""

from __future__ import annotations

import ast
import json
import re
import unicodedata
from pathlib import Path

import nbformat
import pytest
import yaml
from pybtex.database import parse_file

from pipelines.cache import RECORD_SUFFIX, notebook_hash
from pipelines.publish import read_toc, toc_with_chapters

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
BIB = BOOK / "references.bib"
GLOSSARY = BOOK / "glossary.md"
MIN_GLOSSARY_ENTRIES = 100

CITE = re.compile(r"\{cite(?::[a-z]+)?\}`([^`]+)`")
FIGURE_NAME = re.compile(r"^fig-(\d{2})-[a-z0-9]+(?:-[a-z0-9]+)*$")
DOC_LINK = re.compile(r"\{doc\}`(?:[^`<]*<)?([^`<>]+)>?`")
CJK = re.compile(r"[\u3400-\u9fff]")


def markdown_texts() -> dict[str, str]:
    """Every piece of prose the book publishes: notebook markdown cells and the book's own pages."""
    texts = {}
    for path in NOTEBOOKS:
        for k, cell in enumerate(nbformat.read(path, as_version=4).cells):
            if cell.cell_type == "markdown":
                texts[f"{path.name} cell {k}"] = cell.source
    for path in sorted(BOOK.glob("*.md")):
        texts[path.name] = path.read_text(encoding="utf-8")
    return texts


def cited_keys(texts: dict[str, str]) -> dict[str, set[str]]:
    """key -> where it is cited; one role may cite several keys, comma-separated."""
    where: dict[str, set[str]] = {}
    for place, text in texts.items():
        for match in CITE.finditer(text):
            for key in match.group(1).split(","):
                where.setdefault(key.strip(), set()).add(place)
    return where


def bib_keys() -> set[str]:
    return set(parse_file(str(BIB)).entries)


def unknown_citations(texts: dict[str, str], known: set[str]) -> list[str]:
    return sorted(f"{key} (in {', '.join(sorted(places))})"
                  for key, places in cited_keys(texts).items() if key not in known)


# --- citations ------------------------------------------------------------------------------------

def test_every_cited_key_is_in_references_bib():
    problems = unknown_citations(markdown_texts(), bib_keys())
    assert not problems, f"cited but missing from {BIB.name}: {problems}"


def test_every_bib_entry_is_cited():
    cited = set(cited_keys(markdown_texts()))
    uncited = sorted(bib_keys() - cited)
    assert not uncited, f"entries of {BIB.name} that nothing cites (cite them or remove them): {uncited}"


def test_bib_entries_say_who_what_when_and_where():
    venue_fields = {"journal", "booktitle", "institution", "publisher", "howpublished"}
    problems = []
    for key, entry in parse_file(str(BIB)).entries.items():
        if not entry.persons.get("author"):
            problems.append(f"{key}: no author")
        if not entry.fields.get("title") or not re.fullmatch(r"(19|20)\d\d", entry.fields.get("year", "")):
            problems.append(f"{key}: no title or no four-digit year")
        if not venue_fields & {name.lower() for name in entry.fields}:
            problems.append(f"{key}: no venue ({', '.join(sorted(venue_fields))})")
    assert not problems, problems


def test_a_citation_missing_from_the_bib_is_reported():
    texts = {"fake cell": "As {cite:t}`nobody2099missing` and {cite:p}`vaswani2017attention,also2099gone` show."}
    problems = unknown_citations(texts, bib_keys())
    assert [p.split(" ")[0] for p in problems] == ["also2099gone", "nobody2099missing"]


# --- figures --------------------------------------------------------------------------------------

def _draws(node: ast.AST) -> bool:
    """A call of ``plots.plot_*`` or ``<name>_plots.plot_*`` (each returns a Figure that the cell shows) or of
    matplotlib's ``plt``."""
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and isinstance(node.func.value, ast.Name):
        owner, attr = node.func.value.id, node.func.attr
        return ((owner == "plots" or owner.endswith("_plots")) and attr.startswith("plot_")) or owner == "plt"
    return False


def figure_calls(source: str) -> int:
    """How many figures a code cell's source draws."""
    return sum(_draws(node) for node in ast.walk(ast.parse(source)))


def conditional_figure_calls(source: str) -> int:
    """How many of those are drawn only when an ``if`` in the cell says so (a run may skip them)."""
    inside = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.If):
            inside |= {id(n) for n in ast.walk(node) if _draws(n)}
    return len(inside)


def caption_problems(path_name: str, cells) -> list[str]:
    """Plotting cells without a caption, a name or alt text; captions on cells that draw nothing."""
    prefix = path_name[:2]
    problems = []
    for k, cell in enumerate(cells):
        if cell["cell_type"] != "code":
            continue
        options = cell.get("metadata", {}).get("mystnb", {})
        figure, image = options.get("figure") or {}, options.get("image") or {}
        where = f"{path_name} cell {k}"
        if figure_calls("".join(cell["source"])) == 0:
            if figure:
                problems.append(f"{where}: has a figure caption but draws no figure")
            continue
        if not str(figure.get("caption", "")).strip():
            problems.append(f"{where}: draws a figure without mystnb.figure.caption")
        name = str(figure.get("name", ""))
        match = FIGURE_NAME.match(name)
        if not match or match.group(1) != prefix:
            problems.append(f"{where}: figure name {name!r} is not fig-{prefix}-<slug>")
        if not str(image.get("alt", "")).strip():
            problems.append(f"{where}: draws a figure without mystnb.image.alt")
    return problems


def test_every_plotting_cell_has_caption_name_and_alt_text():
    problems, names = [], []
    for path in NOTEBOOKS:
        cells = nbformat.read(path, as_version=4).cells
        problems += caption_problems(path.name, cells)
        names += [c.metadata["mystnb"]["figure"]["name"] for c in cells
                  if c.cell_type == "code" and "figure" in c.metadata.get("mystnb", {})]
    assert not problems, problems
    assert names, "no captioned figures at all: the rule finds no plotting cells"
    assert len(names) == len(set(names)), f"figure names must be unique in the book: {sorted(names)}"


def test_a_plotting_cell_without_caption_is_reported():
    cells = [nbformat.v4.new_code_cell("display(table)\nplots.plot_zipf(curves, fits, title='x')"),
             nbformat.v4.new_code_cell("print(1)"),
             nbformat.v4.new_code_cell("x = 1")]
    cells[2].metadata["mystnb"] = {"figure": {"caption": "stray", "name": "fig-09-stray"}}
    problems = caption_problems("09_fake.ipynb", cells)
    assert any("cell 0" in p and "caption" in p for p in problems)
    assert any("cell 0" in p and "alt" in p for p in problems)
    assert any("cell 2" in p and "draws no figure" in p for p in problems)
    assert not any("cell 1" in p for p in problems)


def executed_copies() -> list[tuple[Path, Path]]:
    """(clean notebook, a finished run of its current code: in artifacts/<profile>/executed/, or the
    page published from such a run in book/chapters/).

    A run counts when its record (``<name>.run.json``) says it succeeded on this notebook's code hash;
    a notebook still being executed, or one left by a failed or older run, does not."""
    pairs = []
    for clean in NOTEBOOKS:
        code = [c.source for c in nbformat.read(clean, as_version=4).cells if c.cell_type == "code"]
        for executed in sorted((ROOT / "artifacts").glob(f"*/executed/{clean.name}")):
            record_path = executed.with_name(f"{clean.stem}{RECORD_SUFFIX}")
            record = json.loads(record_path.read_text(encoding="utf-8")) if record_path.is_file() else {}
            if record.get("status") != "ok" or record.get("notebook_sha256") != notebook_hash(clean):
                continue
            cells = nbformat.read(executed, as_version=4).cells
            ran = [c.source for c in cells if c.cell_type == "code"
                   and "injected-parameters" not in c.metadata.get("tags", [])]
            if ran == code:
                pairs.append((clean, executed))
        # the committed book is a run too, present on every clone (CI included)
        page = ROOT / "book" / "chapters" / clean.name
        if page.is_file():
            nb = nbformat.read(page, as_version=4)
            if nb.metadata.get("roots", {}).get("provenance", {}).get("notebook_sha256") == notebook_hash(clean):
                ran = [c.source for c in nb.cells if c.cell_type == "code"
                       and "injected-parameters" not in c.metadata.get("tags", [])]
                if ran == code:
                    pairs.append((clean, page))
    return pairs


def image_mismatches(clean_cells, executed_cells) -> dict[str, tuple[int, tuple[int, int]]]:
    """cell id -> (images the run showed, (fewest, most) the rule expects), for every cell that disagrees.

    A figure drawn under an ``if`` may be skipped by a run, so it counts only towards the most."""
    expected = {c["id"]: (figure_calls(c["source"]) - conditional_figure_calls(c["source"]), figure_calls(c["source"]))
                for c in clean_cells if c["cell_type"] == "code"}
    shown = {c["id"]: sum(1 for o in c.get("outputs", []) if "image/png" in o.get("data", {}))
             for c in executed_cells if c["cell_type"] == "code"}
    return {cell_id: (shown.get(cell_id, 0), bounds) for cell_id, bounds in expected.items()
            if not bounds[0] <= shown.get(cell_id, 0) <= bounds[1]}


def test_the_figure_rule_finds_exactly_the_cells_that_showed_images_in_a_run():
    pairs = executed_copies()
    if not pairs:
        pytest.skip("no executed chapter under artifacts/*/executed matches the current notebooks")
    images, expected = 0, 0
    for clean, executed in pairs:
        ran = nbformat.read(executed, as_version=4).cells
        written = nbformat.read(clean, as_version=4).cells
        wrong = image_mismatches(written, ran)
        assert not wrong, f"{executed}: cell id -> (images shown, (fewest, most) the rule expects): {wrong}"
        images += sum("image/png" in o.get("data", {}) for c in ran if c.cell_type == "code" for o in c.outputs)
        expected += sum(figure_calls(c.source) - conditional_figure_calls(c.source)
                        for c in written if c.cell_type == "code")
    if expected:
        assert images > 0, "the executed chapters show no image at all: is the check still reading their outputs?"


def test_an_image_from_a_cell_the_rule_misses_is_reported():
    png = nbformat.v4.new_output("display_data", data={"image/png": "iVBORw0KGgo="})
    clean = [nbformat.v4.new_code_cell("plots.plot_zipf(c, f, title='t')", id="a"),
             nbformat.v4.new_code_cell("show_somehow()", id="b"),
             nbformat.v4.new_code_cell("if ok:\n    display(plots.plot_lines(s, title='t'))", id="c")]
    ran = [nbformat.v4.new_code_cell(c.source, id=c.id) for c in clean]
    ran[1].outputs = [png]  # an image the rule does not see coming
    assert image_mismatches(clean, ran) == {"a": (0, (1, 1)), "b": (1, (0, 0))}  # c: skipped under its `if`
    ran[0].outputs, ran[1].outputs = [png], []
    assert image_mismatches(clean, ran) == {}


# --- glossary -------------------------------------------------------------------------------------

def glossary_entries(text: str) -> list[tuple[list[str], str]]:
    """(term lines, definition) of the ```{glossary} block: terms unindented, definitions indented."""
    block = re.search(r"^```\{glossary\}\n(.*?)^```", text, re.DOTALL | re.MULTILINE)
    assert block, "book/glossary.md has no ```{glossary} block"
    entries: list[tuple[list[str], str]] = []
    terms: list[str] = []
    for line in block.group(1).splitlines():
        if not line.strip() or line.startswith(":"):
            continue
        if line[0].isspace():
            assert terms or entries, f"a definition before any term: {line!r}"
            if terms:
                entries.append((terms, line.strip()))
                terms = []
            else:
                entries[-1] = (entries[-1][0], entries[-1][1] + " " + line.strip())
        else:
            terms.append(line.strip())
    assert not terms, f"terms without a definition at the end: {terms}"
    return entries


def glossary_problems(text: str, chapters: set[str]) -> list[str]:
    problems = []
    entries = glossary_entries(text)
    if len(entries) < MIN_GLOSSARY_ENTRIES:
        problems.append(f"only {len(entries)} entries (at least {MIN_GLOSSARY_ENTRIES} expected)")
    seen: set[str] = set()
    for terms, definition in entries:
        english = [t for t in terms if not CJK.search(t)]
        if not english or not any(CJK.search(t) for t in terms):
            problems.append(f"{terms}: needs an English term and a Chinese term")
        for term in terms:
            if term.lower() in seen:
                problems.append(f"{term!r} appears twice (Sphinx warns on duplicate terms)")
            seen.add(term.lower())
        links = DOC_LINK.findall(definition)
        if not links:
            problems.append(f"{terms[0]}: the definition links no chapter")
        for link in links:
            if not link.startswith("chapters/") or link.removeprefix("chapters/") not in chapters:
                problems.append(f"{terms[0]}: links {link!r}, not a chapter of notebooks/")
    firsts = [unicodedata.normalize("NFD", terms[0].lower()) for terms, _ in entries]
    if firsts != sorted(firsts):
        problems.append("entries are not sorted by their first (English) term")
    return problems


def test_glossary_entries_are_sorted_bilingual_and_link_their_chapters():
    chapters = {p.stem for p in NOTEBOOKS}
    problems = glossary_problems(GLOSSARY.read_text(encoding="utf-8"), chapters)
    assert not problems, problems


def test_a_broken_glossary_is_reported():
    broken = ("```{glossary}\n"
              "zeta\n泽塔\n  Last letter. Taught in {doc}`Chapter 1 <chapters/01_representation>`.\n\n"
              "alpha\n  No Chinese term, and a link to {doc}`chapters/99_missing`.\n\n"
              "Zeta\n再来\n  A duplicate with no chapter link.\n"
              "```\n")
    problems = glossary_problems(broken, {"01_representation"})
    for expected in ("only 3 entries", "alpha']: needs an English term and a Chinese term",
                     "'chapters/99_missing'", "'Zeta' appears twice", "Zeta: the definition links no chapter",
                     "not sorted"):
        assert any(expected in p for p in problems), (expected, problems)


# --- configuration and table of contents ------------------------------------------------------------

def test_book_config_loads_the_bibliography_and_the_pages_exist():
    config = yaml.safe_load((BOOK / "_config.yml").read_text(encoding="utf-8"))
    assert "references.bib" in config["bibtex_bibfiles"]
    references = (BOOK / "references.md").read_text(encoding="utf-8")
    assert references.startswith("# References\n") and "```{bibliography}" in references
    assert GLOSSARY.read_text(encoding="utf-8").startswith("# Glossary\n")


def test_glossary_and_references_stay_after_the_chapters_when_publish_rewrites_the_toc():
    pages = ["chapters/01_representation", "chapters/02_optimization"]
    first = toc_with_chapters(read_toc(BOOK), pages)
    assert [e["file"] for e in first["chapters"]] == pages + ["glossary", "references"]
    again = toc_with_chapters(json.loads(json.dumps(first)), ["chapters/03_output"])
    assert [e["file"] for e in again["chapters"]] == ["chapters/03_output", "glossary", "references"]
