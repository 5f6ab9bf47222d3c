"""Prototype: the ROOTS book in two languages from one set of sources (issue #18).

What this extension does, in every build:

1. *Outputs are never translatable.* A cell's outputs (the generated datasheet and model cards are
   ``text/markdown`` outputs that myst-nb renders as paragraphs and headings) and whole pages listed in
   ``roots_i18n_untranslatable_docs`` (pages the pipeline writes, such as "How this book was made") are
   marked ``translatable = False`` before Sphinx's ``Locale`` transform (priority 20) and before the
   gettext builder assigns message ids, so they never reach a ``.pot`` file and are never replaced.
   Image alt text stays translatable (Sphinx reads an image's ``alt`` whatever ``translatable`` says).
2. *gettext sees the figures.* myst-nb's ``gettext`` mime priority keeps only text outputs, which would
   drop every figure (and with it the alt text that ``mystnb.image.alt`` puts on the image); image/png is
   added to it so that alt text is extracted.

In a build whose ``language`` is not English:

3. *Pages the pipeline writes are written in that language by the pipeline*: when a page ``X.md`` has a
   sibling ``X.<language>.md`` (excluded from the book by ``exclude_patterns``), its text replaces the
   English one; a notebook's provenance cell (id ``roots-provenance``) is re-rendered in the language
   from the same record (``metadata.roots.provenance``).
4. *No silent fallback to English* (``roots_i18n_strict``): every translatable message of a page that has
   no translation in the compiled catalogue (missing, empty or fuzzy in the ``.po``) is a warning
   ``[i18n.untranslated]`` naming the page, the notebook cell, the section and the paragraph; with
   ``-W`` the build fails.

In every HTML build:

5. *A link to the same page in the other language* (``roots_language_link``: label, language code and the
   path from this edition's root to the other's root), shown in the article header beside the theme's
   buttons, and a ``<link rel="alternate" hreflang>`` in the head.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.locale import init as init_locale
from sphinx.transforms import SphinxTransform
from sphinx.util import logging
from sphinx.util.i18n import docname_to_domain
from sphinx.util.nodes import extract_messages

logger = logging.getLogger(__name__)
TEMPLATES = Path(__file__).with_name("i18n_templates")
STATIC = Path(__file__).with_name("i18n_static")
PROVENANCE_ID = "roots-provenance"


def is_english(language: str | None) -> bool:
    return not language or language.split("_")[0].split("-")[0] == "en"


# --- 1. outputs and generated pages are not translatable -----------------------------------------

class MarkUntranslatable(SphinxTransform):
    default_priority = 15  # before sphinx.transforms.i18n.Locale (20) and the gettext UID transform

    def apply(self, **kwargs: Any) -> None:
        whole_page = self.env.docname in set(self.config.roots_i18n_untranslatable_docs)
        roots: list[nodes.Element] = [self.document] if whole_page else [
            node for node in self.document.findall(nodes.Element)
            if (isinstance(node, nodes.container) and node.get("nb_element") == "cell_code_output")
            or (isinstance(node, nodes.Admonition) and PROVENANCE_ID in node.get("classes", []))]
        for root in roots:
            for node in root.findall(nodes.TextElement):
                # a figure's caption comes from the cell's metadata (prose), not from its outputs
                if whole_page or not isinstance(node, nodes.caption):
                    node["translatable"] = False


# --- 3. generated text in the build's language ------------------------------------------------------

def provenance_markdown_zh(prov: dict[str, Any]) -> str:
    """The provenance box in Chinese, from the same record as the English one (pipelines.publish)."""
    commit = prov.get("commit") or "未知（不是 git 检出）"
    dirty = {True: "有", False: "无", None: "未知"}[prov.get("dirty")]
    packages = ", ".join(f"{k} {v}" for k, v in (prov.get("packages") or {}).items() if v)
    wall = f"{prov['wall_s']:.1f} 秒" if isinstance(prov.get("wall_s"), (int, float)) else "未知"
    rows = [
        ("配置档（profile）", f"`{prov.get('profile')}`"),
        ("设备", f"`{prov.get('device')}`"),
        ("随机种子", f"{prov.get('seed')}"),
        ("提交", f"`{commit}`"),
        ("未提交的改动", dirty),
        ("运行时间", wall),
        ("执行时间", f"{prov.get('executed_at')}"),
        ("笔记本源文件 sha256", f"`{prov.get('notebook_sha256')}`"),
        ("Python", f"{prov.get('python')}"),
        ("软件包", packages.replace("|", "\\|")),
    ]
    table = "\n".join(["| 项目 | 值 |", "| --- | --- |"] + [f"| {k} | {v} |" for k, v in rows])
    day = str(prov.get("executed_at") or "")[:10] or "日期未知"
    minutes = f"{prov['wall_s'] / 60:.1f} 分钟" if isinstance(prov.get("wall_s"), (int, float)) else "时长未知"
    summary = (f"本页的生成方式：配置档 {prov.get('profile')}，{prov.get('device')}，"
               f"提交 {str(commit)[:7]}，{day}，{minutes}")
    return (f"```{{admonition}} {summary}\n:class: note dropdown\n\n"
            "本章由 ROOTS 流水线（`python -m pipelines`）执行；本页的每一个数字都来自那次运行。\n\n"
            + table + "\n```\n")


PROVENANCE_RENDERERS = {"zh_CN": provenance_markdown_zh}


def localise_source(app: Sphinx, docname: str, source: list[str]) -> None:
    """Mark the provenance box (every build); put generated text in the build's language (zh build)."""
    language = app.config.language
    translate = not is_english(language) and app.builder.name != "gettext"
    path = Path(app.env.doc2path(docname))
    if path.suffix == ".md":
        twin = path.with_name(f"{path.stem}.{language}.md")
        if translate and twin.is_file():
            source[0] = twin.read_text(encoding="utf-8")
            app.env.note_dependency(str(twin))
        return
    if path.suffix != ".ipynb":
        return
    notebook = json.loads(source[0])
    prov = notebook.get("metadata", {}).get("roots", {}).get("provenance")
    render = PROVENANCE_RENDERERS.get(language) if translate else None
    changed = False
    for cell in notebook.get("cells", []):
        if cell.get("id") != PROVENANCE_ID:
            continue
        text = render(prov) if (render and prov) else "".join(cell.get("source", ""))
        # the project's publish.provenance_markdown would write this class itself
        cell["source"] = text.replace(":class: note dropdown", f":class: note dropdown {PROVENANCE_ID}", 1)
        changed = True
    if changed:
        source[0] = json.dumps(notebook, ensure_ascii=False)


