"""The standard library as a corpus: the running Python's documentation (pydoc topics and the
docstrings of its modules) and its source files. Offline, with a known licence (PSF), and never
committed to the repository."""

from __future__ import annotations

import ast
import os
import sysconfig
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path

from datasets import DatasetDict, concatenate_datasets

from roots_course.core.corpus_split import (
    Row,
    cache_key,
    cached_corpus,
    check_fraction,
    rows_dataset_dict,
    split_rows,
    truncate_rows,
)

# Folders of the standard library that are not documentation of the library itself.
SKIP_DIRS = frozenset({"test", "tests", "idlelib", "site-packages", "dist-packages", "__pycache__"})


def _stdlib_files() -> list[tuple[str, Path]]:
    """(dotted module name, path) of the standard library's .py files, sorted by module name.

    Skips tests, IDLE, third-party packages, and folders that are not importable packages.
    """
    root = Path(sysconfig.get_paths()["stdlib"])
    found: list[tuple[str, Path]] = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d not in SKIP_DIRS and d.isidentifier()]
        rel = Path(folder).relative_to(root).parts
        for fname in files:
            if not fname.endswith(".py") or not fname[:-3].isidentifier():
                continue
            parts = list(rel) + ([] if fname == "__init__.py" else [fname[:-3]])
            if parts:
                found.append((".".join(parts), Path(folder) / fname))
    return sorted(found)


_DOC_NODES = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
_HOLDS_STATEMENTS = (ast.stmt, ast.excepthandler, ast.match_case)


def _docstrings(node: ast.AST) -> Iterator[str]:
    """Docstrings of a module, its classes and functions (nested too), in source order."""
    if isinstance(node, _DOC_NODES):
        doc = ast.get_docstring(node, clean=True)
        if doc and doc.strip():
            yield doc.strip()
    for child in ast.iter_child_nodes(node):
        if isinstance(child, _HOLDS_STATEMENTS):  # definitions live only inside statements
            yield from _docstrings(child)


@lru_cache(maxsize=1)
def _python_docs_rows() -> tuple[Row, ...]:
    """pydoc topics (one row each) + unique stdlib docstrings (one row per module).

    A docstring seen in an earlier module (in module-name order) is not repeated.
    Cached for the life of the process: the standard library does not change under us.
    """
    from pydoc_data.topics import topics  # a large module: read only when this corpus is built

    rows: list[Row] = [(f"pydoc:{name}", text.strip()) for name, text in sorted(topics.items())
                       if text.strip()]
    seen: set[str] = set()
    for module, path in _stdlib_files():
        try:
            tree = ast.parse(path.read_bytes(), filename=str(path))
        except (SyntaxError, ValueError, UnicodeDecodeError):
            continue  # not parseable by this Python: skip the file
        docs = []
        for doc in _docstrings(tree):
            if doc not in seen:
                seen.add(doc)
                docs.append(doc)
        if docs:
            rows.append((module, "\n\n".join(docs)))
    return tuple(rows)


@lru_cache(maxsize=1)
def _stdlib_source_rows() -> tuple[Row, ...]:
    """One row per standard-library .py file (source text); undecodable files are skipped."""
    rows: list[Row] = []
    for module, path in _stdlib_files():
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        if text.strip():
            rows.append((module, text))
    return tuple(rows)


def python_docs_corpus(max_chars: int | None = None, val_fraction: float = 0.1, seed: int = 0,
                       cache_dir: Path | str | None = None) -> DatasetDict:
    """The default corpus: the running Python's documentation (about 2.1 M characters on 3.11).

    Rows: one per pydoc topic (source "pydoc:<topic>") and one per standard-library module with
    its unique docstrings (source: the dotted module name).  Split by document (module or topic)
    with the split rule of `roots_course.core.corpus_split`.  With `cache_dir`, the result is saved
    there and reloaded next time (keyed by Python version, max_chars, val_fraction and seed);
    extraction takes seconds.
    """
    check_fraction(val_fraction)

    def build() -> DatasetDict:
        rows = truncate_rows(_python_docs_rows(), max_chars, seed)
        return rows_dataset_dict(*split_rows(rows, val_fraction, seed, "the python_docs corpus"))

    return cached_corpus(cache_dir, cache_key("python_docs", max_chars, val_fraction, seed), build)


def stdlib_source_corpus(max_chars: int | None = None, val_fraction: float = 0.1, seed: int = 0,
                         cache_dir: Path | str | None = None) -> DatasetDict:
    """The standard library's .py source files, one row per module; same split rule as above."""
    check_fraction(val_fraction)

    def build() -> DatasetDict:
        rows = truncate_rows(_stdlib_source_rows(), max_chars, seed)
        return rows_dataset_dict(*split_rows(rows, val_fraction, seed, "the stdlib_source corpus"))

    return cached_corpus(cache_dir, cache_key("stdlib_source", max_chars, val_fraction, seed), build)


def python_docs_and_source_corpus(max_chars: int | None = None, val_fraction: float = 0.1, seed: int = 0,
                                  cache_dir: Path | str | None = None) -> DatasetDict:
    """Documentation and source together (the ``gpu`` profile's larger corpus): prose and code.

    ``max_chars`` applies to each of the two parts; each keeps its own split by module, so no
    module's text is in both splits of one part.
    """
    parts = [fn(max_chars=max_chars, val_fraction=val_fraction, seed=seed, cache_dir=cache_dir)
             for fn in (python_docs_corpus, stdlib_source_corpus)]
    return DatasetDict({split: concatenate_datasets([part[split] for part in parts])
                        for split in ("train", "validation")})
