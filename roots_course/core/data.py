"""Corpora for the course: where the text comes from, and how it is split.

Every corpus is a `datasets.DatasetDict` with the splits "train" and "validation" and two string
columns: "text" (a document) and "source" (where it came from: a module name, a file path, a story
index).  `corpus_text` joins the rows of one split into the string a model trains on.

Offline first.  The default corpus is read from the running Python itself -- the prose of
`pydoc_data.topics` and the docstrings of the standard library -- so it needs no network, has a
known licence (PSF) and is never committed to the repository.  Hub corpora exist for online users
only; with the hub offline (what roots_course sets by default) they fail at once with a clear message.

The split rule (`_split_rows`), used by every multi-document corpus.  Validation text must not leak
into training, so whole documents (modules, files, stories) are assigned, never lines.  Each
document gets a key sha256(f"{seed}:{source}"); documents are visited in key order and a document
goes to validation if adding it brings the validation size closer to `val_fraction` of all
characters, otherwise to training.  The rule is deterministic, depends only on the names (not on
the order files are listed in), and hits the fraction of *characters*, not of documents.
`max_chars` keeps whole documents in the same key order (skipping those that no longer fit), so a
small slice is a fair sample of the whole and still has both splits.
"""

from __future__ import annotations

import ast
import hashlib
import inspect
import math
import os
import random
import shutil
import sys
import sysconfig
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, is_dataclass
from functools import lru_cache
from itertools import islice
from pathlib import Path
from typing import Any

import datasets
from datasets import Dataset, DatasetDict, Features, Value, concatenate_datasets

from roots_course.store import integrity
from roots_course.errors import DataError
from roots_course.core.grammar import StoryGrammar

Row = tuple[str, str]  # (source, text)

FEATURES = Features({"text": Value("string"), "source": Value("string")})
# Folders of the standard library that are not documentation of the library itself.
SKIP_DIRS = frozenset({"test", "tests", "idlelib", "site-packages", "dist-packages", "__pycache__"})
TEXT_EXTENSIONS = (".txt", ".md", ".py")
CACHE_FORMAT = 1  # bump when the extraction changes, so that old caches are not reused
_TRUE = {"1", "true", "yes", "on"}


# ---- the split rule -------------------------------------------------------------------------------
def _key(source: str, seed: int) -> bytes:
    """The document's place in the fixed pseudo-random order used for truncation and splitting."""
    return hashlib.sha256(f"{seed}:{source}".encode("utf-8")).digest()


def _check_fraction(val_fraction: float) -> None:
    if not 0.0 < val_fraction < 1.0:
        raise DataError(f"val_fraction must be strictly between 0 and 1, got {val_fraction!r}")


def _truncate(rows: Sequence[Row], max_chars: int | None, seed: int) -> list[Row]:
    """Keep whole documents, in key order, while they fit in `max_chars` characters."""
    if max_chars is None:
        return list(rows)
    if not isinstance(max_chars, int) or max_chars <= 0:
        raise DataError(f"max_chars must be a positive integer or None, got {max_chars!r}")
    kept: list[Row] = []
    room = max_chars
    for row in sorted(rows, key=lambda r: _key(r[0], seed)):
        if len(row[1]) <= room:
            kept.append(row)
            room -= len(row[1])
    return kept


def _split_rows(rows: Sequence[Row], val_fraction: float, seed: int,
                what: str) -> tuple[list[Row], list[Row]]:
    """Assign whole documents to (train, validation) by the rule in the module docstring."""
    _check_fraction(val_fraction)
    if len(rows) < 2:
        raise DataError(
            f"{what} has {len(rows)} document(s); splitting by document needs at least 2 "
            f"(raise max_chars or add files)"
        )
    target = val_fraction * sum(len(text) for _, text in rows)
    train: list[Row] = []
    val: list[Row] = []
    val_chars = 0
    for row in sorted(rows, key=lambda r: _key(r[0], seed)):
        n = len(row[1])
        if abs(val_chars + n - target) < abs(val_chars - target):
            val.append(row)
            val_chars += n
        else:
            train.append(row)
    if not val:  # every document alone overshoots the target: take the smallest one
        smallest = min(train, key=lambda r: (len(r[1]), _key(r[0], seed)))
        train.remove(smallest)
        val.append(smallest)
    if not train:  # only for val_fraction close to 1
        train.append(val.pop())
    return train, val


