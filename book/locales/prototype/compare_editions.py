"""Check that the Chinese edition shows the English run's code, outputs, figures and math unchanged.

    python compare_editions.py book/_build/html        # compares X.html with zh/X.html for every page

For every page of the English edition: each code cell's source block, each cell output (with figure
captions and image alt text taken out, which are translated prose), each image file's bytes, and each
math node's TeX must be identical in the Chinese edition, in the same order. Also checks the language
links both ways and that the Chinese page declares lang="zh-CN". Prints one line per page; exit 1 on a
difference.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

from bs4 import BeautifulSoup


def parts(page: Path) -> dict[str, list[str]]:
    soup = BeautifulSoup(page.read_text(encoding="utf-8"), "html.parser")
    article = soup.find("article") or soup
    code = [str(div) for div in article.select("div.cell_input")]
    outputs = []
    for div in article.select("div.cell_output"):
        div = BeautifulSoup(str(div), "html.parser")
        for caption in div.select("figcaption"):
            caption.decompose()
        for img in div.select("img"):
            img.attrs.pop("alt", None)
        outputs.append(str(div))
    images = []
    for img in article.select("img"):
        src = page.parent / img["src"]
        images.append(hashlib.sha256(src.read_bytes()).hexdigest() if src.is_file() else f"missing {img['src']}")
    math = [node.get_text() for node in article.select(".math")]
    html = soup.find("html")
    link = soup.select_one("a.roots-language-link")
    return {"code": code, "outputs": outputs, "images": images, "math": math,
            "lang": [html.get("lang", "") if html else ""], "link": [link["href"] if link else ""]}


def main(site: Path) -> int:
    failures = 0
    zh_root = site / "zh"
    for en_page in sorted(site.rglob("*.html")):
        rel = en_page.relative_to(site)
        if rel.parts[0] in ("zh", "_static", "_sources", "jupyter_execute") or rel.name in ("genindex.html", "search.html"):
            continue
        zh_page = zh_root / rel
        if not zh_page.is_file():
            print(f"MISSING  zh/{rel}")
            failures += 1
            continue
        en, zh = parts(en_page), parts(zh_page)
        problems = [key for key in ("code", "outputs", "images", "math") if en[key] != zh[key]]
        depth = "../" * (len(rel.parts) - 1)
        if rel.name != "index.html":
            if en["link"] != [f"{depth}zh/{rel.as_posix()}"]:
                problems.append(f"en link {en['link']}")
            if zh["link"] != [f"{depth}../{rel.as_posix()}"]:
                problems.append(f"zh link {zh['link']}")
            if zh["lang"] != ["zh-CN"]:
                problems.append(f"zh lang {zh['lang']}")
        counts = ", ".join(f"{len(en[k])} {k}" for k in ("code", "outputs", "images", "math"))
        print(f"{'OK  ' if not problems else 'DIFF'}  {rel}: {counts}" + (f"  -- differs: {problems}" if problems else ""))
        failures += bool(problems)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1] if len(sys.argv) > 1 else "book/_build/html")))
