"""Self-attention one step at a time, keeping every intermediate result so that a chapter can show it.

    X (T, C) ─► Q = X W_Q, K = X W_K, V = X W_V        (T, D) each
             ─► scores = Q Kᵀ                            (T, T)  how well query i matches key j
             ─► scaled = scores / √D                     (T, T)  keeps the softmax out of saturation
             ─► masked: -inf above the diagonal          (T, T)  only with a causal mask
             ─► weights = softmax(masked) row by row     (T, T)  each row sums to 1
             ─► output = weights V                       (T, D)  a weighted average of the values

`roots_course.core.attention` computes the same thing in two lines; `attention_steps` spells it out, and
`multi_head_loop` runs the heads of a `MultiHeadAttention` layer one after the other in a Python loop,
so a chapter can check that the layer (written-out and fused) computes exactly that.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import torch
from torch import Tensor

from roots_course.core.attention import MultiHeadAttention, causal_mask
from roots_course.errors import ConfigError


@dataclass
class AttentionSteps:
    """Every intermediate of softmax(Q Kᵀ / √D) V for one input; shapes as in the module docstring
    (with any leading batch dimensions of x in front)."""

    x: Tensor
    q: Tensor
    k: Tensor
    v: Tensor
    scores: Tensor
    scaled: Tensor
    masked: Tensor
    weights: Tensor
    output: Tensor

    def shapes(self) -> dict[str, tuple[int, ...]]:
        """Name -> shape of every step, in computation order."""
        return {f.name: tuple(getattr(self, f.name).shape) for f in fields(self)}


def attention_steps(x: Tensor, w_q: Tensor | None = None, w_k: Tensor | None = None, w_v: Tensor | None = None,
                    causal: bool = False) -> AttentionSteps:
    """Scaled dot-product self-attention of x (..., T, C), step by step.

    w_q, w_k (C, D) and w_v (C, Dv) are the projections; None means none (Q, K or V is x itself,
    the setting of the source document's worked example). causal=True hides later positions.
    """
    q = x if w_q is None else x @ w_q  # (..., T, D)
    k = x if w_k is None else x @ w_k  # (..., T, D)
    v = x if w_v is None else x @ w_v  # (..., T, Dv)
    if q.size(-1) != k.size(-1):
        raise ConfigError(f"queries and keys must have the same size, got {q.size(-1)} and {k.size(-1)}")
    scores = q @ k.transpose(-2, -1)  # (..., T, T)
    scaled = scores / math.sqrt(q.size(-1))  # (..., T, T)
    if causal:
        allowed = causal_mask(q.size(-2), k.size(-2), device=x.device)  # (T, T)
        masked = scaled.masked_fill(~allowed, float("-inf"))
    else:
        masked = scaled
    weights = torch.softmax(masked, dim=-1)  # (..., T, T)
    output = weights @ v  # (..., T, Dv)
    return AttentionSteps(x, q, k, v, scores, scaled, masked, weights, output)


def multi_head_loop(layer: MultiHeadAttention, x: Tensor) -> Tensor:
    """What `layer` computes, with its heads run one at a time: x (B, T, C) -> (B, T, C).

    Head h reads dimensions h·D .. (h+1)·D - 1 of Q, K and V (D = C / H), attends on its own, and
    the H outputs are put side by side and mixed by the output projection. No dropout (eval mode).
    """
    if layer.rope:
        raise ConfigError("multi_head_loop spells out plain attention; this layer uses RoPE")
    C = x.size(-1)
    D = layer.head_dim
    q, k, v = layer.qkv(x).split(C, dim=-1)  # 3 x (B, T, C)
    heads = []
    for h in range(layer.n_head):
        part = slice(h * D, (h + 1) * D)
        weights = torch.softmax(_masked_scores(q[..., part], k[..., part], layer.causal), dim=-1)  # (B, T, T)
        heads.append(weights @ v[..., part])  # (B, T, D)
    return layer.proj(torch.cat(heads, dim=-1))  # (B, T, C)


def head_projections(layer: MultiHeadAttention, head: int) -> tuple[Tensor, Tensor, Tensor]:
    """W_Q, W_K, W_V (C, D) of one head of `layer`, cut out of its fused qkv Linear, so that
    x @ W_Q is that head's queries (nn.Linear stores its weight transposed: (out, in))."""
    if layer.qkv.bias is not None:
        raise ConfigError("head_projections covers layers without biases (the course's GPT has none)")
    if not 0 <= head < layer.n_head:
        raise ConfigError(f"head must be in 0..{layer.n_head - 1}, got {head}")
    W = layer.qkv.weight  # (3C, C)
    C, D = W.size(1), layer.head_dim
    rows = [slice(part * C + head * D, part * C + (head + 1) * D) for part in range(3)]
    return tuple(W[r].T for r in rows)  # 3 x (C, D)


def block_input(model, ids: Tensor) -> Tensor:
    """What the first attention layer of `model` (a roots_course GPT) reads for ids (T,) or (B, T):
    token embeddings plus position vectors, through the first block's LayerNorm. -> (..., T, C)"""
    c = model.config
    if c.position == "rope":
        raise ConfigError("block_input covers models whose positions are added to the embeddings")
    T = ids.size(-1)
    x = model.tok_emb(ids)  # (..., T, C)
    if c.position == "learned":
        x = x + model.pos_emb(torch.arange(T, device=ids.device))
    elif c.position == "sinusoidal":
        x = x * math.sqrt(c.n_embd) + model.pos_table[:T]
    return model.blocks[0].ln1(x)


def _masked_scores(q: Tensor, k: Tensor, causal: bool) -> Tensor:
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))  # (B, T, T)
    if causal:
        scores = scores.masked_fill(~causal_mask(q.size(-2), k.size(-2), device=q.device), float("-inf"))
    return scores


def head_habits(maps: list[Tensor]) -> list[dict[str, float | int]]:
    """Where each head of a causal model puts its weight, averaged over query positions 1..T-1.

    maps: per layer, weights (H, T, T) for one sequence (e.g. from GPT.attention_maps, batch row 0).
    For every (layer, head): the mean weight on the query's own token, on the token just before it,
    and on the first token of the sequence (query 0 is left out: it can only look at itself).
    The entropy (in bits) says how spread out the weights are: 0 is one token, log2(i+1) uniform.
    """
    rows = []
    for layer, weights in enumerate(maps):
        weights = weights.float()
        T = weights.size(-1)
        if T < 3:
            raise ConfigError(f"head_habits needs at least 3 positions, got {T}")
        queries = torch.arange(1, T)
        for h in range(weights.size(0)):
            w = weights[h]  # (T, T)
            p = w[1:].clamp_min(1e-12)
            entropy = -(w[1:] * p.log2()).sum(-1)  # (T-1,)
            rows.append({"layer": layer + 1, "head": h + 1,
                         "self": float(w[queries, queries].mean()),
                         "previous token": float(w[queries, queries - 1].mean()),
                         "first token": float(w[queries, 0].mean()),
                         "entropy (bits)": float(entropy.mean())})
    return rows