def _dataset(rows: Iterable[Row]) -> Dataset:
    rows = list(rows)
    return Dataset.from_dict(
        {"text": [t for _, t in rows], "source": [s for s, _ in rows]}, features=FEATURES
    )


def _dataset_dict(train: Sequence[Row], val: Sequence[Row], sort: bool = True) -> DatasetDict:
    """Rows of each split sorted by source (reading order), unless `sort` is False."""
    if sort:
        train, val = sorted(train), sorted(val)
    return DatasetDict({"train": _dataset(train), "validation": _dataset(val)})


# ---- on-disk cache of extracted corpora ------------------------------------------------------------
@contextmanager
def quiet_datasets() -> Iterator[None]:
    """Silence `datasets` progress bars (they clutter logs under papermill), then restore them."""
    was_disabled = datasets.utils.are_progress_bars_disabled()
    datasets.utils.disable_progress_bars()
    try:
        yield
    finally:
        if not was_disabled:
            datasets.utils.enable_progress_bars()


def _cached(cache_dir: Path | str | None, key: str, build: Callable[[], DatasetDict]) -> DatasetDict:
    """Load `cache_dir/key` if it was saved before; otherwise build, save atomically, return."""
    if cache_dir is None:
        return build()
    path = Path(cache_dir) / key
    with quiet_datasets():
        if (path / "dataset_dict.json").is_file():
            try:
                return DatasetDict.load_from_disk(str(path))
            except Exception:  # a damaged cache is rebuilt, never trusted
                shutil.rmtree(path, ignore_errors=True)
        ds = build()
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")   # hidden: not an artifact until renamed
        shutil.rmtree(tmp, ignore_errors=True)
        ds.save_to_disk(str(tmp))
        try:
            with integrity.writing(path):   # inside a recorded artifacts folder, its checksums follow
                os.replace(tmp, path)
        except OSError:  # another process saved it first: keep theirs
            shutil.rmtree(tmp, ignore_errors=True)
    return ds


def _cache_key(kind: str, max_chars: int | None, val_fraction: float, seed: int) -> str:
    v = sys.version_info
    return (f"{kind}-v{CACHE_FORMAT}-py{v.major}.{v.minor}.{v.micro}"
            f"-max{max_chars if max_chars is not None else 'all'}-val{val_fraction}-seed{seed}")


# ---- the standard library as a corpus -----------------------------------------------------------
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
    from pydoc_data.topics import topics

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
    with the module's split rule.  With `cache_dir`, the result is saved there and reloaded next
    time (keyed by Python version, max_chars, val_fraction and seed); extraction takes seconds.
    """
    _check_fraction(val_fraction)

    def build() -> DatasetDict:
        rows = _truncate(_python_docs_rows(), max_chars, seed)
        return _dataset_dict(*_split_rows(rows, val_fraction, seed, "the python_docs corpus"))

    return _cached(cache_dir, _cache_key("python_docs", max_chars, val_fraction, seed), build)


def stdlib_source_corpus(max_chars: int | None = None, val_fraction: float = 0.1, seed: int = 0,
                         cache_dir: Path | str | None = None) -> DatasetDict:
    """The standard library's .py source files, one row per module; same split rule as above."""
    _check_fraction(val_fraction)

    def build() -> DatasetDict:
        rows = _truncate(_stdlib_source_rows(), max_chars, seed)
        return _dataset_dict(*_split_rows(rows, val_fraction, seed, "the stdlib_source corpus"))

    return _cached(cache_dir, _cache_key("stdlib_source", max_chars, val_fraction, seed), build)


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


