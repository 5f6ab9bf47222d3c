"""Tests of roots_course.tasks.metrics: exact match, edit distance, CER, bootstrap and exact intervals."""

import pytest
import torch

from roots_course.errors import ConfigError
from roots_course.tasks.metrics import (binomial_cdf, bootstrap_ci, character_error_rate, clopper_pearson,
                                        edit_distance, exact_match, paired_difference_ci, pooled_cer,
                                        rate_ci, ratio_statistic)


def test_exact_match_trims_but_is_otherwise_strict():
    assert exact_match(" json\n", "json") == 1.0
    assert exact_match("Json", "json") == 0.0
    assert exact_match("三百五", "三百零五") == 0.0


@pytest.mark.parametrize("a, b, d", [("", "", 0), ("abc", "", 3), ("", "ab", 2), ("kitten", "sitting", 3),
                                     ("flaw", "lawn", 2), ("三百五", "三百零五", 1), ("abc", "abc", 0)])
def test_edit_distance_known_values(a, b, d):
    assert edit_distance(a, b) == d
    assert edit_distance(b, a) == d  # symmetric


def test_edit_distance_triangle_inequality():
    words = ["", "a", "ab", "ba", "abc", "cab", "九百九十九"]
    for x in words:
        for y in words:
            for z in words:
                assert edit_distance(x, z) <= edit_distance(x, y) + edit_distance(y, z)


def test_cer_definition():
    assert character_error_rate("三百五", "三百零五") == 0.25
    assert character_error_rate("", "十二") == 1.0
    assert character_error_rate("一二三四五六", "一") == 5.0  # can exceed 1
    assert character_error_rate("", "") == 0.0 and character_error_rate("x", "") == 1.0
    assert pooled_cer(["三百五", "十二"], ["三百零五", "十二"]) == pytest.approx(1 / 6)


def test_bootstrap_contains_point_and_is_reproducible():
    scores = [1.0] * 10 + [0.0] * 40
    a = bootstrap_ci(scores, seed=3)
    b = bootstrap_ci(scores, seed=3)
    assert a == b and a.value == pytest.approx(0.2) and a.n == 50
    assert a.low < 0.2 < a.high and 0.05 < a.high - a.low < 0.35
    assert bootstrap_ci(scores, seed=4) != a  # another seed, other resamples
    g = torch.Generator().manual_seed(3)
    assert bootstrap_ci(scores, generator=g) == a  # the seed and an explicit generator agree


def test_bootstrap_degenerate_and_width_shrinks_with_n():
    zero = bootstrap_ci([0.0] * 20)
    assert (zero.low, zero.value, zero.high) == (0.0, 0.0, 0.0)
    small = bootstrap_ci([1.0, 0.0] * 10)
    large = bootstrap_ci([1.0, 0.0] * 500)
    assert large.high - large.low < (small.high - small.low) / 3  # ~1/sqrt(n): 50 times more data


def test_bootstrap_ratio_statistic_is_pooled_cer():
    records = torch.tensor([[1.0, 4.0], [0.0, 2.0], [2.0, 3.0]])  # (edits, characters)
    interval = bootstrap_ci(records, statistic=ratio_statistic, n_resamples=200)
    assert interval.value == pytest.approx(3 / 9)
    assert interval.low <= interval.value <= interval.high


def test_paired_difference():
    a = [1.0] * 30 + [0.0] * 20
    b = [1.0] * 10 + [0.0] * 40
    diff = paired_difference_ci(a, b)
    assert diff.value == pytest.approx(0.4) and diff.low > 0
    with pytest.raises(ConfigError):
        paired_difference_ci([1.0], [1.0, 0.0])


def test_bootstrap_rejects_bad_input():
    with pytest.raises(ConfigError):
        bootstrap_ci([])
    with pytest.raises(ConfigError):
        bootstrap_ci([1.0], confidence=1.5)


# ---- exact (Clopper–Pearson) intervals -----------------------------------------------------------


@pytest.mark.parametrize("k, n, low, high", [
    (0, 50, 0.0, 1 - 0.025 ** (1 / 50)),  # closed form at the edges: 0.0711
    (50, 50, 0.025 ** (1 / 50), 1.0),
    (5, 10, 0.187086, 0.812914),  # published tables (e.g. R's binom.test)
    (1, 10, 0.002529, 0.445016),
    (0, 1, 0.0, 0.975),
])
def test_clopper_pearson_known_values(k, n, low, high):
    interval = clopper_pearson(k, n)
    assert interval.value == pytest.approx(k / n)
    assert interval.low == pytest.approx(low, abs=2e-6) and interval.high == pytest.approx(high, abs=2e-6)


def test_clopper_pearson_tails_hold_exactly_and_edges_are_not_degenerate():
    interval = clopper_pearson(7, 40)
    assert 1 - binomial_cdf(6, 40, interval.low) == pytest.approx(0.025, abs=1e-9)
    assert binomial_cdf(7, 40, interval.high) == pytest.approx(0.025, abs=1e-9)
    zero = rate_ci([0.0] * 50)
    assert zero.low == 0.0 and zero.high > 0.05  # the bootstrap would say [0, 0]
    assert bootstrap_ci([0.0] * 50).high == 0.0
    assert clopper_pearson(5, 10, confidence=0.99).high > clopper_pearson(5, 10).high


def test_binomial_cdf_and_rate_ci_reject_bad_input():
    assert binomial_cdf(2, 4, 0.5) == pytest.approx(11 / 16)
    for bad in [(3, 2), (-1, 5), (1, 0), (1.5, 3)]:
        with pytest.raises(ConfigError):
            clopper_pearson(*bad)
    with pytest.raises(ConfigError):
        rate_ci([0.5, 1.0])
    with pytest.raises(ConfigError):
        rate_ci([])
