"""Ship MathJax with the built book, so that its math renders with no network.

Sphinx loads MathJax from ``mathjax_path``; by default that is a CDN, which a reader offline (or this
project's CI) cannot reach. The MathJax 3 files come from the Python package ``django-static-mathjax``
(a project dependency, import name ``mathjax``), so none of them is committed here. After an HTML build
this extension copies them into ``<html>/_static/mathjax/``; ``mathjax_path`` in ``_config.yml`` names
a file in there, relative to ``_static`` as Sphinx reads it.

They are copied into the built site rather than listed in ``html_static_path`` on purpose: Jupyter
Book 1 adds a ``<script>`` tag to every page for each ``.js`` file in a static folder, and MathJax has
a hundred of them.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from sphinx.application import Sphinx
from sphinx.config import Config
from sphinx.errors import ConfigError, ExtensionError
from sphinx.util import logging

SITE_FOLDER = "mathjax"  # under the built site's _static/
logger = logging.getLogger(__name__)


def mathjax_files() -> Path:
    """The folder of MathJax 3's browser build (``es5/``) inside the installed package."""
    try:
        import mathjax  # the django-static-mathjax distribution
    except ImportError as error:
        raise ExtensionError("MathJax is not installed: the book needs the Python package django-static-mathjax "
                             "(a dependency of roots-course; `pip install -e .` installs it)") from error
    folder = Path(mathjax.__file__).parent / "static" / "mathjax" / "es5"
    if not (folder / "tex-mml-chtml.js").is_file():
        raise ExtensionError(f"the installed django-static-mathjax has no MathJax 3 browser build at {folder}")
    return folder


def check_mathjax_path(app: Sphinx, config: Config) -> None:
    """``mathjax_path`` must name one of the shipped files, not a URL."""
    path = str(config.mathjax_path)
    prefix = f"{SITE_FOLDER}/"
    if "://" in path or path.startswith("//") or not path.startswith(prefix):
        raise ConfigError(f"mathjax_path is {path!r}; with offline_mathjax it must be a file under {prefix} "
                          f"(relative to _static), for example {prefix}tex-mml-chtml.js")
    if not (mathjax_files() / path.removeprefix(prefix)).is_file():
        raise ConfigError(f"mathjax_path {path!r} names no file of the shipped MathJax ({mathjax_files()})")


def copy_mathjax(app: Sphinx, exception: Exception | None) -> None:
    if exception is not None or app.builder.format != "html":
        return
    target = Path(app.outdir) / "_static" / SITE_FOLDER
    shutil.copytree(mathjax_files(), target, dirs_exist_ok=True)
    logger.info("offline_mathjax: MathJax copied into %s", target)


def setup(app: Sphinx) -> dict[str, object]:
    app.connect("config-inited", check_mathjax_path)
    app.connect("build-finished", copy_mathjax)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