# ---- local files -----------------------------------------------------------------------------------
def _read_utf8(path: Path) -> str:
    """The file's text; DataError naming the file and the first bad byte if it is not UTF-8."""
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(
            f"{path} is not UTF-8: byte 0x{data[exc.start]:02x} at byte offset {exc.start} "
            f"cannot be decoded ({exc.reason}); convert the file to UTF-8"
        ) from None
    if "\x00" in text:  # valid UTF-8, yet no text file holds NUL: an image, an archive, a database...
        raise DataError(f"{path} looks like a binary file, not text: it holds a NUL byte at byte offset "
                        f"{data.index(0)}; give a UTF-8 text file")
    return text.removeprefix("\ufeff")  # a byte-order mark is not text


def _split_on_line(text: str, val_fraction: float) -> tuple[str, str]:
    """Cut one text in two near (1 - val_fraction) of its length, just after a newline.

    The cut is the first line boundary at or after the target position, else the last one before
    it, such that both parts contain non-blank text.  A text with no usable line boundary is cut at
    the target character.
    """
    target = min(max(round(len(text) * (1.0 - val_fraction)), 1), len(text) - 1)

    def ok(cut: int) -> bool:
        return 0 < cut < len(text) and bool(text[:cut].strip()) and bool(text[cut:].strip())

    after = text.find("\n", target - 1) + 1  # position just after the newline; 0 if none
    if after and ok(after):
        return text[:after], text[after:]
    end_of_content = len(text.rstrip())
    before = text.rfind("\n", 0, min(target, end_of_content)) + 1
    if before and ok(before):
        return text[:before], text[before:]
    return text[:target], text[target:]


def _one_text_corpus(source: str, text: str, val_fraction: float) -> DatasetDict:
    train, val = _split_on_line(text, val_fraction)
    if not train.strip() or not val.strip():
        raise DataError(f"corpus file {source} is too short to split into train and validation")
    return _dataset_dict([(source, train)], [(source, val)])


def text_file_corpus(path: Path | str, val_fraction: float = 0.1,
                     extensions: Sequence[str] = TEXT_EXTENSIONS, seed: int = 0) -> DatasetDict:
    """A corpus from a local UTF-8 file or a folder of text files.

    File: one row per split; training gets the first ~90% (cut on a line boundary), validation
    the rest.  Folder: every file with one of `extensions` (recursively, hidden folders skipped)
    is one row, split by file with the module's split rule; a folder with a single usable file is
    split like a file.  Blank files are skipped; nothing usable -> DataError naming the path.
    """
    _check_fraction(val_fraction)
    root = Path(path).expanduser()
    if not root.exists():
        raise DataError(f"corpus path {root} does not exist (no such file or folder)")
    if root.is_file():
        text = _read_utf8(root)
        if not text.strip():
            raise DataError(f"corpus file {root} is empty (or only whitespace)")
        return _one_text_corpus(str(root), text, val_fraction)
    suffixes = tuple(e if e.startswith(".") else f".{e}" for e in extensions)
    rows: list[Row] = []
    for file in sorted(root.rglob("*")):
        rel = file.relative_to(root)
        if any(part.startswith(".") for part in rel.parts) or not file.is_file():
            continue
        if file.suffix.lower() in suffixes:
            text = _read_utf8(file)
            if text.strip():
                rows.append((rel.as_posix(), text))
    if not rows:
        raise DataError(
            f"corpus folder {root} has no non-empty file ending in {', '.join(suffixes)}"
        )
    if len(rows) == 1:
        return _one_text_corpus(*rows[0], val_fraction)
    return _dataset_dict(*_split_rows(rows, val_fraction, seed, f"corpus folder {root}"))