def remember_cell_ids(app: Sphinx, docname: str, source: list[str]) -> None:
    """The cell ids of a notebook page as myst-nb will number them (after every other source-read hook)."""
    if not str(app.env.doc2path(docname)).endswith(".ipynb"):
        return
    cells = json.loads(source[0]).get("cells", [])
    if not hasattr(app.env, "roots_cell_ids"):
        app.env.roots_cell_ids = {}
    app.env.roots_cell_ids[docname] = [str(c.get("id", "")) for c in cells]


def where(env: Any, docname: str, node: nodes.Node) -> str:
    """'cell <id>, section "<title>"' for a message's node, as far as known."""
    parts = []
    line = getattr(node, "line", None) or 0
    ids = getattr(env, "roots_cell_ids", {}).get(docname)
    if ids and line >= 10000:  # myst-nb numbers a notebook's lines (cell index + 1) * 10000 + line
        index = line // 10000 - 1
        if 0 <= index < len(ids):
            parts.append(f"cell {ids[index]}")
    section = node.parent if not isinstance(node, nodes.section) else node
    while section is not None and not isinstance(section, nodes.section):
        section = section.parent
    if section is not None and section.children and isinstance(section[0], nodes.title):
        parts.append(f'section "{section[0].astext()}"')
    return ", ".join(parts)


def in_docinfo(node: nodes.Node) -> bool:
    """A notebook's metadata as myst-nb shows it to the transforms (dropped before any page is written)."""
    while node is not None:
        if isinstance(node, nodes.docinfo) or (isinstance(node, nodes.field_list)
                                               and isinstance(node.parent, nodes.document)):
            return True
        node = node.parent
    return False


# --- 4. no silent fallback ------------------------------------------------------------------------

def strict_here(transform: SphinxTransform) -> bool:
    config = transform.config
    strict = config.roots_i18n_strict  # True: every page; a list: those pages only
    return bool(strict) and not is_english(config.language) and transform.app.builder.name != "gettext" and (
        not isinstance(strict, (list, tuple)) or transform.env.docname in strict)


def page_catalogue(transform: SphinxTransform) -> dict[str, str]:
    """The page's compiled messages, merged as sphinx.transforms.i18n.Locale merges them."""
    config = transform.config
    domain = docname_to_domain(transform.env.docname, config.gettext_compact)
    dirs = [str(Path(transform.env.srcdir, d)) for d in config.locale_dirs]
    catalog, has_catalog = init_locale(dirs, config.language, domain)
    merged: dict[str, str] = {}
    if has_catalog:
        catalogues = [getattr(catalog, "_catalog", None)]
        while (catalog := catalog._fallback) is not None:
            catalogues.append(getattr(catalog, "_catalog", None))
        for catalogue in filter(None, reversed(catalogues)):
            merged |= catalogue
    return merged


