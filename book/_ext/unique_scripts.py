"""Write each ``<script>`` once per page.

sphinx-thebe (which Jupyter Book always loads) registers an inline script, ``const THEBE_JS_URL = ...``,
after the HTML builder has started. Sphinx 7.4 then lists it twice: once as given (file name ``None``)
and once normalised (file name ``""``), which do not compare equal. A page that declares the same
``const`` twice stops with "SyntaxError: Identifier 'THEBE_JS_URL' has already been declared" in the
reader's console. This drops such repeats just before each page is written.
"""

from __future__ import annotations

from typing import Any

from sphinx.application import Sphinx


def script_key(script: Any) -> tuple:
    attributes = getattr(script, "attributes", {}) or {}
    return (getattr(script, "filename", script) or "", tuple(sorted(attributes.items())))


def drop_repeated_scripts(app: Sphinx, pagename: str, templatename: str, context: dict[str, Any],
                          doctree: Any) -> None:
    scripts = context.get("script_files")
    if not scripts:
        return
    seen: set[tuple] = set()
    unique = []
    for script in scripts:
        key = script_key(script)
        if key not in seen:
            seen.add(key)
            unique.append(script)
    scripts[:] = unique  # in place: the builder restores its own list after each page


def setup(app: Sphinx) -> dict[str, object]:
    # late, after every extension (MathJax, thebe, the theme) has added its scripts for the page
    app.connect("html-page-context", drop_repeated_scripts, priority=900)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
