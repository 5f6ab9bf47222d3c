"""Scoring answers exactly, and saying how sure a score is.

Three measurements, each with a definition you can check by hand:

- **exact match**: 1 when the prediction equals the reference after trimming surrounding whitespace,
  else 0. Strict on purpose: "三百零五" and "三百五" are different numbers.
- **character error rate (CER)**: the edit (Levenshtein) distance between prediction and reference,
  divided by the reference's length in characters. It gives partial credit and can exceed 1 when the
  prediction is much longer than the reference. Over a test set we report the *pooled* rate,
  total edits ÷ total reference characters, so long references weigh more (the usual convention in
  speech and translation evaluation).
- **bootstrap confidence interval**: resample the test examples with replacement many times, recompute
  the score each time, and take the middle 95% of those scores (the percentile bootstrap; Efron &
  Tibshirani 1993, ch. 13). On 50 examples a score of 0.20 comes with an interval about ±0.11 wide: two
  systems whose intervals overlap that much are not shown to differ. The generator is seeded, so the
  interval is the same on every run.
- **exact (Clopper–Pearson) interval** of a rate k/n (exact match, execution accuracy): every p whose
  binomial test at level 1 − confidence would not reject k successes in n (Clopper & Pearson 1934).
  The bootstrap cannot do this at the edges: resampling 0 right answers out of 50 gives 0 every time,
  the interval [0, 0], as if the test set proved the model never succeeds. The exact interval for 0/50
  is [0, 0.071]: a true rate up to about 7% could well give no success in 50 tries.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache

import torch
from torch import Tensor

from roots_course.errors import ConfigError


def normalize(text: str) -> str:
    """What exact match compares: the text with surrounding whitespace removed."""
    return text.strip()


def exact_match(prediction: str, reference: str) -> float:
    """1.0 when the trimmed prediction equals the trimmed reference, else 0.0."""
    return float(normalize(prediction) == normalize(reference))


def edit_distance(a: Sequence, b: Sequence) -> int:
    """Levenshtein distance: the fewest insertions, deletions and substitutions turning a into b.

    Dynamic programming over one row at a time: row[j] holds the distance between the first i items
    of a and the first j items of b. O(len(a) · len(b)) time, O(len(b)) memory.
    """
    row = list(range(len(b) + 1))  # distance from the empty prefix of a: j insertions
    for i, item in enumerate(a, start=1):
        diagonal, row[0] = row[0], i  # i deletions reach the empty prefix of b
        for j, other in enumerate(b, start=1):
            diagonal, row[j] = row[j], min(row[j] + 1,  # delete a[i-1]
                                           row[j - 1] + 1,  # insert b[j-1]
                                           diagonal + (item != other))  # substitute (free if equal)
    return row[-1]


def character_error_rate(prediction: str, reference: str) -> float:
    """Edit distance in characters ÷ reference length (after trimming both). An empty reference gives
    0.0 for an empty prediction and 1.0 otherwise."""
    p, r = normalize(prediction), normalize(reference)
    if not r:
        return float(bool(p))
    return edit_distance(p, r) / len(r)


def pooled_cer(predictions: Sequence[str], references: Sequence[str]) -> float:
    """Total edits ÷ total reference characters over a test set."""
    edits = sum(edit_distance(normalize(p), normalize(r)) for p, r in zip(predictions, references, strict=True))
    chars = sum(len(normalize(r)) for r in references)
    return edits / max(chars, 1)


# ---------------------------------------------------------------------------------------------
# Bootstrap confidence intervals
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Interval:
    """A score on the whole test set and its bootstrap interval [low, high]."""

    value: float
    low: float
    high: float
    confidence: float
    n: int  # examples the score is computed on

    def __contains__(self, x: float) -> bool:
        return self.low <= x <= self.high

    def __str__(self) -> str:
        return f"{self.value:.3f} [{self.low:.3f}, {self.high:.3f}]"

    def to_dict(self) -> dict[str, float | int]:
        return {"value": self.value, "low": self.low, "high": self.high, "confidence": self.confidence, "n": self.n}


def mean_statistic(rows: Tensor) -> Tensor:
    """rows (R, N) -> (R,): the mean of each resample (the statistic of exact match or accuracy)."""
    return rows.mean(dim=-1)


def ratio_statistic(rows: Tensor) -> Tensor:
    """rows (R, N, 2) of (numerator, denominator) per example -> (R,): sum of numerators ÷ sum of
    denominators. With (edits, reference length) per example this is the pooled CER."""
    return rows[..., 0].sum(dim=-1) / rows[..., 1].sum(dim=-1).clamp_min(1e-12)


def bootstrap_ci(values: Sequence[float] | Tensor, *, statistic: Callable[[Tensor], Tensor] = mean_statistic,
                 n_resamples: int = 1000, confidence: float = 0.95, seed: int = 0,
                 generator: torch.Generator | None = None) -> Interval:
    """Percentile bootstrap interval of ``statistic`` over the examples in ``values``.

    values: (N,) per-example scores, or (N, k) per-example records (e.g. (edits, length) for CER).
    statistic: maps resampled data (R, N, ...) to (R,); it is also applied to the data itself for the
    point estimate. All resamples are drawn at once, (R, N) indices, from ``generator`` (or a fresh
    one seeded with ``seed``), so the same call always gives the same interval.
    """
    data = torch.as_tensor(values, dtype=torch.float64)
    if data.dim() == 0 or data.size(0) == 0:
        raise ConfigError("bootstrap_ci needs at least one example")
    if not 0 < confidence < 1:
        raise ConfigError(f"confidence must be between 0 and 1, got {confidence}")
    if n_resamples < 1:
        raise ConfigError(f"n_resamples must be a positive integer, got {n_resamples}")
    if generator is None:
        generator = torch.Generator().manual_seed(seed)
    n = data.size(0)
    index = torch.randint(n, (n_resamples, n), generator=generator)  # (R, N): example ids drawn with replacement
    scores = statistic(data[index])  # (R,)
    point = float(statistic(data[None])[0])
    tail = (1 - confidence) / 2
    low, high = torch.quantile(scores, torch.tensor([tail, 1 - tail], dtype=torch.float64)).tolist()
    return Interval(point, low, high, confidence, n)


def paired_difference_ci(a: Sequence[float] | Tensor, b: Sequence[float] | Tensor, *, n_resamples: int = 1000,
                         confidence: float = 0.95, seed: int = 0) -> Interval:
    """Interval of mean(a) − mean(b) when a and b score the *same* examples (paired bootstrap).

    Resampling the pairs together keeps what the two systems share (easy and hard examples), so this
    interval is narrower than one built from the two separate intervals. If it excludes 0, the
    difference is unlikely to be an accident of which examples were drawn.
    """
    a, b = torch.as_tensor(a, dtype=torch.float64), torch.as_tensor(b, dtype=torch.float64)
    if a.shape != b.shape:
        raise ConfigError(f"paired scores must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    return bootstrap_ci(a - b, n_resamples=n_resamples, confidence=confidence, seed=seed)


# ---------------------------------------------------------------------------------------------
# Exact intervals for rates
# ---------------------------------------------------------------------------------------------


def binomial_cdf(k: int, n: int, p: float) -> float:
    """P(X <= k) for X ~ Binomial(n, p), summed term by term in log space (exact up to rounding)."""
    if k < 0:
        return 0.0
    if k >= n:
        return 1.0
    if p <= 0.0:
        return 1.0
    if p >= 1.0:
        return 0.0
    log_p, log_q = math.log(p), math.log1p(-p)
    terms = [math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) + i * log_p + (n - i) * log_q
             for i in range(k + 1)]
    top = max(terms)
    return min(1.0, math.exp(top) * sum(math.exp(t - top) for t in terms))


def _solve_decreasing(f: Callable[[float], float], target: float, iterations: int = 80) -> float:
    """The p in [0, 1] where the decreasing function f(p) crosses target, by bisection (2^-80 wide)."""
    low, high = 0.0, 1.0
    for _ in range(iterations):
        middle = (low + high) / 2
        if f(middle) > target:
            low = middle
        else:
            high = middle
    return (low + high) / 2


@lru_cache(maxsize=4096)  # a pure function of three numbers; tables ask for the same ones often
def clopper_pearson(successes: int, n: int, confidence: float = 0.95) -> Interval:
    """Exact (Clopper–Pearson) interval of a rate from ``successes`` out of ``n`` trials.

    low: the p at which P(X >= k) = (1 − confidence)/2, 0 when k = 0;
    high: the p at which P(X <= k) = (1 − confidence)/2, 1 when k = n.
    Conservative: it covers the true rate at least ``confidence`` of the time, for every n and p.
    """
    if n < 1:
        raise ConfigError(f"clopper_pearson needs at least one trial, got n={n}")
    if not 0 <= successes <= n or int(successes) != successes:
        raise ConfigError(f"successes must be a whole number between 0 and n={n}, got {successes}")
    if not 0 < confidence < 1:
        raise ConfigError(f"confidence must be between 0 and 1, got {confidence}")
    k, tail = int(successes), (1 - confidence) / 2
    low = 0.0 if k == 0 else _solve_decreasing(lambda p: binomial_cdf(k - 1, n, p), 1 - tail)
    high = 1.0 if k == n else _solve_decreasing(lambda p: binomial_cdf(k, n, p), tail)
    return Interval(k / n, low, high, confidence, n)


def rate_ci(values: Sequence[float] | Tensor, confidence: float = 0.95) -> Interval:
    """The exact interval of the mean of per-example scores that are each 0 or 1 (a rate)."""
    data = torch.as_tensor(values, dtype=torch.float64).flatten()
    if data.numel() == 0:
        raise ConfigError("rate_ci needs at least one example")
    if not bool(((data == 0) | (data == 1)).all()):
        raise ConfigError("rate_ci needs scores that are each 0 or 1; use bootstrap_ci for other scores")
    return clopper_pearson(int(data.sum()), data.numel(), confidence)
