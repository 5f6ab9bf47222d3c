"""Tokenizers: turning text into a list of integer ids and back.

One interface, three implementations, each in its own module:

- `CharTokenizer` (here): one id per character seen in training, plus an `<unk>` id for the rest.
- `ByteBPETokenizer` (`roots_course.core.bpe`): byte-level byte-pair encoding written from scratch,
  meant to be read.
- `FastBPETokenizer` (`roots_course.core.fast_bpe`): the same algorithm from the Hugging Face
  `tokenizers` library (Rust), configured to pre-tokenise text exactly like ours; use it when speed matters.

Every tokenizer can be saved to a JSON file whose `"type"` field says which class reads it back;
`roots_course.core.tokenizer_kinds` trains, rebuilds and loads any of the three by kind
(`train_tokenizer(kind, text, vocab_size)`, `load_tokenizer(path)`).
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, ClassVar

from roots_course.store.artifacts import atomic_write_json
from roots_course.errors import CheckpointError, ConfigError, DataError

FORMAT_VERSION = 1
DEFAULT_VOCAB_SIZE = 512


# --------------------------------------------------------------------------------------------------
# The interface
# --------------------------------------------------------------------------------------------------


class Tokenizer(ABC):
    """What every tokenizer of the course can do.

    Subclasses set the class attribute `name` (also the `"type"` written in their JSON file) and
    implement the abstract methods; `train` is a classmethod on each subclass that returns a new,
    trained tokenizer.
    """

    name: ClassVar[str]

    @property
    @abstractmethod
    def vocab_size(self) -> int:
        """Number of distinct ids: every id this tokenizer produces is in range(vocab_size)."""

    @abstractmethod
    def encode(self, text: str) -> list[int]:
        """Text to ids."""

    @abstractmethod
    def decode(self, ids: Sequence[int]) -> str:
        """Ids to text; raises DataError for an id outside range(vocab_size)."""

    @abstractmethod
    def token_bytes(self, token_id: int) -> bytes:
        """The UTF-8 bytes one id stands for (byte-level BPE: maybe part of a character)."""

    @abstractmethod
    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable description, with "type" and "format_version" keys."""

    @classmethod
    @abstractmethod
    def from_dict(cls, data: dict[str, Any]) -> Tokenizer:
        """Rebuild a tokenizer from `to_dict()`'s output; CheckpointError if it is malformed."""

    # Shared behaviour -------------------------------------------------------------------------

    def encode_batch(self, texts: Iterable[str]) -> list[list[int]]:
        """Encode several texts (a plain loop here; FastBPETokenizer does it in parallel)."""
        return [self.encode(text) for text in texts]

    def tokens(self, text: str) -> list[str]:
        """The pieces `text` is cut into, for display. A piece that is only part of a multi-byte
        character shows as the replacement character U+FFFD."""
        return [self.token_bytes(i).decode("utf-8", errors="replace") for i in self.encode(text)]

    def bytes_per_token(self, text: str) -> float:
        """Compression ratio: UTF-8 bytes of `text` per token (1.0 for raw bytes; higher: fewer
        tokens)."""
        ids = self.encode(text)
        return len(text.encode("utf-8")) / max(len(ids), 1)

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write `to_dict()` as JSON to `path` atomically (a crash never leaves half a file)."""
        return atomic_write_json(Path(path), self.to_dict())

    def __repr__(self) -> str:
        return f"{type(self).__name__}(vocab_size={self.vocab_size})"

    # Helpers for subclasses --------------------------------------------------------------------

    def _check_ids(self, ids: Sequence[int]) -> None:
        """Raise DataError naming the first id outside range(vocab_size)."""
        size = self.vocab_size
        for position, token_id in enumerate(ids):
            if not 0 <= token_id < size:
                raise DataError(
                    f"token id {token_id} at position {position} is outside this {self.name!r} "
                    f"tokenizer's vocabulary range(0, {size})"
                )

    @classmethod
    def _check_type(cls, data: dict[str, Any]) -> None:
        if not isinstance(data, dict) or data.get("type") != cls.name:
            found = data.get("type") if isinstance(data, dict) else type(data).__name__
            raise CheckpointError(f"expected a tokenizer of type {cls.name!r}, found {found!r}")
        version = data.get("format_version", FORMAT_VERSION)
        if version != FORMAT_VERSION:
            raise CheckpointError(
                f"tokenizer format_version {version!r} is not supported (this code reads "
                f"{FORMAT_VERSION})"
            )


def as_texts(text: str | Iterable[str]) -> list[str]:
    """Accept one string or an iterable of strings (documents); DataError if there is no text."""
    if isinstance(text, str):
        texts = [text]
    elif isinstance(text, (bytes, bytearray)):
        raise DataError("tokenizers train on str, not bytes: decode the file as UTF-8 first")
    else:
        texts = list(text)
        for i, item in enumerate(texts):
            if not isinstance(item, str):
                raise DataError(f"training text item {i} is {type(item).__name__}, expected str")
    if not any(texts):
        raise DataError("the training text is empty: a tokenizer needs at least one character")
    return texts


# --------------------------------------------------------------------------------------------------
# Characters
# --------------------------------------------------------------------------------------------------


class CharTokenizer(Tokenizer):
    """One id per character: the sorted characters of the training text get ids 0..n-1.

    The `<unk>` id is the LAST id, n (so `vocab_size == n + 1`): any character not seen in training
    encodes to it, so encoding never fails and never drops a character (the output has exactly one
    id per input character). It decodes to U+FFFD, the Unicode replacement character "\ufffd".
    """

    name = "char"
    UNK_TOKEN = "<unk>"
    UNK_TEXT = "\ufffd"

    def __init__(self, chars: Sequence[str]) -> None:
        chars = list(chars)
        for c in chars:
            if not isinstance(c, str) or len(c) != 1:
                raise ConfigError(
                    f"CharTokenizer vocabulary entries must be single characters, got {c!r}"
                )
        if len(set(chars)) != len(chars):
            raise ConfigError("CharTokenizer vocabulary contains a character twice")
        self.chars = chars
        self.unk_id = len(chars)
        self._stoi = {c: i for i, c in enumerate(chars)}

    @classmethod
    def train(cls, text: str | Iterable[str]) -> CharTokenizer:
        """Vocabulary = sorted set of characters in `text` (str or iterable of str)."""
        seen: set[str] = set()
        for piece in as_texts(text):
            seen.update(piece)
        return cls(sorted(seen))

    @property
    def vocab_size(self) -> int:
        return len(self.chars) + 1

    def encode(self, text: str) -> list[int]:
        get, unk = self._stoi.get, self.unk_id
        return [get(c, unk) for c in text]

    def decode(self, ids: Sequence[int]) -> str:
        self._check_ids(ids)
        chars, unk = self.chars, self.unk_id
        return "".join(self.UNK_TEXT if i == unk else chars[i] for i in ids)

    def token_bytes(self, token_id: int) -> bytes:
        self._check_ids([token_id])
        if token_id == self.unk_id:
            return self.UNK_TEXT.encode("utf-8")
        return self.chars[token_id].encode("utf-8")

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": self.name,
            "format_version": FORMAT_VERSION,
            "chars": self.chars,
            "unk_id": self.unk_id,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CharTokenizer:
        cls._check_type(data)
        chars = data.get("chars")
        if not isinstance(chars, list):
            raise CheckpointError("char tokenizer has no 'chars' list")
        try:
            tok = cls(chars)
        except ConfigError as err:
            raise CheckpointError(str(err)) from err
        if data.get("unk_id", tok.unk_id) != tok.unk_id:
            raise CheckpointError(f"char tokenizer 'unk_id' must be {tok.unk_id} (the last id)")
        return tok
