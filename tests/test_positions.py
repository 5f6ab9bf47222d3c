"""Tests of roots_course.representation.positions: attention without positions is blind to order."""

from __future__ import annotations

import torch

from roots_course.representation.positions import causal_attention, order_test, permutation_gap


def test_without_positions_or_mask_shuffling_only_shuffles_the_output(tiny_config):
    ids = torch.randint(0, tiny_config.vocab_size, (2, 10), generator=torch.Generator().manual_seed(0))
    perm = torch.randperm(10, generator=torch.Generator().manual_seed(1))
    gaps = {(r["position"], r["causal mask"]): r["relative gap"] for r in order_test(tiny_config, ids, perm)}
    assert gaps[("none", False)] < 1e-12
    assert gaps[("none", True)] > 1e-3  # the mask leaks order
    for kind in ("learned", "sinusoidal"):
        assert gaps[(kind, False)] > 1e-3 and gaps[(kind, True)] > 1e-3
    assert gaps[("rope", True)] > 1e-3


def test_causal_attention_switch_restores_the_layers(tiny_gpt):
    model = tiny_gpt
    with causal_attention(model, False):
        assert not any(b.attn.causal for b in model.blocks)
    assert all(b.attn.causal for b in model.blocks)
    ids = torch.randint(0, model.config.vocab_size, (1, 6))
    assert permutation_gap(model, ids, torch.arange(6)) == 0.0  # the identity permutation changes nothing
    assert model.training  # mode restored