# ---- the Hugging Face hub (online users only) -----------------------------------------------------
def _hub_offline_vars() -> list[str]:
    return [v for v in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")
            if os.environ.get(v, "").strip().lower() in _TRUE]


def hub_corpus(name: str, config: str | None = None, split: str = "train",
               text_column: str = "text", max_rows: int | None = None,
               val_fraction: float = 0.1, seed: int = 0) -> DatasetDict:
    """A corpus from the Hugging Face hub via `datasets.load_dataset` (needs the network).

    Reads `split` of dataset `name` (streaming the first `max_rows` rows when given), keeps the
    non-blank values of `text_column`, one row per document (source "<name>:<split>:<index>"), and
    splits them with the module's split rule.  If the hub is switched off (HF_HUB_OFFLINE or
    HF_DATASETS_OFFLINE, which roots_course sets to 1 unless you set them) or the download fails,
    raises DataError saying so.
    """
    _check_fraction(val_fraction)
    offline = _hub_offline_vars()
    if offline:
        raise DataError(
            f"hub corpus {name!r} needs the network, but the Hugging Face hub is offline "
            f"({', '.join(f'{v}=' + os.environ[v] for v in offline)}). roots_course sets these by "
            f"default so that nothing downloads by surprise; to download, start Python with "
            f"HF_HUB_OFFLINE=0 HF_DATASETS_OFFLINE=0 in the environment (set them before "
            f"importing roots_course or datasets), or use a local corpus (kind 'python_docs', "
            f"'stdlib_source', 'text' or 'grammar')."
        )
    if max_rows is not None and (not isinstance(max_rows, int) or max_rows <= 0):
        raise DataError(f"max_rows must be a positive integer or None, got {max_rows!r}")
    try:
        if max_rows is None:
            loaded = datasets.load_dataset(name, config, split=split)
            columns = list(loaded.column_names)
            texts = list(loaded[text_column]) if text_column in columns else []
        else:  # stream, so that a slice of a huge corpus does not download all of it
            stream = datasets.load_dataset(name, config, split=split, streaming=True)
            records = list(islice(iter(stream), max_rows))
            columns = list(records[0].keys()) if records else []
            texts = [r[text_column] for r in records] if text_column in columns else []
    except DataError:
        raise
    except Exception as exc:  # network, authentication, unknown dataset...: say what failed
        raise DataError(
            f"could not load hub corpus {name!r} (config {config!r}, split {split!r}): "
            f"{type(exc).__name__}: {exc}. Check the name and your network connection, or use a "
            f"local corpus (kind 'python_docs' or 'text') when offline."
        ) from exc
    if text_column not in columns:
        raise DataError(
            f"hub corpus {name!r} has no column {text_column!r}; its columns are {columns}"
        )
    where = f"{name}/{config}" if config else name
    rows = [(f"{where}:{split}:{i}", t) for i, t in enumerate(texts)
            if isinstance(t, str) and t.strip()]
    if not rows:
        raise DataError(f"hub corpus {name!r} split {split!r} has no non-blank {text_column!r}")
    return _dataset_dict(*_split_rows(rows, val_fraction, seed, f"hub corpus {name!r}"),
                         sort=False)


# ---- the story grammar --------------------------------------------------------------------------
def grammar_corpus(n_stories: int, seed: int = 0,
                   val_fraction: float = 0.1) -> tuple[DatasetDict, float]:
    """`n_stories` stories from `StoryGrammar`, and the floor: its exact entropy in bits per char.

    One row per story (source "story:<i>"); the stories are independent, so the last
    round(val_fraction * n) of them form the validation split.  Join rows with
    `corpus_text(ds, sep="\\n\\n")` -- the grammar's separator -- for the floor to apply.
    """
    _check_fraction(val_fraction)
    if not isinstance(n_stories, int) or n_stories < 2:
        raise DataError(f"n_stories must be an integer >= 2, got {n_stories!r}")
    grammar = StoryGrammar()
    rng = random.Random(seed)
    rows = [(f"story:{i}", grammar.sample(rng)) for i in range(n_stories)]
    n_val = min(max(round(val_fraction * n_stories), 1), n_stories - 1)
    ds = _dataset_dict(rows[: n_stories - n_val], rows[n_stories - n_val:], sort=False)
    return ds, grammar.entropy_bits_per_char()


