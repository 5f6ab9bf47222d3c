"""Tests of roots_course.optimization.objective: the loss written out, its units, and scoring a whole split."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
import tiny_models

from roots_course.errors import ConfigError, DataError
from roots_course.optimization.objective import bits, bits_per_char, cross_entropy, dataset_loss, perplexity, uniform_loss


def test_cross_entropy_by_hand_equals_torch():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(12, 7, generator=g) * 3
    targets = torch.randint(0, 7, (12,), generator=g)
    torch.testing.assert_close(cross_entropy(logits, targets), F.cross_entropy(logits, targets))


def test_cross_entropy_is_stable_for_huge_logits_and_zero_when_certain():
    logits = torch.tensor([[1000.0, 0.0, 0.0], [0.0, 0.0, 1000.0]])
    assert cross_entropy(logits, torch.tensor([0, 2])).item() == pytest.approx(0.0, abs=1e-6)
    assert math.isfinite(cross_entropy(logits, torch.tensor([1, 1])).item())


def test_uniform_logits_give_ln_v():
    assert cross_entropy(torch.zeros(5, 64), torch.arange(5)).item() == pytest.approx(math.log(64))
    assert uniform_loss(64) == pytest.approx(math.log(64))


def test_units():
    assert perplexity(math.log(50)) == pytest.approx(50)
    assert bits(math.log(2)) == pytest.approx(1.0)
    # 2 bits per token, 1 token per 4 characters -> half a bit per character
    assert bits_per_char(2 * math.log(2), n_tokens=100, n_chars=400) == pytest.approx(0.5)
    with pytest.raises(ConfigError):
        bits_per_char(1.0, 0, 10)


def test_shape_errors_name_the_shapes():
    with pytest.raises(DataError, match=r"\(N, V\)"):
        cross_entropy(torch.zeros(2, 3, 4), torch.zeros(2, dtype=torch.long))


def test_dataset_loss_matches_the_model_loss_on_the_same_windows():
    torch.manual_seed(0)
    model = tiny_models.tiny_gpt(vocab_size=11, block_size=8, n_layer=1)
    ids = torch.randint(0, 11, (8 * 5 + 1,))
    x, y = ids[:40].view(5, 8), ids[1:41].view(5, 8)
    model.eval()
    with torch.no_grad():
        expected = model(x, y).loss
    model.train()
    assert dataset_loss(model, ids, batch_size=2) == pytest.approx(expected.item(), rel=1e-5)
    assert model.training, "the model's mode is restored"
    with pytest.raises(DataError):
        dataset_loss(model, ids[:5])
