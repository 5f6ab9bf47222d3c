"""LoRA, written out: fine-tune a frozen model by learning a small low-rank change to some of its weights.

Hu et al. (2021, "LoRA: Low-Rank Adaptation of Large Language Models") observed that the change
fine-tuning makes to a weight matrix can be well approximated by a matrix of low rank. So instead of
updating W (out × in) itself, keep W frozen and learn two thin matrices:

    y = x Wᵀ  +  (alpha / r) · x Aᵀ Bᵀ          A: (r × in),  B: (out × r),  r ≪ min(in, out)

- **B starts at zero**, so before the first step the wrapped layer computes exactly what the pretrained
  layer did: fine-tuning starts from the pretrained model, not from a perturbed one.
- **A starts random** (here as nn.Linear initialises its weights: Kaiming-uniform), so that B receives a
  non-zero gradient at the first step. (Both zero would leave both gradients zero forever.)
- **alpha / r** scales the update; with alpha fixed, changing r does not change the size of the
  initial updates much, so a learning rate that works for one rank works for others.
- Trainable numbers per wrapped matrix: r · (in + out) instead of in · out.
- After training, B A can be **merged** into W (W' = W + alpha/r · B A): the model is again a plain
  GPT, with no extra cost at inference.

The course wraps the attention projections (``attn.qkv`` and ``attn.proj``), the matrices the paper
adapted (W_q and W_v there; we adapt the whole fused q/k/v matrix and the output projection).

This is the teaching version. The library version is Hugging Face `peft` (``LoraConfig`` and
``get_peft_model``). The course does not install `peft`, so no test compares the two: tests/test_lora.py
checks this module against the formula above, that a fresh adapter leaves the model unchanged, and that
merging is exact.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch import Tensor

from roots_course.errors import ConfigError

DEFAULT_TARGETS = ("attn.qkv", "attn.proj")


class LoRALinear(nn.Module):
    """A frozen nn.Linear plus a trainable low-rank update: base(x) + (alpha / r) · (x Aᵀ) Bᵀ."""

    def __init__(self, base: nn.Linear, r: int, alpha: float, generator: torch.Generator | None = None) -> None:
        super().__init__()
        if r < 1:
            raise ConfigError(f"LoRA rank r must be a positive integer, got {r}")
        self.base = base
        for p in base.parameters():
            p.requires_grad_(False)
        self.r, self.alpha = r, alpha
        self.scale = alpha / r
        device, dtype = base.weight.device, base.weight.dtype
        self.A = nn.Parameter(torch.empty(r, base.in_features, device=device, dtype=dtype))  # (r, in)
        self.B = nn.Parameter(torch.zeros(base.out_features, r, device=device, dtype=dtype))  # (out, r)
        nn.init.kaiming_uniform_(self.A, a=math.sqrt(5), generator=generator)  # nn.Linear's own default init

    def forward(self, x: Tensor) -> Tensor:  # (..., in) -> (..., out)
        update = (x @ self.A.T) @ self.B.T  # (..., r) then (..., out): never forms the (out, in) matrix
        return self.base(x) + self.scale * update

    def delta_weight(self) -> Tensor:
        """The change LoRA makes to the weight, (out, in): scale · B A (rank at most r)."""
        return self.scale * self.B @ self.A

    def merged(self) -> nn.Linear:
        """A plain nn.Linear computing the same function: weight W + scale · B A."""
        base = self.base
        linear = nn.Linear(base.in_features, base.out_features, bias=base.bias is not None,
                           device=base.weight.device, dtype=base.weight.dtype)
        with torch.no_grad():
            linear.weight.copy_(base.weight + self.delta_weight())
            if base.bias is not None:
                linear.bias.copy_(base.bias)
        return linear

    def extra_repr(self) -> str:
        return f"r={self.r}, alpha={self.alpha}"


def _parent(model: nn.Module, name: str) -> tuple[nn.Module, str]:
    *path, leaf = name.split(".")
    module = model
    for part in path:
        module = getattr(module, part)
    return module, leaf


def apply_lora(model: nn.Module, r: int, alpha: float, targets: tuple[str, ...] = DEFAULT_TARGETS,
               generator: torch.Generator | None = None) -> list[str]:
    """Freeze every parameter of ``model``, then wrap each nn.Linear whose name ends with one of
    ``targets`` in a LoRALinear (in place). Returns the names of the wrapped layers. ``generator``
    draws the A matrices (the global generator when None).

    Only the A and B matrices are trainable afterwards: the optimizer of a fine-tuning run sees those
    alone (``roots_course.train.parameter_groups`` keeps only parameters with requires_grad).
    """
    for p in model.parameters():
        p.requires_grad_(False)
    names = [name for name, module in model.named_modules()
             if isinstance(module, nn.Linear) and name.endswith(targets)]
    if not names:
        raise ConfigError(f"no nn.Linear layer of the model has a name ending with {targets}")
    for name in names:
        parent, leaf = _parent(model, name)
        setattr(parent, leaf, LoRALinear(getattr(parent, leaf), r, alpha, generator))
    return names


def merge_lora(model: nn.Module) -> nn.Module:
    """Replace every LoRALinear in ``model`` by the equivalent plain nn.Linear (in place); return model."""
    names = [name for name, module in model.named_modules() if isinstance(module, LoRALinear)]
    for name in names:
        parent, leaf = _parent(model, name)
        setattr(parent, leaf, getattr(parent, leaf).merged())
    return model


def lora_state_dict(model: nn.Module) -> dict[str, Tensor]:
    """Only the adapters: the A and B tensors, e.g. ``blocks.0.attn.qkv.A``. This is all one needs to
    keep per task, next to one shared copy of the pretrained model."""
    return {name: p.detach().clone() for name, p in model.named_parameters()
            if name.endswith((".A", ".B")) and isinstance(model.get_submodule(name.rsplit(".", 1)[0]), LoRALinear)}


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Numbers in the model (a tied matrix counts once); with trainable_only, those with requires_grad."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def lora_parameter_count(in_features: int, out_features: int, r: int) -> int:
    """Trainable numbers of one wrapped matrix: A has r · in, B has out · r."""
    return r * (in_features + out_features)