def _grammar_dataset(n_stories: int, seed: int = 0, val_fraction: float = 0.1) -> DatasetDict:
    """`grammar_corpus` without the floor (which is `StoryGrammar().entropy_bits_per_char()`)."""
    return grammar_corpus(n_stories, seed=seed, val_fraction=val_fraction)[0]


# ---- one entry point for profiles ------------------------------------------------------------------
CORPUS_KINDS: dict[str, Callable[..., DatasetDict]] = {
    "python_docs": python_docs_corpus,
    "stdlib_source": stdlib_source_corpus,
    "python_docs_and_source": python_docs_and_source_corpus,
    "text": text_file_corpus,
    "hub": hub_corpus,
    "grammar": _grammar_dataset,
}


def load_corpus(spec: Mapping[str, Any] | Any) -> DatasetDict:
    """Build the corpus a profile describes: `spec["kind"]` picks the function, the rest are its
    keyword arguments (e.g. {"kind": "python_docs", "max_chars": 300_000}).

    `spec` may be a mapping or a dataclass.  Keys the function does not take are an error unless
    their value is None (so one spec class can carry the fields of every kind).
    """
    if is_dataclass(spec) and not isinstance(spec, type):
        params = asdict(spec)
    elif isinstance(spec, Mapping):
        params = dict(spec)
    else:
        raise DataError(f"corpus spec must be a mapping with a 'kind' key, got {type(spec).__name__}")
    kind = params.pop("kind", None)
    if kind not in CORPUS_KINDS:
        raise DataError(
            f"unknown corpus kind {kind!r}; allowed kinds: {', '.join(sorted(CORPUS_KINDS))}"
        )
    fn = CORPUS_KINDS[kind]
    signature = inspect.signature(fn).parameters
    unknown = sorted(k for k, v in params.items() if k not in signature and v is not None)
    if unknown:
        raise DataError(
            f"corpus kind {kind!r} does not take {', '.join(unknown)}; it takes "
            f"{', '.join(signature)}"
        )
    kwargs = {k: v for k, v in params.items() if k in signature and v is not None}
    missing = [k for k, p in signature.items() if p.default is p.empty and k not in kwargs]
    if missing:
        raise DataError(f"corpus kind {kind!r} needs {', '.join(missing)} in its spec")
    return fn(**kwargs)


# ---- small helpers the chapters use ---------------------------------------------------------------
def corpus_text(ds: Dataset | Iterable[str], sep: str = "\n\n") -> str:
    """The rows of one split joined into the single string a model trains on."""
    if isinstance(ds, DatasetDict):
        raise DataError(
            f"corpus_text takes one split, e.g. ds['train']; got splits {list(ds.keys())}"
        )
    texts = ds["text"] if isinstance(ds, Dataset) else ds
    return sep.join(texts)


def unigram_entropy_bits(symbols: Sequence[Any] | str) -> float:
    """Entropy, in bits per symbol, of the empirical distribution of `symbols`.

    `symbols` may be a string (characters), a list of token ids, or a tensor/array (flattened).
    It is what a model that ignores all context could at best achieve.
    """
    if hasattr(symbols, "tolist") and not isinstance(symbols, (str, list, tuple)):
        flat = symbols.reshape(-1).tolist() if hasattr(symbols, "reshape") else symbols.tolist()
    else:
        flat = symbols
    counts = Counter(flat)
    n = sum(counts.values())
    if n == 0:
        raise DataError("unigram_entropy_bits needs at least one symbol, got none")
    return -sum(c / n * math.log2(c / n) for c in counts.values())
