"""Byte-level BPE from the Hugging Face `tokenizers` library (Rust) behind the course's `Tokenizer`
interface, and the byte-level alphabet that library (like GPT-2) writes its tokens in.

`roots_course.core.bpe` is the from-scratch version to read; this is the one to use when speed matters.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from typing import Any

from roots_course.core.tokenizer import DEFAULT_VOCAB_SIZE, FORMAT_VERSION, Tokenizer, as_texts
from roots_course.errors import CheckpointError, ConfigError


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
