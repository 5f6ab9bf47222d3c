"""Why a Transformer needs to be told where each token is: a permutation test.

Attention treats its keys as a set: a weighted average does not care in which order its terms are
listed, and the embedding, the layer norms and the MLP work on each position alone. So a stack of
blocks with no position information and no causal mask is *permutation-equivariant*: shuffle the
input tokens and the outputs come out shuffled the same way, otherwise identical. Such a model
cannot tell "dog bites man" from "man bites dog".

Two things break the symmetry: a position signal (learned or sinusoidal vectors added to the
embeddings, or RoPE rotations of queries and keys), and the causal mask itself (token i sees
exactly i + 1 tokens, which tells it where it is; Haviv et al. 2022 show that causal language models
without position embeddings do learn positions this way).

`permutation_gap` measures how far a model is from equivariance; `order_test` runs it for every kind
of position signal, with and without the causal mask.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import Tensor

from roots_course.core.attention import MultiHeadAttention
from roots_course.core.model import GPT, POSITIONS, GPTConfig
from roots_course.core.modes import evaluating


@contextmanager
def causal_attention(model: GPT, causal: bool) -> Iterator[GPT]:
    """Temporarily switch the causal mask of every attention layer of `model` on or off."""
    layers = [m for m in model.modules() if isinstance(m, MultiHeadAttention)]
    before = [layer.causal for layer in layers]
    try:
        for layer in layers:
            layer.causal = causal
        yield model
    finally:
        for layer, was in zip(layers, before):
            layer.causal = was


def permutation_gap(model: GPT, ids: Tensor, perm: Tensor, causal: bool = True) -> float:
    """Largest |logits(shuffled input) − shuffled logits(input)|, relative to the largest |logit|.

    ids (B, T); perm (T,) a permutation of positions. 0 (up to rounding) means the model is blind to
    the order of its input: shuffling the tokens only shuffles its outputs.
    """
    with evaluating(model), causal_attention(model, causal):
        logits = model(ids).logits  # (B, T, V)
        shuffled = model(ids[:, perm]).logits  # (B, T, V)
    return float((shuffled - logits[:, perm]).abs().max() / logits.abs().max())


def order_test(config: GPTConfig, ids: Tensor, perm: Tensor, seed: int = 0,
               positions: tuple[str, ...] = POSITIONS) -> list[dict[str, object]]:
    """permutation_gap of a freshly initialised float64 GPT with `config`'s shape, for each kind of
    position signal, with the causal mask on and off. Training is not needed: equivariance is a
    property of the architecture, and float64 keeps rounding (about 1e-16) far below any real gap."""
    rows = []
    for position in positions:
        torch.manual_seed(seed)
        model = GPT(dataclasses.replace(config, position=position, dropout=0.0)).double()
        for causal in (False, True):
            rows.append({"position": position, "causal mask": causal,
                         "relative gap": permutation_gap(model, ids, perm, causal)})
    return rows
