"""Batches and evaluation: random windows cut from one long stream of token ids, and the mean loss
over a fixed set of such windows.

A window of T + 1 tokens gives the inputs x (the first T) and the targets y (the last T: each the
token that follows). Windows are cut with index arithmetic on a strided view (``unfold``), not with a
Python loop, so a batch costs microseconds.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from roots_course.core.device import autocast_context
from roots_course.core.modes import evaluating
from roots_course.errors import DataError


def get_batch(tokens: torch.Tensor, batch_size: int, block_size: int,
              generator: torch.Generator | None = None,
              device: torch.device | str = "cpu", *, rank: int = 0,
              world_size: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """``batch_size`` random windows of ``block_size + 1`` tokens: inputs x and targets y = x shifted.

    ``tokens`` is one long 1-D integer tensor (any integer dtype; int32 halves the memory).
    Returns int64 tensors x, y of shape (B, T) on ``device``.

    Data-parallel training: ``world_size × batch_size`` starts are drawn (the global batch, the same
    draw in every process) and process ``rank`` keeps the slice ``[rank·B, (rank+1)·B)``. With the
    defaults (1 process) this is the plain draw.
    """
    if not 0 <= rank < world_size:
        raise ValueError(f"rank must be in [0, world_size={world_size}), got {rank}")
    n = tokens.numel()
    if tokens.dim() != 1:
        raise DataError(f"tokens must be a 1-D tensor of token ids, got shape {tuple(tokens.shape)}")
    if n < block_size + 1:
        raise DataError(f"need at least block_size + 1 = {block_size + 1} tokens to cut a window, got {n}")
    starts = torch.randint(n - block_size, (batch_size * world_size,), generator=generator)  # (W·B,)
    starts = starts[rank * batch_size:(rank + 1) * batch_size]                         # (B,) this process's
    windows = tokens.unfold(0, block_size + 1, 1)         # (n - T, T + 1), a view: nothing is copied
    if windows.device != starts.device:
        starts = starts.to(windows.device)
    x = windows[starts, :-1].long()                       # (B, T)
    y = windows[starts, 1:].long()                        # (B, T)
    device = torch.device(device)
    if device.type == "cuda" and x.device.type == "cpu":
        # pinned host memory lets the copy run asynchronously while the GPU is still busy
        x = x.pin_memory().to(device, non_blocking=True)
        y = y.pin_memory().to(device, non_blocking=True)
    elif x.device != device:
        x, y = x.to(device), y.to(device)
    return x, y


def estimate_loss(model: nn.Module, tokens: torch.Tensor, block_size: int, batches: int, batch_size: int,
                  generator: torch.Generator | None = None, *, seed: int = 0, rank: int = 0,
                  world_size: int = 1) -> float:
    """Mean loss over ``batches`` random batches, in eval mode, without building a graph.

    With no ``generator`` the windows come from a fresh one seeded with ``seed``: every call sees the
    same windows, so validation losses at different steps are comparable (and noise-free relative
    to each other). The model's train/eval mode is restored afterwards. ``rank``/``world_size``: this
    process's share of each global batch (see ``get_batch``); ``train`` averages the shares.
    """
    device = next(model.parameters()).device
    if generator is None:
        generator = torch.Generator().manual_seed(seed)
    tokens = as_tokens(tokens, "tokens")
    share = {"rank": rank, "world_size": world_size} if world_size > 1 else {}
    with evaluating(model), autocast_context(device):
        losses = []
        for _ in range(batches):
            x, y = get_batch(tokens, batch_size, block_size, generator, device, **share)  # (B, T) each
            losses.append(model(x, y).loss.float())
        return torch.stack(losses).mean().item()


def as_tokens(tokens: Any, name: str) -> torch.Tensor:
    """``tokens`` as a 1-D integer tensor, or DataError naming ``name`` and what is wrong."""
    tokens = torch.as_tensor(tokens)
    if tokens.dtype.is_floating_point or tokens.dtype.is_complex or tokens.dtype == torch.bool:
        raise DataError(f"{name} must hold integer token ids, got dtype {tokens.dtype}")
    if tokens.dim() != 1:
        raise DataError(f"{name} must be a 1-D tensor of token ids, got shape {tuple(tokens.shape)}")
    return tokens


def checked_tokens(train_tokens: Any, val_tokens: Any, block_size: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The training and validation token streams as 1-D integer tensors long enough for one window."""
    train_tokens = as_tokens(train_tokens, "train_tokens")
    val_tokens = None if val_tokens is None else as_tokens(val_tokens, "val_tokens")
    for name, toks in (("train_tokens", train_tokens), ("val_tokens", val_tokens)):
        if toks is not None and toks.numel() < block_size + 1:
            raise DataError(f"{name} has {toks.numel()} tokens; a window needs block_size + 1 = {block_size + 1}")
    return train_tokens, val_tokens
