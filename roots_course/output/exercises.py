"""Chapter 3's exercises: reference solutions and the cases they are checked on.

Try the exercises in the notebook before reading on: the check cell compares your function with the
reference below on every case (``roots_course.exercises.check``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from roots_course.course.exercises import Exercise, close

# --- 1. nucleus (top-p) filtering ------------------------------------------------------------------


def top_p_filter(logits: Tensor, p: float) -> Tensor:
    """logits (V,) with every token outside the nucleus set to -inf. The nucleus is the smallest set
    of most probable tokens whose probabilities add up to at least p."""
    probs = torch.softmax(logits, dim=-1)
    order = torch.argsort(probs, descending=True)
    kept = torch.zeros_like(logits, dtype=torch.bool)
    total = 0.0
    for token in order.tolist():  # add tokens from the most probable down until the mass reaches p
        kept[token] = True
        total += float(probs[token])
        if total >= p:
            break
    return logits.masked_fill(~kept, float("-inf"))


def _top_p_cases() -> list[tuple]:
    g = torch.Generator().manual_seed(5)
    cases: list[tuple] = [(torch.tensor([2.0, 1.0, 0.5, -1.0]), 0.5), (torch.tensor([2.0, 1.0, 0.5, -1.0]), 0.95),
                          (torch.tensor([0.1, 3.0, 0.2]), 1.0)]
    for V, scale, p in ((10, 1.0, 0.9), (50, 3.0, 0.8), (200, 0.5, 0.9), (30, 5.0, 0.3)):
        cases.append((torch.randn(V, generator=g, dtype=torch.float64) * scale, p))
    return cases


# --- 2. the size of a KV cache ---------------------------------------------------------------------


def kv_cache_bytes(n_layer: int, n_embd: int, n_tokens: int, batch_size: int, bytes_per_value: int) -> int:
    """Bytes a KV cache holds for batch_size sequences of n_tokens tokens: every layer stores one key
    and one value vector of n_embd numbers per token."""
    return 2 * n_layer * n_embd * n_tokens * batch_size * bytes_per_value


def _kv_cases() -> list[tuple]:
    return [(2, 64, 64, 1, 4), (6, 192, 128, 1, 4), (12, 768, 1024, 1, 2), (32, 4096, 4096, 1, 2),
            (8, 512, 256, 4, 4), (1, 1, 1, 1, 1)]


# --- 3. distinct-n ---------------------------------------------------------------------------------


def distinct_n(sequences: Sequence[Sequence[int]], n: int) -> float:
    """Different n-grams / all n-grams over a set of sequences; n-grams do not cross from one
    sequence into the next; 0.0 when there is no n-gram at all."""
    grams = [tuple(seq[i : i + n]) for seq in sequences for i in range(len(seq) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 0.0


def _distinct_cases() -> list[tuple]:
    g = torch.Generator().manual_seed(7)
    random_sets = [[torch.randint(0, 6, (length,), generator=g).tolist() for length in (5, 9, 12)] for _ in range(2)]
    return [
        ([[1, 2, 3, 4]], 1), ([[1, 1, 1, 1]], 1), ([[1, 1, 1, 1]], 2),
        ([[1, 2], [2, 1]], 2),  # (2, 2) or (1, 1) across the boundary must not count
        ([[1, 2, 1, 2, 1]], 2), ([[5]], 2), ([], 1),
        *[(s, n) for s in random_sets for n in (1, 2, 3)],
    ]


# --- 4. the repetition penalty ---------------------------------------------------------------------


def penalize_repeats(logits: Tensor, previous_ids: list[int], penalty: float) -> Tensor:
    """logits (V,) with the CTRL repetition penalty applied to every token id in previous_ids (each
    once, however often it occurred): a positive logit is divided by the penalty, a negative one
    multiplied by it, so that a penalty > 1 makes a repeat less likely in both cases."""
    out = logits.clone()
    for token in set(previous_ids):
        value = out[token]
        out[token] = value / penalty if value > 0 else value * penalty
    return out


def _penalty_cases() -> list[tuple]:
    g = torch.Generator().manual_seed(9)
    return [
        (torch.tensor([2.0, -1.0, 0.5, 0.0]), [0, 1], 2.0),
        (torch.tensor([2.0, -1.0, 0.5, 0.0]), [1, 1, 1], 1.5),  # a repeated id is penalised once
        (torch.tensor([3.0, 3.0, -3.0]), [], 1.3),
        *[(torch.randn(20, generator=g) * 3, torch.randint(0, 20, (k,), generator=g).tolist(), pen)
          for k, pen in ((5, 1.3), (15, 2.0), (3, 0.8))],
    ]


EXERCISES = {
    "top_p_filter": Exercise("top_p_filter", top_p_filter, _top_p_cases, close(),
                             hint="sort the probabilities from high to low, take the cumulative sum, keep tokens "
                                  "up to and including the first one where it reaches p"),
    "kv_cache_bytes": Exercise("kv_cache_bytes", kv_cache_bytes, _kv_cases,
                               hint="2 (key and value) x layers x width x tokens x sequences x bytes per value"),
    "distinct_n": Exercise("distinct_n", distinct_n, _distinct_cases,
                           hint="collect the n-grams of each sequence separately; divide the number of different "
                                "ones by the number of all of them"),
    "penalize_repeats": Exercise("penalize_repeats", penalize_repeats, _penalty_cases, close(),
                                 hint="divide positive logits by the penalty, multiply negative ones; "
                                      "loop over set(previous_ids)"),
}
