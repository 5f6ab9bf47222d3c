"""Chapter 2's exercises: reference solutions and the cases they are checked on.

Try the exercises in the notebook before reading on: the check cell compares your function with the
reference below on every case (``roots_course.exercises.check``).
"""

from __future__ import annotations

import math
from collections import Counter

from roots_course.course.exercises import Exercise


def approx(rel: float = 1e-9, abs_: float = 1e-12):
    """A comparison for `Exercise.compare`: numbers equal up to rounding (math.isclose), also inside
    tuples and lists, so that a formula written in another order still passes."""

    def compare(got, expected) -> None:
        if isinstance(expected, (tuple, list)):
            if not isinstance(got, (tuple, list)) or len(got) != len(expected):
                raise AssertionError(f"expected {len(expected)} values {expected!r}, got {got!r}")
            for g, e in zip(got, expected):
                compare(g, e)
            return
        if not isinstance(got, (int, float)) or isinstance(got, bool):
            raise AssertionError(f"expected a number, got {type(got).__name__}: {got!r}")
        if not math.isclose(got, expected, rel_tol=rel, abs_tol=abs_):
            raise AssertionError(f"expected {expected!r}, got {got!r}")

    return compare

# --- 1. the units of a loss ----------------------------------------------------------------------


def loss_units(loss: float, n_tokens: int, n_chars: int) -> tuple[float, float, float]:
    """A loss in nats per token as (perplexity, bits per token, bits per character), for a text of
    n_tokens tokens and n_chars characters."""
    bits_per_token = loss / math.log(2)
    return math.exp(loss), bits_per_token, bits_per_token * n_tokens / n_chars


def _units_cases() -> list[tuple]:
    return [(0.0, 10, 10), (math.log(2), 100, 100), (math.log(512), 1000, 3100), (3.98, 20_711, 65_000),
            (1.25, 7, 3)]


# --- 2. warmup, then cosine decay ----------------------------------------------------------------


def warmup_cosine(step: int, lr: float, min_lr: float, warmup_steps: int, steps: int) -> float:
    """The learning rate of update ``step`` (0-based): a linear climb lr/W, 2·lr/W, ..., lr over the W
    warmup updates, then half a cosine from lr (at update W) down to min_lr (at the last update, steps - 1),
    and min_lr after that."""
    if step < warmup_steps:
        return lr * (step + 1) / warmup_steps
    decay = steps - 1 - warmup_steps
    progress = 1.0 if decay <= 0 else min(1.0, (step - warmup_steps) / decay)
    return min_lr + 0.5 * (1 + math.cos(math.pi * progress)) * (lr - min_lr)


def _schedule_cases() -> list[tuple]:
    cases = []
    for lr, min_lr, warmup, steps in ((1e-3, 1e-4, 10, 100), (3e-3, 3e-4, 30, 300), (1.0, 0.0, 0, 5),
                                      (2e-3, 2e-4, 5, 6)):
        for step in sorted({0, 1, warmup - 1, warmup, warmup + 1, steps // 2, steps - 2, steps - 1, steps + 3}):
            if step >= 0:
                cases.append((step, lr, min_lr, warmup, steps))
    return cases


# --- 3. parameters and compute --------------------------------------------------------------------


def gpt_compute(n_layer: int, n_embd: int, tokens: int) -> tuple[int, float]:
    """(N, C) for the course's GPT: N its non-embedding parameters (no biases; per block two LayerNorm
    weights of C numbers, W_QKV of 3C², the attention output of C², the MLP's C×4C and 4C×C; one final
    LayerNorm), and C = 6·N·D the floating-point operations of training it on D = tokens tokens."""
    n = n_layer * (12 * n_embd ** 2 + 2 * n_embd) + n_embd
    return n, 6.0 * n * tokens


def _compute_cases() -> list[tuple]:
    return [(1, 16, 1000), (2, 64, 307_200), (6, 192, 5_120_000), (8, 512, 98_304_000), (4, 96, 1)]


# --- 4. an add-k bigram --------------------------------------------------------------------------


def bigram_prob(train_ids: list[int], vocab_size: int, k: float, prev: int, nxt: int) -> float:
    """P(nxt | prev) of a bigram model counted on train_ids with add-k smoothing:
    (count(prev, nxt) + k) / (count(prev followed by anything) + k · V)."""
    pairs = Counter(zip(train_ids, train_ids[1:]))
    followed = sum(c for (a, _), c in pairs.items() if a == prev)
    return (pairs[(prev, nxt)] + k) / (followed + k * vocab_size)


def _bigram_cases() -> list[tuple]:
    text = [0, 1, 2, 0, 1, 2, 0, 1, 3, 3]
    return [(text, 4, 1.0, 0, 1), (text, 4, 0.1, 0, 1), (text, 4, 0.1, 1, 3), (text, 4, 0.5, 3, 0),
            (text, 5, 0.01, 4, 2), ([2, 2, 2, 2], 3, 1.0, 2, 2)]


EXERCISES = {
    "loss_units": Exercise("loss_units", loss_units, _units_cases, approx(),
                           hint="perplexity = exp(loss); bits = nats / ln 2; per character: × tokens / characters"),
    "warmup_cosine": Exercise("warmup_cosine", warmup_cosine, _schedule_cases, approx(),
                              hint="step < W: lr·(step+1)/W; after: progress p = (step−W)/(steps−1−W), capped at 1; "
                                   "min_lr + ½(1 + cos πp)(lr − min_lr)"),
    "gpt_compute": Exercise("gpt_compute", gpt_compute, _compute_cases, approx(),
                            hint="per block: 4C² in attention + 8C² in the MLP + 2C of LayerNorm; then + C"),
    "bigram_prob": Exercise("bigram_prob", bigram_prob, _bigram_cases, approx(),
                            hint="count the pairs (a, b) with zip(ids, ids[1:]); the denominator counts the pairs "
                                 "that start with prev (not the occurrences of prev: the last id has no successor)"),
}
