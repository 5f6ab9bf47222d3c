"""Chapter 1's exercises: reference solutions and the cases they are checked on.

Try the exercises in the notebook before reading on: the check cell compares your function with the
reference below on every case (``roots_course.exercises.check``).
"""

from __future__ import annotations

import math
from collections import Counter

import torch
from torch import Tensor

from roots_course.course.exercises import Exercise, close
from roots_course.representation.worked_example import VECTORS, WORDS

# --- 1. one step of byte-pair encoding ---------------------------------------------------------


def bpe_step(ids: list[int], new_id: int) -> tuple[tuple[int, int], list[int]]:
    """The most frequent adjacent pair of `ids` (ties: the smallest pair), and `ids` with every
    occurrence of it, scanned left to right, replaced by `new_id`."""
    counts = Counter(zip(ids, ids[1:]))  # noqa: RUF007 - the idiom the exercise's hint suggests
    best = max(counts.values())
    pair = min(p for p, c in counts.items() if c == best)
    out, i = [], 0
    while i < len(ids):
        if i + 1 < len(ids) and (ids[i], ids[i + 1]) == pair:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return pair, out


def _bpe_cases() -> list[tuple]:
    g = torch.Generator().manual_seed(1)
    random_ids = [torch.randint(0, 4, (n,), generator=g).tolist() for n in (6, 15, 40)]
    return [
        (list(b"aaabdaaabac"), 256),
        (list(b"aaaa"), 256),  # overlapping occurrences: "aaaa" -> two merges, not three
        (list(b"abab"), 300),
        ([5, 1, 5, 1, 2, 2], 7),  # (5, 1) occurs twice, every other pair once
        ([3, 2, 3, 2, 1, 0, 1, 0], 9),  # a tie: (1, 0) and (3, 2) twice each; the smaller (1, 0) wins
        *[(ids, 99) for ids in random_ids],
    ]


# --- 2. the sinusoidal position table ----------------------------------------------------------


def sinusoidal_table(T: int, C: int) -> Tensor:
    """(T, C): column 2i is sin(p / 10000^(2i/C)), column 2i+1 is cos of the same angle."""
    p = torch.arange(T, dtype=torch.float32)[:, None]  # (T, 1)
    i = torch.arange(0, C, 2, dtype=torch.float32)  # (C/2,) the even column indices 2i
    angle = p / 10000 ** (i / C)  # (T, C/2)
    table = torch.empty(T, C)
    table[:, 0::2] = torch.sin(angle)
    table[:, 1::2] = torch.cos(angle)
    return table


def _sinusoidal_cases() -> list[tuple]:
    return [(1, 2), (8, 4), (16, 8), (64, 32)]


# --- 3. one query's attention ------------------------------------------------------------------


def attention_row(query: Tensor, keys: Tensor, values: Tensor) -> Tensor:
    """softmax(q · Kᵀ / √d) V for one query q (d,), keys (N, d), values (N, d_v) -> (d_v,)."""
    scores = keys @ query / math.sqrt(query.numel())  # (N,)
    weights = torch.softmax(scores, dim=0)  # (N,)
    return weights @ values  # (d_v,)


def _attention_cases() -> list[tuple]:
    g = torch.Generator().manual_seed(3)
    sat = VECTORS[WORDS.index("sat")]
    return [
        (sat, VECTORS, VECTORS),  # the worked example, done right
        *[(torch.randn(d, generator=g, dtype=torch.float64), torch.randn(n, d, generator=g, dtype=torch.float64),
           torch.randn(n, 5, generator=g, dtype=torch.float64)) for d, n in ((4, 3), (8, 10), (16, 1))],
    ]


# --- 4. the causal mask ------------------------------------------------------------------------


def causal_weights(scores: Tensor) -> Tensor:
    """Attention weights (T, T) from raw scores (T, T): position i may only look at positions
    j <= i; each row is a softmax over what it may see."""
    T = scores.size(-1)
    future = torch.ones(T, T, dtype=torch.bool).triu(diagonal=1)  # True above the diagonal
    return torch.softmax(scores.masked_fill(future, float("-inf")), dim=-1)


def _causal_cases() -> list[tuple]:
    g = torch.Generator().manual_seed(4)
    return [(torch.zeros(3, 3),), *[(torch.randn(T, T, generator=g),) for T in (1, 5, 12)]]


EXERCISES = {
    "bpe_step": Exercise("bpe_step", bpe_step, _bpe_cases,
                         hint="count pairs with collections.Counter(zip(ids, ids[1:])); after a merge, jump "
                              "two places so that overlapping pairs are not merged twice"),
    "sinusoidal_table": Exercise("sinusoidal_table", sinusoidal_table, _sinusoidal_cases, close(atol=1e-4),
                                 hint="the angle of column pair i at position p is p / 10000 ** (2i / C)"),
    "attention_row": Exercise("attention_row", attention_row, _attention_cases,
                              hint="scores = keys @ query / sqrt(d); weights = softmax(scores); return weights @ values"),
    "causal_weights": Exercise("causal_weights", causal_weights, _causal_cases,
                               hint="fill the scores above the diagonal with -inf before the softmax"),
}
