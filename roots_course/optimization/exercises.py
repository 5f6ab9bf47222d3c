"""Chapter 2's exercises: reference solutions and the cases they are checked on.

Try the exercises in the notebook before reading on: the check cell compares your function with the
reference below on every case (``roots_course.exercises.check``).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable

import torch

from roots_course.course.exercises import Exercise, close


def approx(rel: float = 1e-9, abs_: float = 1e-12):
    """A comparison for `Exercise.compare`: numbers equal up to rounding (math.isclose), also inside
    tuples and lists, so that a formula written in another order still passes."""

    def compare(got, expected) -> None:
        if isinstance(expected, (tuple, list)):
            if not isinstance(got, (tuple, list)) or len(got) != len(expected):
                raise AssertionError(f"expected {len(expected)} values {expected!r}, got {got!r}")
            for g, e in zip(got, expected):
                compare(g, e)
            return
        if not isinstance(got, (int, float)) or isinstance(got, bool):
            raise AssertionError(f"expected a number, got {type(got).__name__}: {got!r}")
        if not math.isclose(got, expected, rel_tol=rel, abs_tol=abs_):
            raise AssertionError(f"expected {expected!r}, got {got!r}")

    return compare

# --- 1. the units of a loss ----------------------------------------------------------------------


def loss_units(loss: float, n_tokens: int, n_chars: int) -> tuple[float, float, float]:
    """A loss in nats per token as (perplexity, bits per token, bits per character), for a text of
    n_tokens tokens and n_chars characters."""
    bits_per_token = loss / math.log(2)
    return math.exp(loss), bits_per_token, bits_per_token * n_tokens / n_chars


def _units_cases() -> list[tuple]:
    return [(0.0, 10, 10), (math.log(2), 100, 100), (math.log(512), 1000, 3100), (3.98, 20_711, 65_000),
            (1.25, 7, 3)]


# --- 2. warmup, then cosine decay ----------------------------------------------------------------


def warmup_cosine(step: int, lr: float, min_lr: float, warmup_steps: int, steps: int) -> float:
    """The learning rate of update ``step`` (0-based): a linear climb lr/W, 2·lr/W, ..., lr over the W
    warmup updates, then half a cosine from lr (at update W) down to min_lr (at the last update, steps - 1),
    and min_lr after that."""
    if step < warmup_steps:
        return lr * (step + 1) / warmup_steps
    decay = steps - 1 - warmup_steps
    progress = 1.0 if decay <= 0 else min(1.0, (step - warmup_steps) / decay)
    return min_lr + 0.5 * (1 + math.cos(math.pi * progress)) * (lr - min_lr)


def _schedule_cases() -> list[tuple]:
    cases = []
    for lr, min_lr, warmup, steps in ((1e-3, 1e-4, 10, 100), (3e-3, 3e-4, 30, 300), (1.0, 0.0, 0, 5),
                                      (2e-3, 2e-4, 5, 6)):
        for step in sorted({0, 1, warmup - 1, warmup, warmup + 1, steps // 2, steps - 2, steps - 1, steps + 3}):
            if step >= 0:
                cases.append((step, lr, min_lr, warmup, steps))
    return cases


# --- 3. parameters and compute --------------------------------------------------------------------


def gpt_compute(n_layer: int, n_embd: int, tokens: int) -> tuple[int, float]:
    """(N, C) for the course's GPT: N its non-embedding parameters (no biases; per block two LayerNorm
    weights of C numbers, W_QKV of 3C², the attention output of C², the MLP's C×4C and 4C×C; one final
    LayerNorm), and C = 6·N·D the floating-point operations of training it on D = tokens tokens."""
    n = n_layer * (12 * n_embd ** 2 + 2 * n_embd) + n_embd
    return n, 6.0 * n * tokens


def _compute_cases() -> list[tuple]:
    return [(1, 16, 1000), (2, 64, 307_200), (6, 192, 5_120_000), (8, 512, 98_304_000), (4, 96, 1)]


# --- 4. an add-k bigram --------------------------------------------------------------------------


def bigram_prob(train_ids: list[int], vocab_size: int, k: float, prev: int, nxt: int) -> float:
    """P(nxt | prev) of a bigram model counted on train_ids with add-k smoothing:
    (count(prev, nxt) + k) / (count(prev followed by anything) + k · V)."""
    pairs = Counter(zip(train_ids, train_ids[1:]))
    followed = sum(c for (a, _), c in pairs.items() if a == prev)
    return (pairs[(prev, nxt)] + k) / (followed + k * vocab_size)


def _bigram_cases() -> list[tuple]:
    text = [0, 1, 2, 0, 1, 2, 0, 1, 3, 3]
    return [(text, 4, 1.0, 0, 1), (text, 4, 0.1, 0, 1), (text, 4, 0.1, 1, 3), (text, 4, 0.5, 3, 0),
            (text, 5, 0.01, 4, 2), ([2, 2, 2, 2], 3, 1.0, 2, 2)]


# --- 5. one AdamW step ----------------------------------------------------------------------------


def adamw_step(param: torch.Tensor, grad: torch.Tensor, m: torch.Tensor, v: torch.Tensor, t: int, lr: float,
               beta1: float, beta2: float, eps: float, weight_decay: float
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Update ``t`` (counted from 1) of AdamW on one tensor: decay the weight (param · (1 − lr·wd)),
    update the running means m ← β₁m + (1−β₁)g and v ← β₂v + (1−β₂)g², correct their bias
    (m̂ = m / (1−β₁ᵗ), v̂ = v / (1−β₂ᵗ)) and step param − lr · m̂ / (√v̂ + ε). Returns new (param, m, v)."""
    param = param * (1 - lr * weight_decay)
    m = beta1 * m + (1 - beta1) * grad
    v = beta2 * v + (1 - beta2) * grad * grad
    m_hat = m / (1 - beta1 ** t)
    v_hat = v / (1 - beta2 ** t)
    return param - lr * m_hat / (v_hat.sqrt() + eps), m, v


