"""Tokenizers: turning text into a list of integer ids and back.

One interface, three implementations:

- `CharTokenizer`: one id per character seen in training, plus an `<unk>` id for the rest.
- `ByteBPETokenizer` (in `roots_course.core.bpe`): byte-level byte-pair encoding written from scratch,
  meant to be read.
- `FastBPETokenizer`: the same algorithm from the Hugging Face `tokenizers` library (Rust),
  configured to pre-tokenise text exactly like ours; use it when speed matters.

Every tokenizer can be saved to a JSON file whose `"type"` field says which class reads it back;
`load_tokenizer(path)` dispatches on that field, and `train_tokenizer(kind, text, vocab_size)`
trains any of the three.
"""

from __future__ import annotations

import json
import os
import re
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, ClassVar

from roots_course.store.artifacts import atomic_write_json, read_json
from roots_course.errors import CheckpointError, ConfigError, DataError

FORMAT_VERSION = 1
DEFAULT_VOCAB_SIZE = 512
TOKENIZER_KINDS = ("char", "bpe", "fast_bpe")


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


# --------------------------------------------------------------------------------------------------
# The `tokenizers` library
# --------------------------------------------------------------------------------------------------


def byte_level_alphabet() -> list[str]:
    """The visible character that byte-level BPE libraries (GPT-2 style) use to stand for each byte.

    Token strings in the `tokenizers` library are made of these characters, not of raw bytes:
    a byte that is a visible Latin-1 character ('!'..'~', '¡'..'¬', '®'..'ÿ') stands for itself; the
    68 other bytes (controls, space, NBSP, soft hyphen) get the code points 256, 257, ... in
    increasing byte order, so the space byte 0x20 shows as 'Ġ' (U+0120). Returns a list indexed by
    byte value.
    """

    def visible(b: int) -> bool:
        return 0x21 <= b <= 0x7E or 0xA1 <= b <= 0xAC or 0xAE <= b <= 0xFF

    alphabet, shifted = [], 0
    for b in range(256):
        if visible(b):
            alphabet.append(chr(b))
        else:
            alphabet.append(chr(256 + shifted))
            shifted += 1
    return alphabet


_CHAR_TO_BYTE = {c: b for b, c in enumerate(byte_level_alphabet())}


def byte_level_to_bytes(token: str) -> bytes:
    """Inverse of `byte_level_alphabet`: a library token string back to the bytes it stands for."""
    return bytes(_CHAR_TO_BYTE[c] for c in token)


# A line break between two visible ASCII characters: cutting the text just after it cannot change
# the pre-tokenisation (no pre-token crosses it, and the "\n" stays a piece of its own either way).
_SAFE_CUT = re.compile(r"[!-~]\n(?=[!-~])")
_CHUNK_CHARS = 4096


def _split_for_library(text: str, size: int = _CHUNK_CHARS) -> list[str]:
    """Cut a long text into pieces of about `size` characters at safe line breaks.

    The library handles one huge string on one thread and slowly; many pieces go in parallel and
    several times faster, with exactly the same tokens. A text with no safe cut stays whole.
    """
    pieces, start = [], 0
    while len(text) - start > 2 * size:
        cut = _SAFE_CUT.search(text, start + size)
        if cut is None:
            break
        pieces.append(text[start : cut.end()])
        start = cut.end()
    pieces.append(text[start:])
    return pieces


