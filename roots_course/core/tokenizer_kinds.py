"""Tokenizers by kind: train one of the three ("char", "bpe", "fast_bpe"), rebuild one from its saved
dictionary, or load one from its JSON file, which names its kind in its `"type"` field.

This module imports every implementation, so none of them has to import the others.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from roots_course.core.bpe import SPLIT_REGEX, ByteBPETokenizer
from roots_course.core.fast_bpe import FastBPETokenizer
from roots_course.core.tokenizer import DEFAULT_VOCAB_SIZE, CharTokenizer, Tokenizer, as_texts
from roots_course.errors import CheckpointError, ConfigError, DataError
from roots_course.store.artifacts import read_json

TOKENIZER_KINDS = ("char", "bpe", "fast_bpe")
TOKENIZER_CLASSES: dict[str, type[Tokenizer]] = {"char": CharTokenizer, "bpe": ByteBPETokenizer,
                                                 "fast_bpe": FastBPETokenizer}


MAX_WORD_CHARS = 20_000
_LONG_RUN = re.compile(rf"\S{{{MAX_WORD_CHARS},}}")


def check_word_lengths(texts: Sequence[str], limit: int = MAX_WORD_CHARS) -> None:
    """DataError when a text holds a piece the BPE pre-tokenizer cannot break (a run of letters, of
    digits or of punctuation) longer than ``limit`` characters.

    BPE training time grows with the square of a piece's length: one 2-million-letter "word" (a line
    of text with its spaces stripped, a blob of letters) would keep the trainer busy for hours. A long
    line of ordinary text is fine: spaces break it into words.
    """
    for index, text in enumerate(texts):
        for run in _LONG_RUN.finditer(text):          # only runs without whitespace can hold such a piece
            piece = max(SPLIT_REGEX.findall(run.group()), key=len)
            if len(piece) > limit:
                start = run.start() + run.group().index(piece)
                raise DataError(
                    f"training text {index} holds a piece of {len(piece):,} characters with no space or other "
                    f"break (at character {start:,}: {piece[:40]!r}...); byte-level BPE training slows down with "
                    f"the square of a piece's length and would take hours. Use text whose words are separated "
                    f"(prose, code, one record per line), cut that run out, or use the char tokenizer")


def train_tokenizer(
    kind: str, text: str | Iterable[str], vocab_size: int | None = None, verbose: bool = False
) -> Tokenizer:
    """Train a tokenizer of `kind` ("char", "bpe" or "fast_bpe") on `text`.

    `vocab_size` (default 512) counts every id including the 256 byte tokens; the char tokenizer's
    size is fixed by the text and ignores it. Unknown kind: ConfigError; empty text: DataError.
    """
    if kind not in TOKENIZER_KINDS:
        raise ConfigError(
            f"unknown tokenizer kind {kind!r}; allowed kinds: {', '.join(TOKENIZER_KINDS)}"
        )
    texts = as_texts(text)
    if kind == "char":
        return CharTokenizer.train(texts)
    check_word_lengths(texts)
    size = DEFAULT_VOCAB_SIZE if vocab_size is None else int(vocab_size)
    return TOKENIZER_CLASSES[kind].train(texts, size, verbose=verbose)


def tokenizer_from_dict(data: dict[str, Any]) -> Tokenizer:
    """Rebuild any tokenizer from its `to_dict()` output, dispatching on data["type"]."""
    classes = TOKENIZER_CLASSES
    kind = data.get("type") if isinstance(data, dict) else None
    if kind not in classes:
        raise CheckpointError(
            f"unknown tokenizer type {kind!r}; known types: {', '.join(TOKENIZER_KINDS)}"
        )
    return classes[kind].from_dict(data)


def load_tokenizer(path: str | os.PathLike[str]) -> Tokenizer:
    """Read a tokenizer saved with `.save(path)`. CheckpointError naming the file if it is missing,
    truncated, not a tokenizer, or of an unknown type."""
    path = Path(path)
    data = read_json(path)  # CheckpointError naming the file if missing or not JSON
    try:
        return tokenizer_from_dict(data)
    except (CheckpointError, KeyError, TypeError, ValueError) as err:
        raise CheckpointError(f"tokenizer file {path}: {err}") from err
