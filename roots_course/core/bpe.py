"""Byte-level byte-pair encoding (BPE), written from scratch to be read.

This is the teaching version. The library version is the Hugging Face `tokenizers` BPE trainer with its
ByteLevel pre-tokenizer, wrapped as `roots_course.core.fast_bpe.FastBPETokenizer`; use that one when
speed matters. tests/test_bpe.py checks this one against it: the same pre-tokenisation
(test_pre_tokenization_matches_the_library), the same merges when ties are broken the library's way
(test_same_merges_as_the_library_when_ties_are_broken_its_way), and with our own tie rule a difference
only at a tie (test_default_order_differs_from_the_library_only_at_a_tie).

The idea in four lines
----------------------
1. Text is UTF-8 bytes, so 256 tokens (ids 0..255, one per byte value) can spell any text.
2. Count every pair of neighbouring tokens in the training text; the most frequent pair becomes a
   new token (ids 256, 257, ... in learning order) and every occurrence of it is replaced.
3. Repeat until the vocabulary has `vocab_size` tokens. The list of merges *is* the tokenizer.
4. To encode new text, replay the merges in the order they were learned; to decode, concatenate
   the bytes of each token.

Details that matter
-------------------
* Pre-tokenisation. Before counting, the text is cut into "words" by a GPT-2-style regular
  expression: an optional space followed by letters, or by digits, or by other symbols; runs of
  whitespace; English contractions ('s, 't, 're, 've, 'm, 'll, 'd). Merges never cross a word
  boundary, so no token mixes a word with the following punctuation ("dog." stays "dog" + ".").
  With the `regex` module installed we use the exact GPT-2 pattern (Unicode classes \\p{L}, \\p{N});
  without it a `re` pattern that treats letters and decimal digits the same way, except that
  non-decimal numerals such as '½' or '²' count as letters.
* Speed. A text has far fewer distinct words than words, so we count each distinct word once, with
  its frequency. After a merge only the words containing the merged pair change: we subtract their
  old pairs and add their new ones instead of recounting everything, and keep the candidate pairs
  in a heap so the most frequent one is found without scanning them all.
* Ties. When several pairs share the highest count, the pair with the smaller (left id, right id)
  wins: bytes compare by value, and a merged token ranks after all bytes, in learning order.
  `tie_break_order` can rank the 256 byte tokens differently.
* Decoding a slice of ids may cut a multi-byte character in half (e.g. only the first byte of "é"),
  so bytes are decoded with errors="replace": the broken piece shows as U+FFFD instead of raising.
  Decoding the ids of a whole text always gives the text back exactly.

Why `FastBPETokenizer` (the `tokenizers` library) can learn different merges
-----------------------------------------------------------------------------
Given the same text, both pre-tokenise identically, count identically, merge left to right and
always pick a pair with the highest count. They differ in one rule only: how they break ties.
The library also prefers the smallest (left id, right id), but in *its* ids, where the 256 byte
tokens are numbered by their stand-in characters (`fast_bpe.byte_level_alphabet`): the visible
bytes '!'..'~' come first and the space byte comes after every visible Latin-1 byte. So the two
agree on every merge until the first tie that the two orders resolve differently; after that the
lists drift apart. Training ours with `tie_break_order=library_byte_order()` reproduces the
library's merges exactly (tests/test_bpe.py checks both statements; on 2 MB of Python documentation
they agree on all 16,599 merges the text supports). One further rule differs but did not trigger in
that run: if a merge produced a byte string already in the vocabulary, the library would reuse the
existing id, while we give every merge a new id.
"""

from __future__ import annotations

import heapq
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

from roots_course.errors import CheckpointError, ConfigError, DataError
from roots_course.core.fast_bpe import byte_level_alphabet
from roots_course.core.tokenizer import FORMAT_VERSION, Tokenizer, as_texts

# --------------------------------------------------------------------------------------------------
# Pre-tokenisation
# --------------------------------------------------------------------------------------------------