def _adamw_cases() -> list[tuple]:
    g = torch.Generator().manual_seed(0)
    cases = []
    for t, lr, wd in ((1, 1e-3, 0.1), (2, 3e-3, 0.0), (10, 1e-2, 0.01), (100, 6e-4, 0.1)):
        p, grad = torch.randn(3, 4, generator=g), torch.randn(3, 4, generator=g)
        m, v = 0.1 * torch.randn(3, 4, generator=g), torch.rand(3, 4, generator=g) * 0.01
        cases.append((p, grad, m, v, t, lr, 0.9, 0.95, 1e-8, wd))
    return cases


# --- 6. one step of SGD with momentum --------------------------------------------------------------


def sgd_momentum_step(param: torch.Tensor, grad: torch.Tensor, buf: torch.Tensor | None, lr: float,
                      momentum: float) -> tuple[torch.Tensor, torch.Tensor]:
    """One step of SGD with momentum, as torch.optim.SGD takes it: the buffer starts as the first
    gradient (``buf`` None), then buf ← μ·buf + g; param ← param − lr·buf. Returns new (param, buf)."""
    buf = grad.clone() if buf is None else momentum * buf + grad
    return param - lr * buf, buf


def _sgd_cases() -> list[tuple]:
    g = torch.Generator().manual_seed(1)
    cases = []
    for lr, mu, first in ((0.1, 0.9, True), (0.1, 0.9, False), (1.0, 0.5, False), (0.01, 0.0, False)):
        p, grad = torch.randn(5, generator=g), torch.randn(5, generator=g)
        cases.append((p, grad, None if first else torch.randn(5, generator=g), lr, mu))
    return cases


def against_torch(kind: str, step_fn: Callable[..., tuple], steps: int = 10, seed: int = 0) -> float:
    """Run ``step_fn`` (``adamw_step`` or ``sgd_momentum_step``, by ``kind``: "adamw" or "sgd") and
    ``torch.optim`` side by side for ``steps`` steps on the same weights and gradients (a quadratic
    loss plus noise); return the largest absolute difference between the two weight tensors."""
    if kind not in ("adamw", "sgd"):
        raise ValueError(f"kind must be 'adamw' or 'sgd', got {kind!r}")
    g = torch.Generator().manual_seed(seed)
    start = torch.randn(4, 3, generator=g)
    target = torch.randn(4, 3, generator=g)
    weight = torch.nn.Parameter(start.clone())
    if kind == "adamw":
        lr, betas, eps, wd = 1e-2, (0.9, 0.95), 1e-8, 0.1
        opt: torch.optim.Optimizer = torch.optim.AdamW([weight], lr=lr, betas=betas, eps=eps, weight_decay=wd)
        state: tuple = (torch.zeros_like(start), torch.zeros_like(start))
    else:
        lr, mu = 0.05, 0.9
        opt = torch.optim.SGD([weight], lr=lr, momentum=mu)
        state = (None,)
    mine = start.clone()
    for t in range(1, steps + 1):
        noise = 0.1 * torch.randn(4, 3, generator=g)
        opt.zero_grad()
        ((weight - target) ** 2).sum().backward()
        weight.grad += noise
        grad_mine = 2 * (mine - target) + noise            # the same gradient, by hand
        opt.step()
        if kind == "adamw":
            mine, m, v = step_fn(mine, grad_mine, *state, t, lr, *betas, eps, wd)
            state = (m, v)
        else:
            mine, buf = step_fn(mine, grad_mine, *state, lr, mu)
            state = (buf,)
    return float((mine - weight.detach()).abs().max())


EXERCISES = {
    "loss_units": Exercise("loss_units", loss_units, _units_cases, approx(),
                           hint="perplexity = exp(loss); bits = nats / ln 2; per character: × tokens / characters"),
    "warmup_cosine": Exercise("warmup_cosine", warmup_cosine, _schedule_cases, approx(),
                              hint="step < W: lr·(step+1)/W; after: progress p = (step−W)/(steps−1−W), capped at 1; "
                                   "min_lr + ½(1 + cos πp)(lr − min_lr)"),
    "gpt_compute": Exercise("gpt_compute", gpt_compute, _compute_cases, approx(),
                            hint="per block: 4C² in attention + 8C² in the MLP + 2C of LayerNorm; then + C"),
    "bigram_prob": Exercise("bigram_prob", bigram_prob, _bigram_cases, approx(),
                            hint="count the pairs (a, b) with zip(ids, ids[1:]); the denominator counts the pairs "
                                 "that start with prev (not the occurrences of prev: the last id has no successor)"),
    "adamw_step": Exercise("adamw_step", adamw_step, _adamw_cases, close(rtol=1e-5, atol=1e-7),
                           hint="decay the weight first (decoupled), then m, v, their bias corrections "
                                "with β**t, and the step lr·m̂/(√v̂ + ε)"),
    "sgd_momentum_step": Exercise("sgd_momentum_step", sgd_momentum_step, _sgd_cases, close(),
                                  hint="when buf is None the buffer is the gradient itself; otherwise "
                                       "buf = μ·buf + g; then param − lr·buf"),
}
