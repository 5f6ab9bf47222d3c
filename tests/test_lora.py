"""Tests of roots_course.core.lora: the wrapper starts as the base layer, trains only A and B, merges exactly."""

import copy

import pytest
import torch
from torch import nn

from roots_course.errors import ConfigError
from roots_course.core.lora import (
    LoRALinear,
    apply_lora,
    count_parameters,
    lora_parameter_count,
    lora_state_dict,
    merge_lora,
)
from tiny_models import tiny_gpt as tiny


def test_wrapper_starts_as_the_base_layer_and_matches_the_formula():
    base = nn.Linear(8, 6, bias=True)
    layer = LoRALinear(base, r=2, alpha=4.0)
    x = torch.randn(3, 5, 8)
    torch.testing.assert_close(layer(x), base(x))  # B = 0: no change before training
    assert layer.A.shape == (2, 8) and layer.B.shape == (6, 2) and layer.A.abs().sum() > 0
    with torch.no_grad():
        layer.B.normal_()
    expected = x @ base.weight.T + base.bias + 2.0 * (x @ layer.A.T) @ layer.B.T
    torch.testing.assert_close(layer(x), expected)
    assert torch.linalg.matrix_rank(layer.delta_weight()) <= 2
    torch.testing.assert_close(layer.merged()(x), layer(x))
    with pytest.raises(ConfigError):
        LoRALinear(nn.Linear(4, 4), r=0, alpha=1.0)


def test_apply_lora_freezes_everything_but_the_adapters():
    model = tiny()
    full = count_parameters(model, trainable_only=True)
    names = apply_lora(model, r=4, alpha=8.0)
    assert names == ["blocks.0.attn.qkv", "blocks.0.attn.proj", "blocks.1.attn.qkv", "blocks.1.attn.proj"]
    trainable = count_parameters(model, trainable_only=True)
    expected = 2 * (lora_parameter_count(16, 48, 4) + lora_parameter_count(16, 16, 4))
    assert trainable == expected == 2 * (4 * 64 + 4 * 32)
    assert trainable < full / 5
    assert set(lora_state_dict(model)) == {f"{n}.{m}" for n in names for m in ("A", "B")}
    with pytest.raises(ConfigError, match="no nn.Linear"):
        apply_lora(tiny(), 2, 4.0, targets=("nothing.here",))


def test_lora_model_equals_base_at_start_and_merges_exactly_after_training():
    model = tiny()
    before = copy.deepcopy(model)
    apply_lora(model, r=4, alpha=8.0, generator=torch.Generator().manual_seed(1))
    idx = torch.randint(0, model.config.vocab_size, (2, 10))
    torch.testing.assert_close(model(idx).logits, before(idx).logits)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    for _ in range(5):
        loss = model(idx, idx).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    after = {n.replace(".base.", "."): p for n, p in model.named_parameters() if not n.endswith((".A", ".B"))}
    assert all(torch.equal(p, after[n]) for n, p in before.named_parameters())  # nothing but the adapters moved
    lora_logits = model(idx).logits
    assert not torch.allclose(lora_logits, before(idx).logits)
    merge_lora(model)
    assert not any(isinstance(m, LoRALinear) for m in model.modules())
    torch.testing.assert_close(model(idx).logits, lora_logits, rtol=1e-4, atol=1e-5)
    assert set(model.state_dict_for_saving()) == set(before.state_dict_for_saving())  # a plain GPT again


def test_seeded_adapters_are_reproducible():
    a, b = tiny(), tiny()
    b.load_state_dict(a.state_dict())
    apply_lora(a, 2, 4.0, generator=torch.Generator().manual_seed(5))
    apply_lora(b, 2, 4.0, generator=torch.Generator().manual_seed(5))
    assert all(torch.equal(x, y) for x, y in zip(lora_state_dict(a).values(), lora_state_dict(b).values()))
