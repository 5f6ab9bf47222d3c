"""Stale-translation check and catalogue update for the Chinese edition, with babel only (a Sphinx dependency).

    python check_translations.py update BOOK   # .pot (BOOK/_build/gettext) -> BOOK/locales/zh_CN/**/*.po
    python check_translations.py check  BOOK   # exit 1, listing every message that is new, changed or empty

``update`` does what ``sphinx-intl update`` does (babel's ``Catalog.update``): a message whose English
changed a little becomes *fuzzy*, keeping the old translation and the previous English (``#| msgid``)
for the translator; a message that went away becomes obsolete (``#~``). ``check`` compares the current
``.pot`` (the English as it is now) with the ``.po`` files and reports, per page, each message that has
no usable translation: missing from the ``.po`` (the English changed and nobody ran ``update``), fuzzy
(it changed and the translation was not revised) or empty. A notebook message is located by the
notebook cell's id (myst-nb numbers a notebook's lines (cell index + 1) * 10000 + line, counted in the
notebook as the book reads it, after _ext/figure_outputs.py split its captioned cells).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from babel.messages.pofile import read_po, write_po

LANGUAGE = "zh_CN"


def catalogues(book: Path) -> list[tuple[str, Path, Path]]:
    pot_root = book / "_build" / "gettext"
    po_root = book / "locales" / LANGUAGE / "LC_MESSAGES"
    return [(str(pot.relative_to(pot_root).with_suffix("")), pot,
             po_root / pot.relative_to(pot_root).with_suffix(".po")) for pot in sorted(pot_root.rglob("*.pot"))]


def update(book: Path) -> None:
    for domain, pot_path, po_path in catalogues(book):
        with pot_path.open("rb") as f:
            template = read_po(f)
        if po_path.is_file():
            with po_path.open("rb") as f:
                catalog = read_po(f, locale=LANGUAGE)
        else:
            catalog = read_po(pot_path.open("rb"), locale=LANGUAGE)
        before = {m.id for m in catalog if m.id}
        catalog.update(template, no_fuzzy_matching=False)
        fuzzy = sum(1 for m in catalog if m.id and m.fuzzy)
        po_path.parent.mkdir(parents=True, exist_ok=True)
        with po_path.open("wb") as f:
            write_po(f, catalog, width=0, include_previous=True)  # width=0: one line per msgid, diff-friendly
        added = len({m.id for m in catalog if m.id} - before)
        print(f"update {domain}: {len(catalog)} messages, {added} new, {fuzzy} fuzzy, {len(catalog.obsolete)} obsolete")


def cell_ids(book: Path, source: str) -> list[str] | None:
    path = (book / "_build" / "gettext" / source).resolve() if not Path(source).is_absolute() else Path(source)
    candidates = [path, book / source.lstrip("./")]
    for candidate in candidates:
        if candidate.suffix == ".ipynb" and candidate.is_file():
            sys.path.insert(0, str(book / "_ext"))
            from figure_outputs import split_captioned_cells  # the book reads the notebook split like this
            notebook = json.loads(candidate.read_text(encoding="utf-8"))
            split_captioned_cells(notebook)
            return [str(c.get("id", "")) for c in notebook.get("cells", [])]
    return None


def locate(book: Path, locations: list[tuple[str, int | None]]) -> str:
    out = []
    for source, line in locations[:2]:
        name = Path(source).name
        ids = cell_ids(book, source) if name.endswith(".ipynb") else None
        if ids and line and line >= 10000 and 0 <= line // 10000 - 1 < len(ids):
            out.append(f"{name} cell {ids[line // 10000 - 1]}")
        else:
            out.append(f"{name}:{line}" if line else name)
    return ", ".join(out)


def check(book: Path) -> int:
    problems = 0
    for domain, pot_path, po_path in catalogues(book):
        with pot_path.open("rb") as f:
            template = read_po(f)
        translated: dict[str, object] = {}
        if po_path.is_file():
            with po_path.open("rb") as f:
                for message in read_po(f, locale=LANGUAGE):
                    if message.id:
                        translated[message.id] = message
        for message in template:
            if not message.id:
                continue
            entry = translated.get(message.id)
            if entry is None:
                why = "new or changed English, no entry (run update)"
            elif entry.fuzzy:
                why = "English changed, translation not revised (fuzzy)"
            elif not entry.string:
                why = "not translated"
            else:
                continue
            problems += 1
            text = " ".join(str(message.id).split())
            text = text if len(text) <= 90 else text[:87] + "..."
            print(f"{domain}: {why} [{locate(book, message.locations)}]: {text}")
    print(f"{problems} message(s) without a current translation")
    return 1 if problems else 0


if __name__ == "__main__":
    command, book = sys.argv[1], Path(sys.argv[2] if len(sys.argv) > 2 else "book").resolve()
    sys.exit(update(book) or 0 if command == "update" else check(book))