def short(msg: str) -> str:
    text = " ".join(msg.split())
    return text if len(text) <= 100 else text[:97] + "..."


class RequireTranslation(SphinxTransform):
    default_priority = 19  # just before Locale (20), with the same messages Locale will look up

    def apply(self, **kwargs: Any) -> None:
        if not strict_here(self):
            return
        config = self.config
        domain = docname_to_domain(self.env.docname, config.gettext_compact)
        merged = page_catalogue(self)
        missing = 0
        for node, msg in extract_messages(self.document):
            if not msg.strip() or merged.get(msg, "").strip() or in_docinfo(node):
                continue
            missing += 1
            if missing > config.roots_i18n_report_limit:
                continue
            logger.warning("untranslated (%s): %s", where(self.env, self.env.docname, node) or "page", short(msg),
                           location=node, type="i18n", subtype="untranslated")
        if missing > config.roots_i18n_report_limit:
            logger.warning("%d untranslated messages in all on this page (domain %r), %d shown",
                           missing, domain, config.roots_i18n_report_limit,
                           location=self.env.docname, type="i18n", subtype="untranslated")


class RequireAppliedTranslation(SphinxTransform):
    """Locale skips a translation it cannot parse back into the node's kind (a title translated as
    "3. 输出" parses as a Markdown list item) and leaves the English text, silently: report those."""

    default_priority = 21  # just after Locale (20)

    def apply(self, **kwargs: Any) -> None:
        if not strict_here(self):
            return
        merged = page_catalogue(self)
        for node, msg in extract_messages(self.document):
            msgstr = merged.get(msg, "").strip()
            if (not msgstr or msgstr == msg or node.get("translated") or in_docinfo(node)
                    or isinstance(node, nodes.image)):
                continue
            logger.warning("translation not applied (%s; does it parse as one paragraph or title? escape "
                           "a leading '3.' as '3\\.'): %s", where(self.env, self.env.docname, node) or "page",
                           short(msg), location=node, type="i18n", subtype="unapplied")


# --- 2. gettext keeps the images --------------------------------------------------------------------

def keep_images_for_gettext(app: Sphinx, config: Any) -> None:
    overrides = list(config.nb_mime_priority_overrides or [])
    overrides.append(("gettext", "image/png", 25))  # after text/markdown (20), before text/plain (30)
    config.nb_mime_priority_overrides = overrides


# --- 5. the language link ------------------------------------------------------------------------

def add_language_link_template(app: Sphinx, config: Any) -> None:
    if not config.roots_language_link:
        return
    config.templates_path = [*config.templates_path, str(TEMPLATES)]
    config.html_static_path = [*config.html_static_path, str(STATIC)]  # a .css only: no <script> added
    app.add_css_file("roots-i18n.css")
    options = dict(config.html_theme_options or {})
    end = list(options.get("article_header_end") or ["article-header-buttons.html"])
    if isinstance(end, str):
        end = [x.strip() for x in end.split(",")]
    if "roots-language-link.html" not in end:
        end.insert(0, "roots-language-link.html")
    options["article_header_end"] = end
    config.html_theme_options = options


def language_link_context(app: Sphinx, pagename: str, templatename: str, context: dict[str, Any],
                          doctree: Any) -> None:
    link = app.config.roots_language_link
    if not link:
        return
    up = "../" * pagename.count("/")
    href = f"{up}{link['root']}{pagename}.html"
    context["roots_language_link"] = {"href": href, "label": link["label"], "lang": link["lang"],
                                      "title": link.get("title", link["label"])}
    context["metatags"] = context.get("metatags", "") + (
        f'\n<link rel="alternate" hreflang="{link["lang"]}" href="{href}">')


def setup(app: Sphinx) -> dict[str, object]:
    app.add_config_value("roots_i18n_strict", False, "env", [bool, list])
    app.add_config_value("roots_i18n_report_limit", 20, "env")
    app.add_config_value("roots_i18n_untranslatable_docs", [], "env")
    app.add_config_value("roots_language_link", None, "html")
    app.connect("config-inited", keep_images_for_gettext)
    app.connect("config-inited", add_language_link_template)
    app.connect("source-read", localise_source, priority=550)   # after figure_outputs (500)
    app.connect("source-read", remember_cell_ids, priority=900)
    app.connect("html-page-context", language_link_context)
    app.add_transform(MarkUntranslatable)
    app.add_transform(RequireTranslation)
    app.add_transform(RequireAppliedTranslation)
    return {"version": "0.1", "parallel_read_safe": True, "parallel_write_safe": True}
