"""Memorization: does the model repeat its training data, and do its losses give that data away?

Three measurements, each compared with the same measurement on held-out text:

1. **Verbatim overlap.** Every n-gram (n consecutive tokens) of the training split goes into an index;
   a text's overlap at n is the share of its n-grams found there. Text the model writes is compared
   with validation text (whole modules the model never saw): natural text from the same source shares
   short n-grams with the training split too, so only overlap *above* that baseline is copying.
2. **Extraction.** Take a prompt of P tokens from a document, let the model continue greedily for S
   tokens, and count how often it writes exactly the S tokens that really followed. Prompts from the
   training split against prompts from the validation split: the difference is what the model recalls
   rather than predicts (Carlini et al. 2021, "Extracting Training Data from Large Language Models").
3. **Membership inference.** A model's loss is lower on text it trained on. Score each window of text
   by its negative loss and ask how well that score separates training windows from validation
   windows: the ROC curve and the area under it (AUC; 0.5 = no signal, 1 = perfect separation).

The index stores a 64-bit hash of each n-gram, not the n-gram itself: a sorted NumPy array of hashes
makes a lookup of a million n-grams take milliseconds. Two different n-grams share a hash with
probability about 2**-64 per pair, so over a million n-grams the chance of any false match is about
(10**6)**2 / 2**64 ≈ 5e-8: negligible, and the tests compare the index with exact Python sets.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from roots_course.errors import ConfigError
from roots_course.core.generate import process_logits
from roots_course.core.modes import evaluating

_MULTIPLIER = np.uint64(0x9E3779B97F4A7C15)  # an odd 64-bit constant: multiplication by it is invertible mod 2**64


def _as_array(ids: Sequence[int] | Tensor | np.ndarray) -> np.ndarray:
    if isinstance(ids, Tensor):
        ids = ids.detach().cpu().numpy()
    array = np.asarray(ids, dtype=np.int64)
    if array.ndim != 1:
        raise ConfigError(f"token ids must be one sequence (1-D), got shape {array.shape}")
    return array


def ngram_hashes(ids: Sequence[int] | Tensor | np.ndarray, n: int) -> np.ndarray:
    """The hash of every n-gram of ``ids``: (L - n + 1,) uint64, in order (empty when L < n).

    h = (...((t0 + 1)·M + t1 + 1)·M + ...) + t(n-1) + 1, mod 2**64: a polynomial in the token ids,
    computed for all positions at once with n vectorised steps (NumPy integers wrap around mod 2**64).
    """
    if n < 1:
        raise ConfigError(f"n must be a positive integer, got {n}")
    array = _as_array(ids).astype(np.uint64) + np.uint64(1)  # + 1: token 0 still changes the hash
    count = len(array) - n + 1
    if count <= 0:
        return np.zeros(0, dtype=np.uint64)
    h = np.zeros(count, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for k in range(n):
            h = h * _MULTIPLIER + array[k : k + count]
    return h


class NgramIndex:
    """The set of n-grams of a token sequence (hashed), for "does this n-gram occur in it?" queries."""

    def __init__(self, ids: Sequence[int] | Tensor | np.ndarray, n: int) -> None:
        hashes = ngram_hashes(ids, n)
        self.n = n
        self.positions = len(hashes)  # n-grams in the indexed text, repeats included
        self.hashes = np.unique(hashes)  # sorted, distinct

    def __len__(self) -> int:
        """Distinct n-grams in the index."""
        return len(self.hashes)

    def contains(self, ids: Sequence[int] | Tensor | np.ndarray) -> np.ndarray:
        """(L - n + 1,) bool: whether each n-gram of ``ids`` occurs in the indexed text."""
        query = ngram_hashes(ids, self.n)
        if not len(self.hashes) or not len(query):
            return np.zeros(len(query), dtype=bool)
        where = np.searchsorted(self.hashes, query).clip(max=len(self.hashes) - 1)
        return self.hashes[where] == query

    def counts(self, ids: Sequence[int] | Tensor | np.ndarray) -> tuple[int, int]:
        """(n-grams of ``ids`` found in the index, n-grams of ``ids``)."""
        found = self.contains(ids)
        return int(found.sum()), len(found)


class TrainingIndex:
    """One NgramIndex per n, over the same text (the training split)."""

    def __init__(self, ids: Sequence[int] | Tensor | np.ndarray, sizes: Sequence[int]) -> None:
        array = _as_array(ids)
        self.tokens = len(array)
        self.indexes = {n: NgramIndex(array, n) for n in sorted(set(sizes))}

    @property
    def sizes(self) -> list[int]:
        return list(self.indexes)

    def overlap(self, sequences: Sequence[Sequence[int] | Tensor]) -> dict[int, float]:
        """n -> share of all n-grams of ``sequences`` found in the index (pooled over sequences; an
        n-gram never spans two sequences). NaN for an n longer than every sequence."""
        out = {}
        for n, index in self.indexes.items():
            found = total = 0
            for seq in sequences:
                f, t = index.counts(seq)
                found, total = found + f, total + t
            out[n] = found / total if total else float("nan")
        return out

    def longest_match(self, ids: Sequence[int] | Tensor) -> np.ndarray:
        """(L,) for each position i, the largest indexed n such that ids[i : i + n] occurs in the
        training text (0 when not even the smallest indexed n does)."""
        array = _as_array(ids)
        best = np.zeros(len(array), dtype=np.int64)
        for n, index in self.indexes.items():
            found = index.contains(array)
            best[: len(found)][found] = n
        return best


def shares_ngram_with(index: NgramIndex, windows: Tensor | Sequence[Sequence[int]]) -> np.ndarray:
    """(N,) bool: whether each window holds at least one n-gram (n = ``index.n``) of the indexed text.

    Cross-split duplication: a held-out window that shares a long n-gram with the training split is not
    unseen text, so it is dropped from the non-members of a membership test."""
    return np.array([bool(index.contains(w).any()) for w in windows], dtype=bool)


def duplicated_spans(index: NgramIndex, ids: Sequence[int] | Tensor | np.ndarray) -> list[tuple[int, int]]:
    """(start, length in tokens) of every maximal stretch of ``ids`` covered by n-grams of the indexed
    text, longest first: k consecutive n-grams found make one stretch of k + n - 1 tokens."""
    found = index.contains(ids).astype(np.int8)  # (L - n + 1,)
    edges = np.diff(np.concatenate([[0], found, [0]]))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)  # runs of found n-grams
    spans = [(int(a), int(b - a) + index.n - 1) for a, b in zip(starts, ends)]
    return sorted(spans, key=lambda span: (-span[1], span[0]))


def ngrams(ids: Sequence[int], n: int) -> list[tuple[int, ...]]:
    """The n-grams of a sequence as tuples, in order (the plain-Python definition)."""
    return [tuple(ids[i : i + n]) for i in range(len(ids) - n + 1)]


def ngram_overlap(candidate: Sequence[int], reference: Sequence[int], n: int) -> float:
    """Share of the n-grams of ``candidate`` (counted with repeats) that occur anywhere in
    ``reference``; 0.0 when ``candidate`` has no n-gram. Plain Python: the definition the index
    implements, and the reference solution of an exercise."""
    grams = ngrams(list(candidate), n)
    if not grams:
        return 0.0
    known = set(ngrams(list(reference), n))
    return sum(g in known for g in grams) / len(grams)


# ---------------------------------------------------------------------------------------------
# Windows of text, continuations, losses
# ---------------------------------------------------------------------------------------------


def sample_windows(tokens: Tensor, length: int, count: int, generator: torch.Generator) -> Tensor:
    """``count`` windows of ``length`` consecutive tokens at random starts: (count, length) int64.

    Windows may overlap each other; each lies wholly inside ``tokens``.
    """
    tokens = torch.as_tensor(tokens).long().flatten()
    if tokens.numel() < length:
        raise ConfigError(f"{tokens.numel()} tokens cannot hold a window of {length}")
    starts = torch.randint(tokens.numel() - length + 1, (count,), generator=generator)  # (count,)
    return tokens[starts[:, None] + torch.arange(length)]  # (count, length)


def continue_batch(model, prompts: Tensor, steps: int, *, greedy: bool = True, temperature: float = 1.0,
                   top_k: int | None = None, generator: torch.Generator | None = None,
                   batch_size: int = 128) -> tuple[Tensor, Tensor]:
    """Continue each row of ``prompts`` (B, P) by ``steps`` tokens with a KV cache.

    Returns (tokens (B, steps), probs (B, steps)): the tokens written and the probability the model
    gave each of them (under its own distribution, before temperature or top-k). All rows have the
    same length, so a batch needs no padding; P + steps must fit in the model's window.
    """
    if prompts.dim() != 2:
        raise ConfigError(f"prompts must be (B, P), got shape {tuple(prompts.shape)}")
    B, P = prompts.shape
    if P + steps > model.config.block_size:
        raise ConfigError(f"prompt {P} + {steps} new tokens exceed the window of {model.config.block_size} tokens")
    device = model.tok_emb.weight.device
    out_tokens, out_probs = [], []
    with evaluating(model):
        for start in range(0, B, batch_size):
            chunk = prompts[start : start + batch_size].to(device)  # (b, P)
            cache = model.make_cache(chunk.size(0), max_len=P + steps)
            logits = model(chunk, cache=cache).logits[:, -1].float()  # (b, V)
            tokens, probs = [], []
            for step in range(steps):
                p = logits.softmax(dim=-1)  # (b, V)
                if greedy:
                    token = logits.argmax(dim=-1)  # (b,)
                else:
                    shaped = process_logits(logits, temperature=temperature, top_k=top_k)
                    token = torch.multinomial(shaped.softmax(dim=-1).cpu(), 1, generator=generator)[:, 0].to(device)
                tokens.append(token)
                probs.append(p.gather(1, token[:, None])[:, 0])
                if step + 1 < steps:
                    logits = model(token[:, None], cache=cache).logits[:, -1].float()
            out_tokens.append(torch.stack(tokens, dim=1).cpu())  # (b, steps)
            out_probs.append(torch.stack(probs, dim=1).cpu())
    return torch.cat(out_tokens), torch.cat(out_probs)


def window_losses(model, windows: Tensor, batch_size: int = 64) -> Tensor:
    """Mean next-token loss (nats) of each window (N, T + 1): inputs are the first T tokens, targets
    the last T. Returns (N,) float64. Windows longer than block_size + 1 are refused."""
    N, L = windows.shape
    if L - 1 > model.config.block_size:
        raise ConfigError(f"windows of {L} tokens do not fit a window of {model.config.block_size} + 1")
    device = model.tok_emb.weight.device
    out = torch.zeros(N, dtype=torch.float64)
    with evaluating(model):
        for start in range(0, N, batch_size):
            chunk = windows[start : start + batch_size].to(device)  # (b, T + 1)
            logits = model(chunk[:, :-1]).logits.float()  # (b, T, V)
            nll = F.cross_entropy(logits.transpose(1, 2), chunk[:, 1:], reduction="none")  # (b, T)
            out[start : start + chunk.size(0)] = nll.mean(dim=1).double().cpu()
    return out


# ---------------------------------------------------------------------------------------------
# Extraction
# ---------------------------------------------------------------------------------------------


@dataclass
class Extraction:
    """Greedy continuations of prompts cut from a token stream, against what really followed."""

    prompts: Tensor  # (N, P)
    truth: Tensor  # (N, S): the tokens that followed each prompt in the text
    written: Tensor  # (N, S): what the model wrote
    probs: Tensor  # (N, S): the model's probability of each token it wrote

    @property
    def matched(self) -> Tensor:
        """(N,) how many leading tokens of each continuation equal the truth."""
        same = (self.written == self.truth).long()  # (N, S)
        return same.cumprod(dim=1).sum(dim=1)

    @property
    def exact(self) -> Tensor:
        """(N,) bool: the whole continuation equals the truth."""
        return (self.written == self.truth).all(dim=1)

    @property
    def exact_rate(self) -> float:
        return float(self.exact.float().mean())

    @property
    def token_accuracy(self) -> float:
        """Share of continuation tokens equal to the truth at the same position."""
        return float((self.written == self.truth).float().mean())


def extract(model, tokens: Tensor, prompt_tokens: int, continuation_tokens: int, count: int,
            generator: torch.Generator) -> Extraction:
    """``count`` windows of ``prompt_tokens + continuation_tokens`` from ``tokens``; the model continues
    the first part greedily and is compared with the second."""
    windows = sample_windows(tokens, prompt_tokens + continuation_tokens, count, generator)  # (N, P + S)
    prompts, truth = windows[:, :prompt_tokens], windows[:, prompt_tokens:]
    written, probs = continue_batch(model, prompts, continuation_tokens)
    return Extraction(prompts, truth, written, probs)


# ---------------------------------------------------------------------------------------------
# ROC curve and AUC, written out
# ---------------------------------------------------------------------------------------------


def _scores(values: Sequence[float] | Tensor | np.ndarray, what: str) -> np.ndarray:
    array = np.asarray(values.detach().cpu() if isinstance(values, Tensor) else values, dtype=np.float64).ravel()
    if not len(array):
        raise ConfigError(f"{what} is empty: a ROC curve needs scores of both classes")
    if not np.isfinite(array).all():
        raise ConfigError(f"{what} holds NaN or infinite scores")
    return array


def average_ranks(values: np.ndarray) -> np.ndarray:
    """Rank of each value from 1 (smallest); tied values share the mean of the ranks they span."""
    order = np.argsort(values, kind="mergesort")
    ranks = np.empty(len(values), dtype=np.float64)
    sorted_values = values[order]
    start = 0
    while start < len(values):  # walk over runs of equal values
        end = start + 1
        while end < len(values) and sorted_values[end] == sorted_values[start]:
            end += 1
        ranks[order[start:end]] = (start + 1 + end) / 2  # mean of the ranks start+1 .. end
        start = end
    return ranks


def auc(positive: Sequence[float] | Tensor, negative: Sequence[float] | Tensor) -> float:
    """Area under the ROC curve: the probability that a random positive scores higher than a random
    negative, ties counting one half (the Mann–Whitney U statistic divided by n_pos · n_neg).

    From ranks: U = (sum of the positives' ranks) − n_pos (n_pos + 1) / 2, in O(n log n).
    """
    pos, neg = _scores(positive, "positive"), _scores(negative, "negative")
    ranks = average_ranks(np.concatenate([pos, neg]))
    u = ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2
    return float(u / (len(pos) * len(neg)))


def roc_curve(positive: Sequence[float] | Tensor, negative: Sequence[float] | Tensor
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(false-positive rates, true-positive rates, thresholds) of the rule "positive if score >= t",
    for every distinct score t from the highest down, starting at (0, 0) (threshold +inf) and ending
    at (1, 1). Its trapezoid area equals ``auc``."""
    pos, neg = _scores(positive, "positive"), _scores(negative, "negative")
    thresholds = np.unique(np.concatenate([pos, neg]))[::-1]  # distinct scores, high to low
    pos_sorted, neg_sorted = np.sort(pos), np.sort(neg)
    # scores >= t: count = n - (number of scores < t)
    tp = len(pos) - np.searchsorted(pos_sorted, thresholds, side="left")
    fp = len(neg) - np.searchsorted(neg_sorted, thresholds, side="left")
    tpr = np.concatenate([[0.0], tp / len(pos)])
    fpr = np.concatenate([[0.0], fp / len(neg)])
    return fpr, tpr, np.concatenate([[np.inf], thresholds])


def area_under(fpr: np.ndarray, tpr: np.ndarray) -> float:
    """The area under a curve given by points (fpr, tpr), by the trapezoid rule."""
    fpr, tpr = np.asarray(fpr, dtype=np.float64), np.asarray(tpr, dtype=np.float64)
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))


def tpr_at_fpr(positive: Sequence[float] | Tensor, negative: Sequence[float] | Tensor, fpr: float) -> float:
    """The highest true-positive rate of a threshold whose false-positive rate is at most ``fpr``: how
    many members an attacker finds while wrongly accusing at most that share of non-members."""
    rates_fp, rates_tp, _ = roc_curve(positive, negative)
    return float(rates_tp[rates_fp <= fpr + 1e-12].max())
