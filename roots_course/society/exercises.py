"""Chapter 5's exercises: reference solutions and the cases they are checked on.

Try the exercises in the notebook before reading on: the check cell compares your function with the
reference below on every case (``roots_course.exercises.check``).
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from roots_course.course.exercises import Exercise


def approx(rtol: float = 1e-9):
    """A comparison for numbers that may differ in the last bits (another order of the same operations)."""

    def compare(got: object, expected: float) -> None:
        if not isinstance(got, (int, float)) or isinstance(got, bool):
            raise AssertionError(f"expected a number, got {type(got).__name__}")
        if abs(got - expected) > rtol * max(abs(expected), 1e-12):
            raise AssertionError(f"expected {expected!r}, got {got!r}")

    return compare


# --- 1. AUC by counting pairs ----------------------------------------------------------------------


def auc_by_pairs(positive: Sequence[float], negative: Sequence[float]) -> float:
    """The share of (positive, negative) pairs in which the positive scores higher; a tie counts 1/2."""
    wins = 0.0
    for p in positive:
        for n in negative:
            wins += 1.0 if p > n else 0.5 if p == n else 0.0
    return wins / (len(positive) * len(negative))


def _auc_cases() -> list[tuple]:
    rng = random.Random(3)
    cases: list[tuple] = [([3.0, 4.0], [1.0, 2.0]), ([1.0, 2.0], [3.0, 4.0]), ([1.0, 1.0], [1.0]),
                          ([0.9, 0.2, 0.6], [0.5, 0.6, 0.1, 0.3])]
    for n_pos, n_neg, shift in ((20, 30, 0.5), (50, 10, 0.0), (7, 9, 2.0)):
        cases.append(([round(rng.gauss(shift, 1), 1) for _ in range(n_pos)],  # rounded: ties happen
                      [round(rng.gauss(0, 1), 1) for _ in range(n_neg)]))
    return cases


# --- 2. the FLOPs of a training run ------------------------------------------------------------------


def training_flops(n_params: int, n_layer: int, n_embd: int, seq_len: int, tokens: int) -> int:
    """FLOPs of training on ``tokens`` tokens: (6·N + 12·L·C·T) per token, with N the parameters used
    in matrix multiplies, L layers, width C and context T."""
    return (6 * n_params + 12 * n_layer * n_embd * seq_len) * tokens


def _flops_cases() -> list[tuple]:
    return [(98624 + 512 * 64, 2, 64, 64, 307200), (10, 1, 1, 1, 1), (175_000_000_000, 96, 12288, 2048, 300_000_000_000),
            (2_700_000, 6, 192, 128, 5_120_000), (0, 2, 8, 4, 100)]


# --- 3. n-gram overlap -------------------------------------------------------------------------------


def ngram_overlap(candidate: Sequence[int], reference: Sequence[int], n: int) -> float:
    """The share of the candidate's n-grams (repeats counted) that occur anywhere in the reference;
    0.0 when the candidate is shorter than n."""
    grams = [tuple(candidate[i : i + n]) for i in range(len(candidate) - n + 1)]
    if not grams:
        return 0.0
    known = {tuple(reference[i : i + n]) for i in range(len(reference) - n + 1)}
    return sum(g in known for g in grams) / len(grams)


def _overlap_cases() -> list[tuple]:
    rng = random.Random(11)
    reference = [rng.randrange(6) for _ in range(200)]
    cases: list[tuple] = [([1, 2, 3], [1, 2, 3, 4], 2), ([1, 2, 3], [3, 2, 1], 2), ([5, 5, 5, 5], [5, 5], 2),
                          ([1, 2], [1, 2, 3], 3), ([], [1, 2], 1), ([7, 8, 9], [7, 8, 9], 3)]
    for n in (1, 2, 3, 5):
        cases.append(([rng.randrange(6) for _ in range(40)], reference, n))
    cases.append((reference[50:90], reference, 8))  # copied text: everything is found
    return cases


# --- 4. energy and carbon ----------------------------------------------------------------------------


def carbon_grams(wall_s: float, power_watts: float, grid_g_per_kwh: float, pue: float = 1.0) -> float:
    """Grams of CO2e of drawing ``power_watts`` for ``wall_s`` seconds in a facility with overhead factor
    ``pue`` on a grid emitting ``grid_g_per_kwh`` grams per kWh."""
    kwh = power_watts * wall_s * pue / 3_600_000
    return kwh * grid_g_per_kwh


def _carbon_cases() -> list[tuple]:
    return [(3600.0, 1000.0, 500.0, 1.0), (75.0, 65.0, 429.0, 1.0), (14.8 * 86400, 300.0, 429.0, 1.1),
            (0.0, 100.0, 100.0, 1.0), (60.0, 700.0, 57.0, 1.2)]


EXERCISES = {
    "auc_by_pairs": Exercise("auc_by_pairs", auc_by_pairs, _auc_cases, approx(),
                             hint="two loops: for every positive and every negative, add 1 if the positive is "
                                  "higher, 1/2 if equal; divide by the number of pairs"),
    "training_flops": Exercise("training_flops", training_flops, _flops_cases,
                               hint="6 FLOPs per parameter per token (2 forward, 4 backward) plus 12·L·C·T for "
                                    "attention, all times the tokens"),
    "ngram_overlap": Exercise("ngram_overlap", ngram_overlap, _overlap_cases, approx(),
                              hint="a set of the reference's n-grams (tuples), then count the candidate's n-grams "
                                   "that are in it"),
    "carbon_grams": Exercise("carbon_grams", carbon_grams, _carbon_cases, approx(),
                             hint="watts × seconds = joules; 1 kWh = 3,600,000 J; times the PUE, times grams per kWh"),
}
