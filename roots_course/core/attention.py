"""Attention, written out: scaled dot-product attention, the causal mask, rotary positions (RoPE),
the key/value cache used for fast decoding, and the multi-head attention layer of a GPT block.

Letters used in the shape comments:
    B batch, H heads, D head dimension, C = H * D model width,
    T query positions (the tokens fed in now),
    S key positions (S = T without a cache; S = cached positions + T with one).
A boolean mask is True where attention is ALLOWED, the convention of
torch.nn.functional.scaled_dot_product_attention.

This is the teaching version. The library version is PyTorch's fused kernel,
``torch.nn.functional.scaled_dot_product_attention``, which ``MultiHeadAttention`` calls when
``fused=True`` (``GPTConfig.fused_attention``); the written-out path serves the attention maps and the reading.
tests/test_attention.py checks the two against each other: test_written_out_attention_equals_torch_kernel
(the function), test_multi_head_attention_fused_equals_written_out and
test_fused_with_cache_equals_written_out_with_cache (the layer, with and without RoPE and the KV cache).
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from roots_course.errors import ConfigError

# ---------------------------------------------------------------------------------------------
# Scaled dot-product attention
# ---------------------------------------------------------------------------------------------


def causal_mask(T: int, S: int | None = None, device: torch.device | str | None = None) -> Tensor:
    """(T, S) boolean mask: True where query i may look at key j.

    The T queries are the *last* T of the S positions (S defaults to T), so query i sits at
    position S - T + i and may see keys j <= S - T + i. Without a cache S == T and this is the
    lower triangle; while decoding with a cache, one new query (T = 1) sees every key.
    """
    S = T if S is None else S
    return torch.ones(T, S, dtype=torch.bool, device=device).tril(diagonal=S - T)


def attention_weights(q: Tensor, k: Tensor, causal: bool = True) -> Tensor:
    """softmax(Q Kᵀ / √D), with the causal mask applied before the softmax.

    q (..., T, D), k (..., S, D) -> weights (..., T, S); each row is a probability distribution
    over the keys. Dividing by √D keeps the scores' variance near 1 whatever the head size, so
    the softmax does not saturate at initialisation.
    """
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))  # (..., T, S)
    if causal:
        allowed = causal_mask(q.size(-2), k.size(-2), device=q.device)  # (T, S)
        scores = scores.masked_fill(~allowed, float("-inf"))  # exp(-inf) = 0: no weight on the future
    return torch.softmax(scores, dim=-1)  # (..., T, S)


def scaled_dot_product_attention(q: Tensor, k: Tensor, v: Tensor, causal: bool = True) -> Tensor:
    """softmax(Q Kᵀ / √D) V written out: each query gets a weighted average of the values.

    q (..., T, D), k (..., S, D), v (..., S, D) -> (..., T, D).
    """
    return attention_weights(q, k, causal) @ v  # (..., T, S) @ (..., S, D) -> (..., T, D)


# ---------------------------------------------------------------------------------------------
# Rotary position embedding (RoPE; Su et al. 2021, "RoFormer")
# ---------------------------------------------------------------------------------------------


def rope_frequencies(
    head_dim: int, max_T: int, base: float = 10000.0, device: torch.device | str | None = None
) -> Tensor:
    """Rotation angles of RoPE: (max_T, head_dim // 2), angle[p, i] = p * base^(-2i / head_dim).

    Pair i of a head's dimensions turns by angle[p, i] at position p: quickly for small i,
    slowly for large i, like the hands of a clock.
    """
    if head_dim % 2:
        raise ConfigError(f"RoPE rotates pairs of dimensions: head_dim must be even, got {head_dim}")
    inv_freq = base ** (-torch.arange(0, head_dim, 2, dtype=torch.float32, device=device) / head_dim)
    positions = torch.arange(max_T, dtype=torch.float32, device=device)  # (max_T,)
    return torch.outer(positions, inv_freq)  # (max_T, D/2)


def apply_rope(x: Tensor, positions: Tensor, angles: Tensor | None = None) -> Tensor:
    """Rotate queries or keys x (..., T, D) by the angles of their positions (T,).

    Dimension i is paired with dimension i + D/2 (the "rotate half" layout; the paper pairs
    neighbours 2i, 2i+1, which is the same rotation after a fixed reordering of dimensions).
    Because both q and k are rotated, q·k depends only on the *difference* of their positions.
    `angles` is a table from rope_frequencies; it is built on the fly when omitted.
    """
    D = x.size(-1)
    if angles is None:
        angles = rope_frequencies(D, int(positions.max()) + 1, device=x.device)
    theta = angles[positions]  # (T, D/2)
    cos, sin = theta.cos(), theta.sin()  # (T, D/2), broadcast over the leading dimensions
    x1, x2 = x[..., : D // 2], x[..., D // 2 :]  # (..., T, D/2) each
    rotated = torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)  # (..., T, D)
    return rotated.type_as(x)


# ---------------------------------------------------------------------------------------------
# The key/value cache
# ---------------------------------------------------------------------------------------------


class KVCache:
    """Keys and values of the positions already processed, for every layer.

    Without a cache, generating each new token re-runs the model over the whole context. Keys and
    values of past positions never change (the mask stops them from seeing the future), so we
    keep them and feed only the newest token. Storage is allocated once, shape
    (n_layer, B, H, max_len, D) for k and for v; layer l writes its new keys at positions
    [length, length + T) -- nothing is concatenated or reallocated while decoding.
    """

    def __init__(
        self,
        n_layer: int,
        batch_size: int,
        n_head: int,
        head_dim: int,
        max_len: int,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        shape = (n_layer, batch_size, n_head, max_len, head_dim)
        self.k = torch.zeros(shape, device=device, dtype=dtype)  # (L, B, H, max_len, D)
        self.v = torch.zeros(shape, device=device, dtype=dtype)  # (L, B, H, max_len, D)
        self.max_len = max_len
        self._lengths = [0] * n_layer  # positions filled, per layer

    @property
    def length(self) -> int:
        """Number of positions stored in every layer (the position of the next token)."""
        return min(self._lengths)

    @property
    def batch_size(self) -> int:
        return self.k.size(1)

    def layer_length(self, layer: int) -> int:
        return self._lengths[layer]

    def append(self, layer: int, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """Store k, v (B, H, T, D) of `layer`; return all its keys and values so far, (B, H, S, D)."""
        start = self._lengths[layer]
        end = start + k.size(2)
        if end > self.max_len:
            raise ConfigError(
                f"KVCache is full: max_len={self.max_len}, holds {start} positions, {k.size(2)} more "
                "were appended; make a larger cache"
            )
        if k.size(0) != self.batch_size:
            raise ConfigError(f"KVCache batch_size={self.batch_size} but the input has batch {k.size(0)}")
        self.k[layer, :, :, start:end] = k
        self.v[layer, :, :, start:end] = v
        self._lengths[layer] = end
        return self.k[layer, :, :, :end], self.v[layer, :, :, :end]  # views, no copy

    def reorder(self, indices: Tensor | list[int]) -> None:
        """Keep batch rows `indices`, in that order (beam search: each new beam continues an old one).

        Rows may repeat, and the batch may grow or shrink (e.g. from 1 prompt row to `beam_width`).
        """
        indices = torch.as_tensor(indices, dtype=torch.long, device=self.k.device)
        self.k = self.k.index_select(1, indices)
        self.v = self.v.index_select(1, indices)

    def reset(self) -> None:
        self._lengths = [0] * len(self._lengths)

    def memory_bytes(self) -> int:
        """Bytes held: 2 (k and v) * n_layer * B * H * max_len * D * bytes per element."""
        return 2 * self.k.numel() * self.k.element_size()


# ---------------------------------------------------------------------------------------------
# Multi-head attention
# ---------------------------------------------------------------------------------------------


class MultiHeadAttention(nn.Module):
    """H attention heads side by side, each of size D = C / H, then an output projection.

    One Linear computes q, k and v together (one big matrix multiply instead of three).
    fused=True calls torch's scaled_dot_product_attention (a fast kernel); fused=False, or asking
    for the weights, runs the written-out version above. Both compute the same function.
    `layer_idx` tells which slot of a KVCache belongs to this layer.
    """

    def __init__(
        self,
        n_embd: int,
        n_head: int,
        *,
        bias: bool = False,
        dropout: float = 0.0,
        fused: bool = True,
        rope: bool = False,
        max_len: int = 1024,
        layer_idx: int = 0,
        causal: bool = True,
    ) -> None:
        super().__init__()
        if n_embd % n_head:
            raise ConfigError(f"n_embd={n_embd} is not divisible by n_head={n_head}")
        self.n_head, self.head_dim = n_head, n_embd // n_head
        self.fused, self.rope, self.causal = fused, rope, causal
        self.layer_idx = layer_idx
        self.dropout = dropout
        self.qkv = nn.Linear(n_embd, 3 * n_embd, bias=bias)
        self.proj = nn.Linear(n_embd, n_embd, bias=bias)
        self.attn_dropout = nn.Dropout(dropout)
        self.resid_dropout = nn.Dropout(dropout)
        if rope:  # a fixed table, not a parameter: persistent=False keeps it out of the state dict
            self.register_buffer("rope_angles", rope_frequencies(self.head_dim, max_len), persistent=False)

    def forward(
        self, x: Tensor, cache: KVCache | None = None, return_weights: bool = False
    ) -> tuple[Tensor, Tensor | None]:
        """x (B, T, C) -> (output (B, T, C), weights (B, H, T, S) if return_weights else None)."""
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=2)  # 3 x (B, T, C)
        q = q.view(B, T, self.n_head, self.head_dim).transpose(1, 2)  # (B, H, T, D)
        k = k.view(B, T, self.n_head, self.head_dim).transpose(1, 2)  # (B, H, T, D)
        v = v.view(B, T, self.n_head, self.head_dim).transpose(1, 2)  # (B, H, T, D)

        start = 0 if cache is None else cache.layer_length(self.layer_idx)  # position of x[:, 0]
        if self.rope:
            if self.rope_angles.dtype != torch.float32:
                # The model was cast (e.g. .half()); angles up to max_len radians need float32.
                self.rope_angles = rope_frequencies(self.head_dim, self.rope_angles.size(0), device=x.device)
            positions = torch.arange(start, start + T, device=x.device)  # (T,)
            q = apply_rope(q, positions, self.rope_angles)
            k = apply_rope(k, positions, self.rope_angles)
        if cache is not None:
            k, v = cache.append(self.layer_idx, k, v)  # (B, H, S, D) with S = start + T

        weights = None
        if return_weights or not self.fused:
            weights = attention_weights(q, k, self.causal)  # (B, H, T, S)
            y = self.attn_dropout(weights) @ v  # (B, H, T, D)
        else:
            y = self._fused_attention(q, k, v)  # (B, H, T, D)
        y = y.transpose(1, 2).reshape(B, T, C)  # (B, T, C): the heads side by side again
        return self.resid_dropout(self.proj(y)), weights

    def _fused_attention(self, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        T, S = q.size(2), k.size(2)
        dropout_p = self.dropout if self.training else 0.0
        if not self.causal or T == 1:
            # Non-causal, or one new query decoding with a cache: it may see every key.
            return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p)
        if S == T:
            # No cached prefix: the plain lower-triangular mask, which the kernel builds itself.
            return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p, is_causal=True)
        # Several new queries after a cached prefix. is_causal would align the triangle at the top
        # left (query 0 seeing only key 0), which is wrong here, so pass the shifted mask.
        mask = causal_mask(T, S, device=q.device)  # (T, S)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p)
