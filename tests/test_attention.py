"""Tests of roots_course.core.attention: masks, written-out vs fused attention, RoPE, the KV cache."""

import math

import pytest
import torch
import torch.nn.functional as F

from roots_course.core.attention import (
    KVCache,
    MultiHeadAttention,
    apply_rope,
    attention_weights,
    causal_mask,
    rope_frequencies,
    scaled_dot_product_attention,
)
from roots_course.errors import ConfigError


def test_causal_mask_is_lower_triangle():
    m = causal_mask(4)
    assert m.dtype == torch.bool and m.shape == (4, 4)
    assert torch.equal(m, torch.tensor([[1, 0, 0, 0], [1, 1, 0, 0], [1, 1, 1, 0], [1, 1, 1, 1]], dtype=torch.bool))


def test_causal_mask_with_cached_prefix_aligns_queries_at_the_end():
    # 2 new queries after 3 cached positions: they sit at positions 3 and 4.
    m = causal_mask(2, 5)
    assert torch.equal(m, torch.tensor([[1, 1, 1, 1, 0], [1, 1, 1, 1, 1]], dtype=torch.bool))
    assert causal_mask(1, 7).all()  # one new query sees everything cached


def test_attention_weights_are_distributions_with_no_weight_on_the_future():
    q, k = torch.randn(2, 3, 6, 8), torch.randn(2, 3, 6, 8)
    w = attention_weights(q, k)  # (2, 3, 6, 6)
    assert w.shape == (2, 3, 6, 6)
    torch.testing.assert_close(w.sum(-1), torch.ones(2, 3, 6))
    assert (w.masked_select(~causal_mask(6)) == 0).all()
    # first query can only look at itself
    assert torch.allclose(w[..., 0, 0], torch.ones(2, 3))


def test_attention_weights_match_the_formula():
    q, k = torch.randn(5, 4), torch.randn(5, 4)
    expected = torch.softmax(q @ k.T / math.sqrt(4), dim=-1)
    torch.testing.assert_close(attention_weights(q, k, causal=False), expected)


@pytest.mark.parametrize("causal", [True, False])
def test_written_out_attention_equals_torch_kernel(causal):
    q, k, v = (torch.randn(2, 4, 9, 16) for _ in range(3))
    ours = scaled_dot_product_attention(q, k, v, causal=causal)
    theirs = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=0)


@pytest.mark.parametrize("rope", [False, True])
def test_multi_head_attention_fused_equals_written_out(rope):
    fused = MultiHeadAttention(32, 4, fused=True, rope=rope, max_len=16)
    plain = MultiHeadAttention(32, 4, fused=False, rope=rope, max_len=16)
    plain.load_state_dict(fused.state_dict())
    x = torch.randn(3, 10, 32)
    y_fused, w_none = fused(x)
    y_plain, _ = plain(x)
    assert w_none is None
    torch.testing.assert_close(y_fused, y_plain, atol=1e-5, rtol=0)


def _decode_in_pieces(attn, x, pieces, cache):
    """Feed x (B, T, C) through attn in consecutive chunks of the given sizes, using the cache."""
    outs, t = [], 0
    for size in pieces:
        outs.append(attn(x[:, t : t + size], cache)[0])
        t += size
    return torch.cat(outs, dim=1)


@pytest.mark.parametrize("rope", [False, True])
@pytest.mark.parametrize("fused", [False, True])
def test_cached_attention_equals_full_attention(rope, fused):
    attn = MultiHeadAttention(32, 4, fused=fused, rope=rope, max_len=16)
    x = torch.randn(2, 12, 32)
    full, _ = attn(x)
    # a prompt of 5, then one token at a time, then a chunk of 3 after a cached prefix (masked case)
    cache = KVCache(n_layer=1, batch_size=2, n_head=4, head_dim=8, max_len=16)
    pieces = _decode_in_pieces(attn, x, [5, 1, 1, 1, 1, 3], cache)
    assert cache.length == 12
    torch.testing.assert_close(pieces, full, atol=1e-5, rtol=0)


@pytest.mark.parametrize("rope", [False, True])
def test_fused_with_cache_equals_written_out_with_cache(rope):
    fused = MultiHeadAttention(32, 4, fused=True, rope=rope, max_len=16)
    plain = MultiHeadAttention(32, 4, fused=False, rope=rope, max_len=16)
    plain.load_state_dict(fused.state_dict())
    x = torch.randn(2, 11, 32)
    outs = []
    for attn in (fused, plain):
        cache = KVCache(1, 2, 4, 8, 16)
        outs.append(_decode_in_pieces(attn, x, [4, 1, 3, 1, 2], cache))
    torch.testing.assert_close(outs[0], outs[1], atol=1e-5, rtol=0)


