"""Give the site a complete ``index.html`` when the book's root page has another name.

sphinx-external-toc writes a bare ``<meta http-equiv="Refresh">`` line as ``index.html`` when none
exists. A browser that opens it finds no icon link, asks for ``/favicon.ico`` and logs a 404 in the
console of everyone who opens the site's address. This writes a real page instead (title, the book's
icon, the same instant redirect, and a link for browsers that do not follow it); since the file then
exists, sphinx-external-toc leaves it alone.
"""

from __future__ import annotations

import html
from pathlib import Path

from sphinx.application import Sphinx

PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title}</title>
{icon}<meta http-equiv="Refresh" content="0; url={target}">
</head>
<body><p><a href="{target}">{title}</a></p></body>
</html>
"""


def write_home_page(app: Sphinx, exception: Exception | None) -> None:
    if exception is not None or app.builder.name != "html" or app.config.root_doc == "index":
        return
    target = f"{app.config.root_doc}.html"
    favicon = str(app.config.html_favicon or "")
    if favicon and "://" not in favicon:
        favicon = f"_static/{Path(favicon).name}"  # where Sphinx copies html_favicon
    icon = f'<link rel="icon" href="{html.escape(favicon)}">\n' if favicon else ""
    page = PAGE.format(title=html.escape(app.config.html_title or app.config.project), icon=icon,
                       target=html.escape(target))
    (Path(app.outdir) / "index.html").write_text(page, encoding="utf-8")


def setup(app: Sphinx) -> dict[str, object]:
    # before sphinx-external-toc's own handler (default priority 500), which skips an existing file
    app.connect("build-finished", write_home_page, priority=400)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