# contractions | letters | digits | other symbols | whitespace not followed by a word | whitespace
GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
# The same with the standard `re` module: [^\W\d_] is "word characters that are not digits or _"
# (letters), \d is decimal digits, and (?:[^\s\w]|_) is "neither space nor word character, or _".
RE_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?[^\W\d_]+| ?\d+| ?(?:[^\s\w]|_)+|\s+(?!\S)|\s+"""

try:
    import regex as _regex

    SPLIT_REGEX = _regex.compile(GPT2_PATTERN)
except ImportError:  # pragma: no cover - `regex` is installed with the course environment
    SPLIT_REGEX = re.compile(RE_PATTERN)


def pre_tokenize(text: str) -> list[str]:
    """Cut text into the words BPE works inside, e.g. "Hi there!!" -> ["Hi", " there", "!!"].
    Joining the pieces gives `text` back exactly."""
    return SPLIT_REGEX.findall(text)


# --------------------------------------------------------------------------------------------------
# The core operation
# --------------------------------------------------------------------------------------------------

Pair = tuple[int, int]


def merge_pair(ids: list[int], pair: Pair, new_id: int) -> list[int]:
    """Replace every occurrence of `pair` in `ids` by `new_id`, scanning left to right.
    merge_pair([97, 97, 97], (97, 97), 256) == [256, 97]."""
    left, right = pair
    out: list[int] = []
    i, n = 0, len(ids)
    while i < n:
        if ids[i] == left and i + 1 < n and ids[i + 1] == right:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


def library_byte_order() -> list[int]:
    """The 256 byte values in the order the `tokenizers` library numbers its byte tokens
    (sorted by stand-in character). Pass it as `tie_break_order` to break ties like the library."""
    alphabet = byte_level_alphabet()
    return sorted(range(256), key=lambda b: alphabet[b])


# --------------------------------------------------------------------------------------------------
# The tokenizer
# --------------------------------------------------------------------------------------------------


class ByteBPETokenizer(Tokenizer):
    """Byte-level BPE: ids 0..255 are bytes, id 256 + k is the k-th learned merge.

    >>> tok = ByteBPETokenizer.train("aaabdaaabac", vocab_size=259)
    >>> tok.merges                      # 'a'+'a', then 'a'+'b', then 'aa'+'ab'
    [(97, 97), (97, 98), (256, 257)]
    >>> tok.encode("aaabdaaabac")       # 'aaab' 'd' 'aaab' 'a' 'c'
    [258, 100, 258, 97, 99]
    """

    name = "bpe"
    _CACHE_LIMIT = 200_000  # distinct words remembered by encode

    def __init__(
        self, merges: Sequence[Pair] = (), merge_counts: Sequence[int] | None = None
    ) -> None:
        """Build from a merge list; `ByteBPETokenizer()` is the plain byte tokenizer (256 ids)."""
        self.merges: list[Pair] = []
        self._vocab: list[bytes] = [bytes([b]) for b in range(256)]  # id -> bytes
        for k, pair in enumerate(merges):
            left, right = int(pair[0]), int(pair[1])
            if not (0 <= left < 256 + k and 0 <= right < 256 + k):
                raise ConfigError(
                    f"merge {k} {pair!r} uses an id that does not exist yet (ids < {256 + k})"
                )
            self.merges.append((left, right))
            self._vocab.append(self._vocab[left] + self._vocab[right])
        self.merge_counts: list[int] = list(merge_counts) if merge_counts is not None else []
        self._rank: dict[Pair, int] = {pair: k for k, pair in enumerate(self.merges)}
        self._cache: dict[str, list[int]] = {}

    # Training -----------------------------------------------------------------------------------

    @classmethod
    def train(
        cls,
        text: str | Iterable[str],
        vocab_size: int,
        verbose: bool = False,
        *,
        min_count: int = 2,
        tie_break_order: Sequence[int] | None = None,
    ) -> ByteBPETokenizer:
        """Learn merges from `text` (a str or an iterable of documents) until there are
        `vocab_size` tokens, or until no pair occurs at least `min_count` times.

        `tie_break_order`: the 256 byte values, most preferred first, used only to break ties
        between equally frequent pairs (default: by byte value). `verbose` prints every merge.
        """
        if vocab_size < 256:
            raise ConfigError(
                f"vocab_size must be at least 256 (one token per byte), got {vocab_size}"
            )
        # 1. Distinct words and how often each occurs.
        word_freq: Counter[str] = Counter()
        for doc in as_texts(text):
            word_freq.update(pre_tokenize(doc))
        words = [list(w.encode("utf-8")) for w in word_freq]  # each word as a list of token ids
        freqs = list(word_freq.values())

        # Rank of a token for tie-breaking: bytes by `tie_break_order`, merged tokens by their id.
        byte_rank = list(range(256))
        if tie_break_order is not None:
            if sorted(tie_break_order) != list(range(256)):
                raise ConfigError("tie_break_order must list each byte value 0..255 exactly once")
            for position, b in enumerate(tie_break_order):
                byte_rank[b] = position

        def heap_entry(pair: Pair, count: int) -> tuple[int, int, int, Pair]:
            # heapq pops the smallest tuple: highest count first, then the smallest ranks.
            left, right = pair
            return (-count, byte_rank[left] if left < 256 else left,
                    byte_rank[right] if right < 256 else right, pair)

        # 2. Count every adjacent pair once per distinct word, weighted by the word's frequency,
        #    and remember which words contain each pair.
        pair_count: Counter[Pair] = Counter()
        words_with: dict[Pair, set[int]] = {}
        for w, (ids, freq) in enumerate(zip(words, freqs)):
            for pair in zip(ids, ids[1:]):
                pair_count[pair] += freq
                words_with.setdefault(pair, set()).add(w)
        heap = [heap_entry(pair, count) for pair, count in pair_count.items()]
        heapq.heapify(heap)

        # 3. Merge the most frequent pair, update the counts of the words it touched, repeat.
        merges: list[Pair] = []
        counts: list[int] = []
        vocab = [bytes([b]) for b in range(256)]  # only for printing
        while 256 + len(merges) < vocab_size and heap:
            neg_count, _, _, pair = heapq.heappop(heap)
            count = pair_count.get(pair, 0)
            if -neg_count != count:
                # Stale entry: the pair's count fell since it was pushed. Re-queue its true count.
                if count > 0:
                    heapq.heappush(heap, heap_entry(pair, count))
                continue
            if count < min_count:
                break
            new_id = 256 + len(merges)
            merges.append(pair)
            counts.append(count)
            if verbose:
                vocab.append(vocab[pair[0]] + vocab[pair[1]])
                left, right = vocab[pair[0]], vocab[pair[1]]
                print(f"merge {len(merges)}/{vocab_size - 256}: {left!r} + {right!r} -> {new_id} "
                      f"{vocab[new_id]!r} (seen {count} times)")

            change: Counter[Pair] = Counter()
            for w in words_with.pop(pair):
                old = words[w]
                new = merge_pair(old, pair, new_id)
                if len(new) == len(old):
                    continue  # an earlier merge already removed the pair from this word
                words[w] = new
                freq = freqs[w]
                for p in zip(old, old[1:]):
                    change[p] -= freq
                for p in zip(new, new[1:]):
                    change[p] += freq
                    if new_id in p:
                        words_with.setdefault(p, set()).add(w)
            for p, delta in change.items():
                if delta == 0:
                    continue
                total = pair_count[p] + delta
                if total > 0:
                    pair_count[p] = total
                else:
                    del pair_count[p]
                if delta > 0:  # a grown count needs a new heap entry; shrunk ones are fixed lazily
                    heapq.heappush(heap, heap_entry(p, total))
        return cls(merges, counts)

    # Using it -----------------------------------------------------------------------------------

    @property
    def vocab_size(self) -> int:
        return 256 + len(self.merges)

    def token_bytes(self, token_id: int) -> bytes:
        self._check_ids([token_id])
        return self._vocab[token_id]

    def byte_merges(self) -> list[tuple[bytes, bytes]]:
        """The learned merges in order, each as (left bytes, right bytes)."""
        return [(self._vocab[a], self._vocab[b]) for a, b in self.merges]

    def _encode_word(self, word: bytes) -> list[int]:
        """Apply the merges to one pre-token word: always the earliest-learned pair present first,
        which gives the same result as replaying every merge in learning order."""
        ids = list(word)
        rank = self._rank
        while len(ids) >= 2:
            best = min(zip(ids, ids[1:]), key=lambda p: rank.get(p, len(rank)))
            if best not in rank:
                break  # no learned pair left in this word
            ids = merge_pair(ids, best, 256 + rank[best])
        return ids

    def encode(self, text: str) -> list[int]:
        ids: list[int] = []
        cache = self._cache
        for word in pre_tokenize(text):
            word_ids = cache.get(word)
            if word_ids is None:
                try:
                    word_bytes = word.encode("utf-8")
                except UnicodeEncodeError as err:
                    raise DataError(
                        f"text is not valid Unicode (lone surrogate in {word!r})"
                    ) from err
                word_ids = self._encode_word(word_bytes)
                if len(cache) >= self._CACHE_LIMIT:
                    cache.clear()
                cache[word] = word_ids
            ids.extend(word_ids)
        return ids

    def decode(self, ids: Sequence[int]) -> str:
        self._check_ids(ids)
        vocab = self._vocab
        # errors="replace": a slice of ids may end in the middle of a multi-byte character.
        return b"".join(vocab[i] for i in ids).decode("utf-8", errors="replace")

    # Saving -------------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": self.name,
            "format_version": FORMAT_VERSION,
            "pre_tokenizer": "gpt2",
            "merges": [list(pair) for pair in self.merges],
            "merge_counts": self.merge_counts,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ByteBPETokenizer:
        cls._check_type(data)
        merges = data.get("merges")
        def is_pair(m: Any) -> bool:
            return isinstance(m, list) and len(m) == 2 and all(type(i) is int for i in m)

        if not isinstance(merges, list) or not all(is_pair(m) for m in merges):
            raise CheckpointError("bpe tokenizer needs 'merges': a list of [left_id, right_id]")
        try:
            return cls([tuple(m) for m in merges], data.get("merge_counts"))
        except ConfigError as err:
            raise CheckpointError(str(err)) from err