def test_return_weights_gives_the_heatmap_and_same_output():
    attn = MultiHeadAttention(32, 4, fused=True)
    x = torch.randn(2, 7, 32)
    y, _ = attn(x)
    y_w, w = attn(x, return_weights=True)
    assert w.shape == (2, 4, 7, 7)
    torch.testing.assert_close(y_w, y, atol=1e-5, rtol=0)
    torch.testing.assert_close(w.sum(-1), torch.ones(2, 4, 7))
    assert (w.masked_select(~causal_mask(7)) == 0).all()


def test_rope_rotation_keeps_norms_and_depends_only_on_relative_position():
    angles = rope_frequencies(8, 64)
    assert angles.shape == (64, 4)
    q, k = torch.randn(8), torch.randn(8)

    def rotated(x, p):
        return apply_rope(x[None], torch.tensor([p]), angles)[0]

    torch.testing.assert_close(rotated(q, 17).norm(), q.norm())
    # q at 10, k at 7 scores the same as q at 40, k at 37: only the distance 3 matters
    s1 = rotated(q, 10) @ rotated(k, 7)
    s2 = rotated(q, 40) @ rotated(k, 37)
    torch.testing.assert_close(s1, s2, atol=1e-4, rtol=0)
    assert not torch.allclose(s1, rotated(q, 10) @ rotated(k, 2))
    # position 0 is the identity, and the table may be omitted
    torch.testing.assert_close(apply_rope(q[None], torch.tensor([0])), q[None])
    torch.testing.assert_close(apply_rope(q[None], torch.tensor([5]))[0], rotated(q, 5))


def test_rope_needs_even_head_dim():
    with pytest.raises(ConfigError, match="head_dim"):
        rope_frequencies(7, 10)


def test_kv_cache_append_length_overflow_and_memory():
    cache = KVCache(n_layer=2, batch_size=3, n_head=4, head_dim=5, max_len=6)
    assert cache.length == 0 and cache.batch_size == 3
    assert cache.memory_bytes() == 2 * 2 * 3 * 4 * 6 * 5 * 4  # k and v, float32
    k, v = torch.randn(3, 4, 2, 5), torch.randn(3, 4, 2, 5)
    k_all, v_all = cache.append(0, k, v)
    assert k_all.shape == (3, 4, 2, 5) and torch.equal(k_all, k) and torch.equal(v_all, v)
    assert cache.length == 0  # layer 1 has not been given these positions yet
    cache.append(1, k, v)
    assert cache.length == 2
    k2 = torch.randn(3, 4, 1, 5)
    k_all, _ = cache.append(0, k2, k2)
    assert torch.equal(k_all, torch.cat([k, k2], dim=2))
    storage = cache.k.data_ptr()
    cache.append(0, torch.randn(3, 4, 3, 5), torch.randn(3, 4, 3, 5))
    assert cache.k.data_ptr() == storage  # written in place, never reallocated
    with pytest.raises(ConfigError, match="max_len=6"):
        cache.append(0, k2, k2)
    with pytest.raises(ConfigError, match="batch_size=3"):
        cache.append(1, torch.randn(2, 4, 1, 5), torch.randn(2, 4, 1, 5))
    cache.reset()
    assert cache.length == 0


def test_kv_cache_reorder_follows_beams_and_can_grow():
    cache = KVCache(1, 1, 2, 3, 4)
    k = torch.randn(1, 2, 2, 3)
    cache.append(0, k, -k)
    cache.reorder([0, 0, 0])  # one prompt row becomes three beams
    assert cache.batch_size == 3 and cache.length == 2
    ks = torch.randn(3, 2, 1, 3)
    k_all, v_all = cache.append(0, ks, ks)
    cache.reorder(torch.tensor([2, 0]))
    assert cache.batch_size == 2
    torch.testing.assert_close(cache.k[0, 0, :, :3], torch.cat([k[0], ks[2]], dim=1))
    torch.testing.assert_close(cache.k[0, 1, :, :3], torch.cat([k[0], ks[0]], dim=1))
    torch.testing.assert_close(cache.v[0, 1, :, :2], -k[0])


def test_attention_without_positions_cannot_tell_order():
    # Without a mask and without positions, attention is permutation-equivariant:
    # shuffling the tokens shuffles the outputs the same way, nothing else changes.
    attn = MultiHeadAttention(16, 2, causal=False)
    x = torch.randn(1, 6, 16)
    perm = torch.randperm(6)
    torch.testing.assert_close(attn(x[:, perm])[0], attn(x)[0][:, perm], atol=1e-6, rtol=0)
    # RoPE gives it a sense of order: the same shuffle now changes the outputs.
    rope = MultiHeadAttention(16, 2, causal=False, rope=True, max_len=8)
    assert not torch.allclose(rope(x[:, perm])[0], rope(x)[0][:, perm], atol=1e-4)


def test_head_count_must_divide_width():
    with pytest.raises(ConfigError, match="n_embd=10"):
        MultiHeadAttention(10, 3)
