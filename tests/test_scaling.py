"""Tests of roots_course.optimization.scaling: the power-law fit, 6·N·D, the compute frontier and a tiny study."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from roots_course.errors import ConfigError
from roots_course.core.model import GPTConfig
from roots_course.optimization.scaling import compute_frontier, fit_power_law, scaling_study, training_flops
from roots_course.core.train import TrainConfig


def test_fit_recovers_an_exact_power_law():
    x = np.array([1e3, 1e4, 1e5, 1e6])
    fit = fit_power_law(x, 7.0 * x ** -0.076)
    assert fit.slope == pytest.approx(-0.076)
    assert fit.prefactor == pytest.approx(7.0)
    assert fit.r2 == pytest.approx(1.0)
    assert fit(1e7) == pytest.approx(7.0 * 1e7 ** -0.076)


def test_fit_on_noisy_points_has_r2_below_one_and_the_right_sign():
    rng = np.random.default_rng(0)
    x = np.geomspace(1e3, 1e7, 12)
    y = 5 * x ** -0.1 * np.exp(rng.normal(0, 0.05, size=x.size))
    fit = fit_power_law(x, y)
    assert -0.2 < fit.slope < 0 and 0.5 < fit.r2 < 1


@pytest.mark.parametrize("x, y", [([1.0], [1.0]), ([2.0, 2.0], [1.0, 3.0]), ([1.0, -2.0], [1.0, 1.0]),
                                  ([1.0, 2.0], [0.0, 1.0])])
def test_fit_rejects_what_cannot_be_fitted_in_log_space(x, y):
    with pytest.raises(ConfigError):
        fit_power_law(x, y)


def test_training_flops_is_six_n_d():
    assert training_flops(1e6, 2e6) == 1.2e13
    with pytest.raises(ConfigError):
        training_flops(-1, 5)


def test_compute_frontier_keeps_only_points_no_other_beats():
    points = [(1, 5.0), (2, 4.0), (2, 4.5), (3, 4.2), (4, 3.0), (5, 3.5)]
    assert compute_frontier(points) == [(1, 5.0), (2, 4.0), (4, 3.0)]


def test_a_tiny_study_trains_each_width_and_records_points():
    torch.manual_seed(0)
    ids = (torch.arange(4000) % 13).to(torch.int32)          # perfectly predictable text
    base = GPTConfig(vocab_size=13, block_size=16, n_layer=1, n_head=1, n_embd=8)
    cfg = TrainConfig(steps=12, batch_size=4, lr=1e-2, min_lr=1e-3, warmup_steps=2, eval_batches=2, seed=1)
    said = []
    runs = scaling_study([16, 8], base, 13, ids, ids[:500], cfg, "cpu", seed=0, n_layer=1, evals=3,
                         say=said.append)
    assert [r.width for r in runs] == [8, 16] and len(said) == 2
    assert runs[0].parameters < runs[1].parameters
    for r in runs:
        assert r.tokens == 12 * 4 * 16
        assert r.compute == pytest.approx(6 * r.parameters * r.tokens)
        assert len(r.points) == 3 and r.points[-1][0] == r.tokens
    with pytest.raises(ConfigError):
        scaling_study([8], base, 13, ids, ids, cfg, "cpu", seed=0, n_layer=1)
