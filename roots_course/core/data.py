"""Corpora for the course: where the text comes from, and how it is split.

Every corpus is a `datasets.DatasetDict` with the splits "train" and "validation" and two string
columns: "text" (a document) and "source" (where it came from: a module name, a file path, a story
index).  `corpus_text` joins the rows of one split into the string a model trains on.

Offline first.  The default corpus is read from the running Python itself -- the prose of
`pydoc_data.topics` and the docstrings of the standard library -- so it needs no network, has a
known licence (PSF) and is never committed to the repository.  Hub corpora exist for online users
only; with the hub offline (what roots_course sets by default) they fail at once with a clear message.

Where each piece lives: the split rule and the on-disk cache in `roots_course.core.corpus_split`, the
standard-library corpora in `roots_course.core.stdlib_corpus`; local files, the hub, the story grammar
and `load_corpus` (one entry point for profiles) here.
"""

from __future__ import annotations

import inspect
import math
import os
import random
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, is_dataclass
from itertools import islice
from pathlib import Path
from typing import Any

import datasets
from datasets import Dataset, DatasetDict

from roots_course.core.corpus_split import Row, check_fraction, rows_dataset_dict, split_rows
from roots_course.core.grammar import StoryGrammar
from roots_course.core.stdlib_corpus import python_docs_and_source_corpus, python_docs_corpus, stdlib_source_corpus
from roots_course.errors import DataError

TEXT_EXTENSIONS = (".txt", ".md", ".py")
_TRUE = {"1", "true", "yes", "on"}


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
    return rows_dataset_dict([(source, train)], [(source, val)])


def text_file_corpus(path: Path | str, val_fraction: float = 0.1,
                     extensions: Sequence[str] = TEXT_EXTENSIONS, seed: int = 0) -> DatasetDict:
    """A corpus from a local UTF-8 file or a folder of text files.

    File: one row per split; training gets the first ~90% (cut on a line boundary), validation the rest.
    Folder: every file with one of `extensions` (recursively, hidden folders skipped) is one row, split
    by file with the split rule of `roots_course.core.corpus_split`; a folder with a single usable file
    is split like a file.  Blank files are skipped; nothing usable -> DataError naming the path.
    """
    check_fraction(val_fraction)
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
    return rows_dataset_dict(*split_rows(rows, val_fraction, seed, f"corpus folder {root}"))


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
    splits them with the split rule of `roots_course.core.corpus_split`.  If the hub is switched off (HF_HUB_OFFLINE or
    HF_DATASETS_OFFLINE, which roots_course sets to 1 unless you set them) or the download fails,
    raises DataError saying so.
    """
    check_fraction(val_fraction)
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
    return rows_dataset_dict(*split_rows(rows, val_fraction, seed, f"hub corpus {name!r}"),
                         sort=False)


# ---- the story grammar --------------------------------------------------------------------------
def grammar_corpus(n_stories: int, seed: int = 0,
                   val_fraction: float = 0.1) -> tuple[DatasetDict, float]:
    """`n_stories` stories from `StoryGrammar`, and the floor: its exact entropy in bits per char.

    One row per story (source "story:<i>"); the stories are independent, so the last
    round(val_fraction * n) of them form the validation split.  Join rows with
    `corpus_text(ds, sep="\\n\\n")` -- the grammar's separator -- for the floor to apply.
    """
    check_fraction(val_fraction)
    if not isinstance(n_stories, int) or n_stories < 2:
        raise DataError(f"n_stories must be an integer >= 2, got {n_stories!r}")
    grammar = StoryGrammar()
    rng = random.Random(seed)
    rows = [(f"story:{i}", grammar.sample(rng)) for i in range(n_stories)]
    n_val = min(max(round(val_fraction * n_stories), 1), n_stories - 1)
    ds = rows_dataset_dict(rows[: n_stories - n_val], rows[n_stories - n_val:], sort=False)
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
