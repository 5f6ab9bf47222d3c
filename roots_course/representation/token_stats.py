"""Measuring tokenizers: how many tokens a text costs, what the pieces look like, how often each occurs.

Chapter 1 compares four ways of cutting text (characters, words, bytes, BPE) with the numbers here:

- `readable` shows a token's bytes so that spaces, line breaks and half characters are visible;
- `granularity_row` / `word_level_row` measure one way of cutting on validation text: vocabulary
  size, tokens, tokens per character, bytes per token, and how much text it cannot represent;
- `vocab_sweep` trains byte-level BPE at several vocabulary sizes and measures sequence length;
- `script_costs` compares the cost of English, Chinese and code for one tokenizer;
- `rank_frequency` and `zipf_fit` give the rank-frequency curve and the slope of its log-log line.

Every function takes plain text and a tokenizer from `roots_course.core.tokenizer`; nothing here trains
a model.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

import torch

from roots_course.errors import DataError
from roots_course.core.tokenizer import Tokenizer
from roots_course.core.tokenizer_kinds import train_tokenizer

# A "word" for the word-level comparison: a run of letters/digits/underscore, or one other
# visible character (punctuation is a word of its own). Whitespace is dropped.
WORD_PATTERN = re.compile(r"\w+|[^\w\s]")

_VISIBLE = {" ": "␣", "\n": "↵", "\t": "⇥"}


def readable(piece: bytes) -> str:
    """A token's bytes as text a person can read: ␣ for a space, ↵ for a line break, ⇥ for a tab,
    and \\xNN for any byte that is not a whole UTF-8 character (e.g. a third of a Chinese character).

    readable(b" the") == "␣the";  readable("语".encode()[:1]) == "\\xe8"
    """
    out: list[str] = []
    i = 0
    while i < len(piece):
        # find the longest prefix starting at i that decodes (UTF-8 characters are 1 to 4 bytes)
        for width in (1, 2, 3, 4):
            chunk = piece[i : i + width]
            try:
                char = chunk.decode("utf-8")
            except UnicodeDecodeError:
                continue
            out.append(_VISIBLE.get(char, char))
            i += width
            break
        else:
            out.append(f"\\x{piece[i]:02x}")
            i += 1
    return "".join(out)


def pieces(tokenizer: Tokenizer, text: str) -> list[str]:
    """The readable pieces `text` is cut into, one string per token."""
    return [readable(tokenizer.token_bytes(i)) for i in tokenizer.encode(text)]


TOKEN_KINDS = ("starts a word", "inside a word", "digits", "punctuation and other")


def token_kind(piece: bytes) -> str:
    """Sort a token into one of TOKEN_KINDS by its bytes: a space then letters ("␣the") starts a
    word; letters alone ("ing") continue one; digits; anything else (punctuation, spaces, bytes)."""
    text = piece.decode("utf-8", errors="replace")
    if len(text) > 1 and text[0] == " " and text[1:].isalpha():
        return TOKEN_KINDS[0]
    if text.isalpha():
        return TOKEN_KINDS[1]
    if text.strip().isdigit():
        return TOKEN_KINDS[2]
    return TOKEN_KINDS[3]


def passage(text: str, tokenizer: Tokenizer, n_tokens: int, start: float = 0.3) -> list[int]:
    """The first `n_tokens` token ids of the first paragraph of prose found after fraction `start`
    of `text`: a paragraph (text between blank lines) with no indented line, mostly letters and
    spaces, and at least `n_tokens` tokens long. Falls back to the tokens at `start`."""
    offset = int(len(text) * start)
    for paragraph in text[offset:].split("\n\n")[1:]:
        if any(line.startswith((" ", "\t", ">>>")) for line in paragraph.splitlines()):
            continue
        letters = sum(c.isalpha() or c == " " for c in paragraph)
        if letters < 0.9 * len(paragraph):
            continue
        ids = tokenizer.encode(paragraph.replace("\n", " "))
        if len(ids) >= n_tokens:
            return ids[:n_tokens]
    return tokenizer.encode(text[offset : offset + 20 * n_tokens])[:n_tokens]


def words(text: str) -> list[str]:
    """Cut text into words and punctuation marks (WORD_PATTERN); whitespace is dropped."""
    return WORD_PATTERN.findall(text)


# --------------------------------------------------------------------------------------------------
# One way of cutting text, measured on validation text
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Granularity:
    """How one tokenizer cuts a validation text.

    tokens_per_char: sequence length per character (lower: shorter sequences, cheaper attention).
    bytes_per_token: UTF-8 bytes per token, the usual "compression ratio" (raw bytes: 1.0).
    unknown_share: share of the validation tokens the vocabulary cannot represent (mapped to <unk>).
    """

    name: str
    vocab_size: int
    tokens: int
    chars: int
    utf8_bytes: int
    unknown_share: float

    @property
    def tokens_per_char(self) -> float:
        return self.tokens / max(self.chars, 1)

    @property
    def bytes_per_token(self) -> float:
        return self.utf8_bytes / max(self.tokens, 1)

    def as_row(self) -> dict[str, Any]:
        return {"tokenizer": self.name, "vocabulary": self.vocab_size, "tokens": self.tokens,
                "tokens per character": round(self.tokens_per_char, 3),
                "bytes per token": round(self.bytes_per_token, 3),
                "unknown share": round(self.unknown_share, 4)}


def granularity_row(name: str, tokenizer: Tokenizer, val_text: str) -> Granularity:
    """Measure `tokenizer` on `val_text`. Only the character tokenizer can meet unknown symbols
    (its `unk_id`); byte-level tokenizers represent every text."""
    ids = tokenizer.encode(val_text)
    unk = getattr(tokenizer, "unk_id", None)
    unknown = sum(1 for i in ids if i == unk) if unk is not None else 0
    return Granularity(name, tokenizer.vocab_size, len(ids), len(val_text),
                       len(val_text.encode("utf-8")), unknown / max(len(ids), 1))


def bytes_row(val_text: str) -> Granularity:
    """Raw UTF-8 bytes as tokens: 256 symbols, one token per byte, nothing unknown."""
    n = len(val_text.encode("utf-8"))
    return Granularity("bytes", 256, n, len(val_text), n, 0.0)


def word_level_row(train_text: str, val_text: str, vocab_size: int | None = None,
                   name: str | None = None) -> Granularity:
    """A word-level vocabulary built from `train_text`: its `vocab_size` most frequent words
    (default: every word seen), plus one <unk> id. Measured on `val_text`; unknown_share is the
    share of validation words outside the vocabulary, which a word-level model could not even read."""
    counts = Counter(words(train_text))
    vocab = {w for w, _ in counts.most_common(vocab_size)}
    val_words = words(val_text)
    if not val_words:
        raise DataError("word_level_row needs validation text with at least one word")
    unknown = sum(1 for w in val_words if w not in vocab)
    label = name or (f"words (top {vocab_size})" if vocab_size else "words (all seen)")
    return Granularity(label, len(vocab) + 1, len(val_words), len(val_text), len(val_text.encode("utf-8")),
                       unknown / len(val_words))


# --------------------------------------------------------------------------------------------------
# Vocabulary size against sequence length
# --------------------------------------------------------------------------------------------------


def vocab_sweep(train_text: str | Iterable[str], val_text: str, vocab_sizes: Sequence[int],
                kind: str = "fast_bpe") -> list[Granularity]:
    """Train a byte-level BPE of each size on `train_text`, measure it on `val_text`.

    The first row is always raw bytes (vocabulary 256, before any merge), so the curve starts at
    exactly one token per byte.
    """
    rows = [bytes_row(val_text)]
    for size in sorted({int(v) for v in vocab_sizes}):
        tokenizer = train_tokenizer(kind, train_text, size)
        rows.append(granularity_row(f"{kind} {size}", tokenizer, val_text))
    return rows


# --------------------------------------------------------------------------------------------------
# Languages and code
# --------------------------------------------------------------------------------------------------


def script_costs(tokenizer: Tokenizer, samples: Mapping[str, str]) -> list[dict[str, Any]]:
    """For each named text: characters, UTF-8 bytes, tokens, tokens per character, bytes per
    character, and the share of tokens that are single bytes (no merge applied to them)."""
    rows = []
    for name, text in samples.items():
        ids = tokenizer.encode(text)
        single = sum(1 for i in ids if len(tokenizer.token_bytes(i)) == 1)
        n_bytes = len(text.encode("utf-8"))
        rows.append({"text": name, "characters": len(text), "bytes": n_bytes, "tokens": len(ids),
                     "tokens per character": round(len(ids) / max(len(text), 1), 3),
                     "bytes per character": round(n_bytes / max(len(text), 1), 3),
                     "single-byte tokens": round(single / max(len(ids), 1), 3)})
    return rows


# --------------------------------------------------------------------------------------------------
# Zipf's law
# --------------------------------------------------------------------------------------------------


def rank_frequency(items: Iterable[Any] | torch.Tensor) -> torch.Tensor:
    """Counts of each distinct item, most frequent first: entry r - 1 is the count of rank r.

    `items` may be a 1-D tensor of token ids or any iterable of hashable items (e.g. words).
    Items that never occur are left out (a vocabulary usually has some).
    """
    if isinstance(items, torch.Tensor):
        counts = torch.bincount(items.reshape(-1).long())
        counts = counts[counts > 0]
    else:
        counts = torch.tensor(list(Counter(items).values()), dtype=torch.long)
    if counts.numel() == 0:
        raise DataError("rank_frequency needs at least one item")
    return counts.sort(descending=True).values


@dataclass(frozen=True)
class ZipfFit:
    """log10(frequency) ≈ slope · log10(rank) + intercept, fitted over ranks lo..hi (inclusive).

    Zipf's law for words says slope ≈ -1. r2 is the share of variance of log10(frequency) the line
    explains in that range (1: a perfect straight line on log-log axes).
    """

    slope: float
    intercept: float
    r2: float
    lo: int
    hi: int

    def predict(self, ranks: torch.Tensor) -> torch.Tensor:
        return 10 ** (self.slope * torch.log10(ranks.double()) + self.intercept)


def zipf_fit(counts: torch.Tensor, lo: int = 10, hi: int | None = None) -> ZipfFit:
    """Least-squares line through (log10 rank, log10 count) for ranks lo..hi.

    The default range skips the 9 most frequent items (a handful of very common symbols bend the
    head of the curve) and stops at half the distinct items (the tail is made of items seen once
    or twice, whose counts are integers and form flat steps).
    """
    counts = counts.double()
    n = counts.numel()
    hi = max(lo + 1, n // 2) if hi is None else hi
    if not 1 <= lo < hi <= n:
        raise DataError(f"zipf_fit needs 1 <= lo < hi <= {n} (number of distinct items), got lo={lo}, hi={hi}")
    x = torch.log10(torch.arange(lo, hi + 1, dtype=torch.float64))
    y = torch.log10(counts[lo - 1 : hi])
    design = torch.stack([x, torch.ones_like(x)], dim=1)  # (N, 2)
    solution = torch.linalg.lstsq(design, y[:, None]).solution.flatten()
    slope, intercept = float(solution[0]), float(solution[1])
    residual = y - (slope * x + intercept)
    total = ((y - y.mean()) ** 2).sum()
    r2 = 1.0 - float((residual**2).sum() / total) if total > 0 else 1.0
    return ZipfFit(slope, intercept, r2, lo, hi)


def savings_per_added_token(rows: Sequence[Granularity]) -> list[float]:
    """For consecutive rows of a sweep (vocabulary growing): the share of the previous row's tokens
    saved, divided by the number of tokens added to the vocabulary. Shrinking values are diminishing
    returns: each new token is rarer than the ones before it, so it shortens the text less."""
    return [(1.0 - b.tokens / a.tokens) / (b.vocab_size - a.vocab_size) for a, b in pairwise(rows)]
