"""Prototype of the publish step's build for issue #18: catalogues, then both editions side by side.

    python build_editions.py pot   BOOK          # English sources -> BOOK/_build/gettext/**/*.pot
    python build_editions.py en    BOOK          # BOOK/_build/html/        (the English edition)
    python build_editions.py zh    BOOK          # BOOK/_build/html/zh/     (the Chinese edition)
    python build_editions.py all   BOOK          # en, then zh

Each edition is one call of Jupyter Book 1's own ``build_sphinx`` (what ``jupyter-book build`` calls),
with ``-W -n --keep-going`` and its own doctree folder, so the two environments (and the gettext one,
which Sphinx refuses to share: "This environment is incompatible with the selected builder") never mix.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from jupyter_book.sphinx import build_sphinx

ZH = {
    "language": "zh_CN",
    "html_title": "ROOTS：动手学大语言模型",
    "html_theme_options": {"search_bar_text": "搜索本书……"},
    # Sphinx's zh search segments text with jieba (when installed; without it no Chinese word is
    # indexed at all); the glossary's Chinese terms as a user dictionary keep them whole
    "html_search_options": {"dict": str(Path(__file__).parent / "book" / "_ext" / "zh_search_terms.txt")},
    "togglebutton_hint": "点击显示", "togglebutton_hint_hide": "点击隐藏",
    # every page must be translated; ROOTS_I18N_STRICT=intro,glossary limits it (a prototype knob)
    "roots_i18n_strict": (True if os.environ.get("ROOTS_I18N_STRICT", "all") == "all"
                          else os.environ["ROOTS_I18N_STRICT"].split(",")),
    "roots_language_link": {"label": "English", "lang": "en", "root": "../", "title": "This page in English"},
}


def build(book: Path, builder: str, outdir: Path, doctrees: Path, overrides: dict) -> int:
    result = build_sphinx(
        str(book), str(outdir),
        noconfig=True, path_config=str(book / "_config.yml"),
        confoverrides={"external_toc_path": str(book / "_toc.yml"), "nitpicky": True,
                       "latex_individualpages": False, **overrides},
        doctreedir=str(doctrees), builder=builder,
        warningiserror=True, keep_going=True,
        freshenv=True,  # warnings are only raised when a page is read: an incremental re-run would pass silently
    )
    if isinstance(result, Exception):
        raise result
    return int(result)


def main(what: str, book: Path) -> int:
    book = book.resolve()
    b = book / "_build"
    rc = 0
    if what == "pot":
        rc |= build(book, "gettext", b / "gettext", b / ".doctrees-gettext", {})
    if what in ("en", "all"):
        rc |= build(book, "html", b / "html", b / ".doctrees", {})
    if what in ("zh", "all"):
        # built beside the English site, then moved into it: myst-nb writes its jupyter_execute/ folder
        # next to the output folder, which for html/zh would land inside the English site
        rc |= build(book, "html", b / "html-zh", b / ".doctrees-zh", ZH)
        shutil.rmtree(b / "html" / "zh", ignore_errors=True)
        if (b / "html").is_dir():
            shutil.move(str(b / "html-zh"), str(b / "html" / "zh"))
    return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], Path(sys.argv[2] if len(sys.argv) > 2 else "book")))
