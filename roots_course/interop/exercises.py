"""The transformers appendix's exercises: reference solutions and the cases they are checked on.

Try the exercises in the notebook (notebooks/06_transformers.ipynb) before reading on: the check cell
compares your function with the reference below on every case (``roots_course.exercises.check``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from roots_course.course.exercises import Exercise, close

# --- 1. GPT-2's MLP, from the exported (Conv1D) weights -------------------------------------------


def gpt2_mlp(x: Tensor, fc_w: Tensor, fc_b: Tensor, proj_w: Tensor, proj_b: Tensor) -> Tensor:
    """GPT-2's feed-forward block with Conv1D weights stored (in, out): x (T, C) -> (T, C).

    Conv1D computes x @ W + b (no transpose, unlike nn.Linear's x @ Wᵀ + b); the GELU is the exact
    (erf) one, which is what activation_function="gelu" selects.
    """
    return F.gelu(x @ fc_w + fc_b) @ proj_w + proj_b


def _mlp_cases() -> list[tuple]:
    g = torch.Generator().manual_seed(6)
    cases = []
    for T, C in ((1, 4), (5, 8), (7, 16)):
        cases.append((torch.randn(T, C, generator=g), torch.randn(C, 4 * C, generator=g),
                      torch.randn(4 * C, generator=g), torch.randn(4 * C, C, generator=g), torch.zeros(C)))
    return cases


# --- 2. GPT-NeoX's fused q/k/v layout --------------------------------------------------------------


def neox_qkv_rows(weight: Tensor, n_head: int) -> Tensor:
    """Reorder the rows of our fused projection, [all q | all k | all v] (3C, ...), into GPT-NeoX's
    layout, [q_0 k_0 v_0 | q_1 k_1 v_1 | ...]: for each head its query, key and value rows together."""
    C3 = weight.size(0)
    D = C3 // (3 * n_head)
    return weight.reshape(3, n_head, D, *weight.shape[1:]).transpose(0, 1).reshape(C3, *weight.shape[1:])


def _qkv_cases() -> list[tuple]:
    g = torch.Generator().manual_seed(7)
    return [(torch.arange(12.0), 2), (torch.randn(24, 8, generator=g), 4), (torch.randn(48, 16, generator=g), 2),
            (torch.randn(6, 3, generator=g), 1)]


# --- 3. the log-probability of a sentence, from logits ---------------------------------------------


def log_prob_from_logits(logits: Tensor, ids: Tensor, start: int = 1) -> float:
    """Sum over t >= start of log p(ids[t] | ids[:t]), in nats, given logits (T, V) of a causal model
    run on ids (T,): row t - 1 of the logits predicts token t."""
    logp = torch.log_softmax(logits.float(), dim=-1)  # (T, V)
    targets = ids[start:]  # (T - start,)
    return float(logp[start - 1 : -1].gather(1, targets[:, None]).sum())


def _logp_cases() -> list[tuple]:
    g = torch.Generator().manual_seed(8)
    cases = []
    for T, V, start in ((2, 5, 1), (6, 11, 1), (9, 30, 4), (4, 3, 3)):
        cases.append((3 * torch.randn(T, V, generator=g), torch.randint(0, V, (T,), generator=g), start))
    return cases


EXERCISES = {
    "gpt2_mlp": Exercise("gpt2_mlp", gpt2_mlp, _mlp_cases, close(rtol=1e-4, atol=1e-4),
                         hint="Conv1D is x @ W + b with W of shape (in, out); use F.gelu (exact), not the tanh one"),
    "neox_qkv_rows": Exercise("neox_qkv_rows", neox_qkv_rows, _qkv_cases,
                              hint="view the rows as (3, n_head, D, ...), swap the first two axes, flatten back"),
    "log_prob_from_logits": Exercise("log_prob_from_logits", log_prob_from_logits, _logp_cases,
                                     lambda got, expected: _near(got, expected),
                                     hint="log_softmax each row; row t - 1 scores token t; sum from t = start"),
}


def _near(got: float, expected: float) -> None:
    if not abs(float(got) - expected) <= 1e-4 * max(1.0, abs(expected)):
        raise AssertionError(f"expected {expected:.6f}, got {got!r}")