class FastBPETokenizer(Tokenizer):
    """Byte-level BPE from the Hugging Face `tokenizers` library, behind our interface.

    Configured to match `ByteBPETokenizer`: the library's ByteLevel pre-tokenizer with the GPT-2
    regex and no prefix space (the same split as `roots_course.bpe.pre_tokenize`), all 256 bytes
    as the initial alphabet, no special tokens, no normaliser, and the same minimum pair count.
    Its ids are NOT ours: the library numbers the 256 byte tokens in the order of their stand-in
    characters (see `byte_level_alphabet`), not by byte value. Merges learned from the same text
    agree with ours except where equally frequent pairs are tied (see `roots_course.core.bpe`).
    """

    name = "fast_bpe"

    def __init__(self, tokenizer: Any) -> None:
        """Wrap a trained `tokenizers.Tokenizer`."""
        self._tok = tokenizer

    @classmethod
    def train(
        cls,
        text: str | Iterable[str],
        vocab_size: int = DEFAULT_VOCAB_SIZE,
        verbose: bool = False,
        *,
        min_count: int = 2,
    ) -> FastBPETokenizer:
        """Train on `text` (a str, or an iterable of documents) up to `vocab_size` tokens
        (including the 256 byte tokens); stops earlier if no pair occurs `min_count` times."""
        from tokenizers import Tokenizer as LibTokenizer
        from tokenizers import decoders, models, pre_tokenizers, trainers

        if vocab_size < 256:
            raise ConfigError(
                f"vocab_size must be at least 256 (one token per byte), got {vocab_size}"
            )
        texts = as_texts(text)
        tok = LibTokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size,
            min_frequency=min_count,
            show_progress=verbose,
            special_tokens=[],
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        )
        tok.train_from_iterator(
            (piece for doc in texts for piece in _split_for_library(doc)), trainer=trainer
        )
        return cls(tok)

    @property
    def vocab_size(self) -> int:
        return self._tok.get_vocab_size(with_added_tokens=True)

    def encode(self, text: str) -> list[int]:
        pieces = _split_for_library(text)
        if len(pieces) == 1:
            return self._tok.encode(text, add_special_tokens=False).ids
        encodings = self._tok.encode_batch(pieces, add_special_tokens=False)
        return [i for e in encodings for i in e.ids]

    def encode_batch(self, texts: Iterable[str]) -> list[list[int]]:
        texts = list(texts)
        if any(len(t) > 2 * _CHUNK_CHARS for t in texts):
            return [self.encode(t) for t in texts]
        return [e.ids for e in self._tok.encode_batch(texts, add_special_tokens=False)]

    def decode(self, ids: Sequence[int]) -> str:
        ids = list(ids)
        self._check_ids(ids)  # the library would silently skip unknown ids
        return self._tok.decode(ids, skip_special_tokens=False)

    def token_bytes(self, token_id: int) -> bytes:
        self._check_ids([token_id])
        return byte_level_to_bytes(self._tok.id_to_token(token_id))

    def byte_merges(self) -> list[tuple[bytes, bytes]]:
        """The learned merges in order, each as (left bytes, right bytes)."""
        model = json.loads(self._tok.to_str())["model"]
        pairs = [m.split(" ") if isinstance(m, str) else m for m in model["merges"]]
        return [(byte_level_to_bytes(a), byte_level_to_bytes(b)) for a, b in pairs]

    def to_dict(self) -> dict[str, Any]:
        import tokenizers

        return {
            "type": self.name,
            "format_version": FORMAT_VERSION,
            "tokenizers_version": tokenizers.__version__,
            "tokenizer_json": self._tok.to_str(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FastBPETokenizer:
        from tokenizers import Tokenizer as LibTokenizer

        cls._check_type(data)
        blob = data.get("tokenizer_json")
        if not isinstance(blob, str):
            raise CheckpointError("fast_bpe tokenizer has no 'tokenizer_json' string")
        try:
            return cls(LibTokenizer.from_str(blob))
        except Exception as err:  # the library raises its own Exception type
            raise CheckpointError(f"the embedded `tokenizers` JSON cannot be read: {err}") from err


# --------------------------------------------------------------------------------------------------
# Training, saving and loading by kind
# --------------------------------------------------------------------------------------------------


def _classes() -> dict[str, type[Tokenizer]]:
    # Imported here because roots_course.core.bpe imports the Tokenizer base class from this module.
    from roots_course.core.bpe import ByteBPETokenizer

    return {"char": CharTokenizer, "bpe": ByteBPETokenizer, "fast_bpe": FastBPETokenizer}


def __getattr__(name: str) -> Any:
    # Lets `from roots_course.core.tokenizer import ByteBPETokenizer` work despite the import order.
    if name == "ByteBPETokenizer":
        return _classes()["bpe"]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


MAX_WORD_CHARS = 20_000
_LONG_RUN = re.compile(rf"\S{{{MAX_WORD_CHARS},}}")


def check_word_lengths(texts: Sequence[str], limit: int = MAX_WORD_CHARS) -> None:
    """DataError when a text holds a piece the BPE pre-tokenizer cannot break (a run of letters, of
    digits or of punctuation) longer than ``limit`` characters.

    BPE training time grows with the square of a piece's length: one 2-million-letter "word" (a line
    of text with its spaces stripped, a blob of letters) would keep the trainer busy for hours. A long
    line of ordinary text is fine: spaces break it into words.
    """
    from roots_course.core.bpe import SPLIT_REGEX

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
    return _classes()[kind].train(texts, size, verbose=verbose)


def tokenizer_from_dict(data: dict[str, Any]) -> Tokenizer:
    """Rebuild any tokenizer from its `to_dict()` output, dispatching on data["type"]."""
    classes = _classes()
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
