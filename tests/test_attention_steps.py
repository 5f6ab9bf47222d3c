"""Tests of roots_course.representation.attention_steps: step-by-step attention, heads one at a time, head habits."""

from __future__ import annotations

import math

import pytest
import torch
import tiny_models

from roots_course.core.attention import MultiHeadAttention, scaled_dot_product_attention
from roots_course.representation.attention_steps import attention_steps, block_input, head_habits, head_projections, multi_head_loop
from roots_course.errors import ConfigError


def test_steps_match_the_library_and_have_the_documented_shapes():
    x = torch.randn(5, 8)
    w_q, w_k, w_v = torch.randn(8, 4), torch.randn(8, 4), torch.randn(8, 6)
    for causal in (False, True):
        s = attention_steps(x, w_q, w_k, w_v, causal=causal)
        torch.testing.assert_close(s.output, scaled_dot_product_attention(x @ w_q, x @ w_k, x @ w_v, causal=causal))
        torch.testing.assert_close(s.scaled, s.scores / math.sqrt(4))
        torch.testing.assert_close(s.weights.sum(-1), torch.ones(5))
    assert s.shapes() == {"x": (5, 8), "q": (5, 4), "k": (5, 4), "v": (5, 6), "scores": (5, 5), "scaled": (5, 5),
                          "masked": (5, 5), "weights": (5, 5), "output": (5, 6)}
    assert torch.isinf(s.masked.triu(1)[s.masked.triu(1) != 0]).all() and (s.weights.triu(1) == 0).all()
    plain = attention_steps(x)  # no projections: Q = K = V = x
    assert plain.q is x and plain.masked is plain.scaled
    with pytest.raises(ConfigError):
        attention_steps(x, torch.randn(8, 4), torch.randn(8, 3))


@pytest.mark.parametrize("causal", [True, False])
def test_heads_one_at_a_time_equal_the_layer_written_out_and_fused(causal):
    layer = MultiHeadAttention(24, 3, fused=False, causal=causal).eval()
    x = torch.randn(2, 7, 24)
    with torch.no_grad():
        written, _ = layer(x)
        layer.fused = True
        fused, _ = layer(x)
        looped = multi_head_loop(layer, x)
    torch.testing.assert_close(looped, written)
    torch.testing.assert_close(looped, fused)
    with pytest.raises(ConfigError):
        multi_head_loop(MultiHeadAttention(24, 3, rope=True), x)


def test_head_projections_and_block_input_reproduce_the_models_weights(tiny_gpt):
    model = tiny_gpt.eval()
    ids = torch.randint(0, model.config.vocab_size, (9,))
    with torch.no_grad():
        x = block_input(model, ids)
        for h in range(2):
            steps = attention_steps(x, *head_projections(model.blocks[0].attn, h), causal=True)
            torch.testing.assert_close(steps.weights, model.attention_maps(ids[None])[0][0, h])
    with pytest.raises(ConfigError):
        head_projections(model.blocks[0].attn, 2)


def test_block_input_follows_the_position_kind():
    for position in ("sinusoidal", "none"):
        model = tiny_models.tiny_gpt(position=position).eval()
        ids = torch.randint(0, model.config.vocab_size, (1, 6))
        with torch.no_grad():
            steps = attention_steps(block_input(model, ids), *head_projections(model.blocks[0].attn, 0), causal=True)
            torch.testing.assert_close(steps.weights, model.attention_maps(ids)[0][:, 0])


def test_head_habits_measure_self_previous_and_first():
    T = 5
    previous = torch.zeros(T, T)
    previous[0, 0] = 1
    previous[torch.arange(1, T), torch.arange(0, T - 1)] = 1
    uniform = torch.tril(torch.ones(T, T)) / torch.arange(1, T + 1)[:, None]
    rows = head_habits([torch.stack([previous, uniform])])
    assert rows[0]["previous token"] == pytest.approx(1.0) and rows[0]["self"] == 0
    assert rows[0]["entropy (bits)"] == pytest.approx(0.0, abs=1e-6)
    expected_entropy = sum(math.log2(i + 1) for i in range(1, T)) / (T - 1)
    assert rows[1]["entropy (bits)"] == pytest.approx(expected_entropy, rel=1e-5)
    assert rows[1]["first token"] == pytest.approx(sum(1 / (i + 1) for i in range(1, T)) / (T - 1))
    with pytest.raises(ConfigError):
        head_habits([torch.ones(1, 2, 2)])
