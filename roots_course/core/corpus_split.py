"""How every multi-document corpus is split, truncated and cached, as `datasets.DatasetDict` objects.

The split rule (`split_rows`), used by every multi-document corpus.  Validation text must not leak
into training, so whole documents (modules, files, stories) are assigned, never lines.  Each
document gets a key sha256(f"{seed}:{source}"); documents are visited in key order and a document
goes to validation if adding it brings the validation size closer to `val_fraction` of all
characters, otherwise to training.  The rule is deterministic, depends only on the names (not on
the order files are listed in), and hits the fraction of *characters*, not of documents.
`max_chars` keeps whole documents in the same key order (skipping those that no longer fit), so a
small slice is a fair sample of the whole and still has both splits.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import datasets
from datasets import Dataset, DatasetDict, Features, Value

from roots_course.errors import DataError
from roots_course.store import integrity

Row = tuple[str, str]  # (source, text)

FEATURES = Features({"text": Value("string"), "source": Value("string")})
CACHE_FORMAT = 1  # bump when the extraction changes, so that old caches are not reused


def document_key(source: str, seed: int) -> bytes:
    """The document's place in the fixed pseudo-random order used for truncation and splitting."""
    return hashlib.sha256(f"{seed}:{source}".encode("utf-8")).digest()


def check_fraction(val_fraction: float) -> None:
    if not 0.0 < val_fraction < 1.0:
        raise DataError(f"val_fraction must be strictly between 0 and 1, got {val_fraction!r}")


def truncate_rows(rows: Sequence[Row], max_chars: int | None, seed: int) -> list[Row]:
    """Keep whole documents, in key order, while they fit in `max_chars` characters."""
    if max_chars is None:
        return list(rows)
    if not isinstance(max_chars, int) or max_chars <= 0:
        raise DataError(f"max_chars must be a positive integer or None, got {max_chars!r}")
    kept: list[Row] = []
    room = max_chars
    for row in sorted(rows, key=lambda r: document_key(r[0], seed)):
        if len(row[1]) <= room:
            kept.append(row)
            room -= len(row[1])
    return kept


def split_rows(rows: Sequence[Row], val_fraction: float, seed: int,
                what: str) -> tuple[list[Row], list[Row]]:
    """Assign whole documents to (train, validation) by the rule in this module's docstring."""
    check_fraction(val_fraction)
    if len(rows) < 2:
        raise DataError(
            f"{what} has {len(rows)} document(s); splitting by document needs at least 2 "
            f"(raise max_chars or add files)"
        )
    target = val_fraction * sum(len(text) for _, text in rows)
    train: list[Row] = []
    val: list[Row] = []
    val_chars = 0
    for row in sorted(rows, key=lambda r: document_key(r[0], seed)):
        n = len(row[1])
        if abs(val_chars + n - target) < abs(val_chars - target):
            val.append(row)
            val_chars += n
        else:
            train.append(row)
    if not val:  # every document alone overshoots the target: take the smallest one
        smallest = min(train, key=lambda r: (len(r[1]), document_key(r[0], seed)))
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


def rows_dataset_dict(train: Sequence[Row], val: Sequence[Row], sort: bool = True) -> DatasetDict:
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


def cached_corpus(cache_dir: Path | str | None, key: str, build: Callable[[], DatasetDict]) -> DatasetDict:
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


def cache_key(kind: str, max_chars: int | None, val_fraction: float, seed: int) -> str:
    v = sys.version_info
    return (f"{kind}-v{CACHE_FORMAT}-py{v.major}.{v.minor}.{v.micro}"
            f"-max{max_chars if max_chars is not None else 'all'}-val{val_fraction}-seed{seed}")
