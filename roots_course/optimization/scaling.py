"""A small scaling study: how the loss falls as the model (and the compute spent on it) grows.

Kaplan et al. (2020) found that a language model's loss falls as a power law of its size N, of the data
D and of the training compute C, over many orders of magnitude::

    L(N) ≈ (N_c / N) ** α_N          a straight line of slope -α_N on log-log axes

and that training costs about C ≈ 6·N·D floating-point operations: 2 per parameter per token for the
forward pass (a multiply and an add), 4 for the backward pass. Here N counts the non-embedding
parameters, as theirs did (an embedding lookup is a copy, not a multiply).

``fit_power_law`` fits the straight line by least squares on (log x, log y); ``scaling_study`` trains
one model per width for the same number of steps and keeps its validation losses along the way, so the
loss can be drawn against parameters and against compute.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from roots_course.errors import ConfigError
from roots_course.optimization.experiments import RunResult, small_model_config, train_small
from roots_course.core.model import GPTConfig
from roots_course.core.train import TrainConfig


def training_flops(n_params: float, n_tokens: float) -> float:
    """C ≈ 6·N·D: the floating-point operations of training N parameters on D tokens."""
    if n_params < 0 or n_tokens < 0:
        raise ConfigError(f"parameters and tokens must be non-negative, got N={n_params}, D={n_tokens}")
    return 6.0 * n_params * n_tokens


@dataclass(frozen=True)
class PowerLaw:
    """y ≈ prefactor · x ** slope, fitted in log space; r2 is the R² of that straight-line fit."""

    slope: float
    prefactor: float
    r2: float
    n_points: int

    def __call__(self, x: float | np.ndarray) -> float | np.ndarray:
        return self.prefactor * np.asarray(x, dtype=float) ** self.slope

    def __str__(self) -> str:
        return f"y ≈ {self.prefactor:.3g} · x^{self.slope:.3f}  (R² = {self.r2:.3f}, {self.n_points} points)"


def fit_power_law(x: Sequence[float], y: Sequence[float]) -> PowerLaw:
    """Least squares of log y = log a + b · log x. Needs at least two distinct positive x."""
    xs, ys = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if xs.shape != ys.shape or xs.ndim != 1:
        raise ConfigError(f"x and y must be 1-D and of the same length, got shapes {xs.shape} and {ys.shape}")
    if len(xs) < 2 or len(np.unique(xs)) < 2:
        raise ConfigError(f"a power law needs at least two distinct x values, got {xs.tolist()}")
    if (xs <= 0).any() or (ys <= 0).any() or not (np.isfinite(xs).all() and np.isfinite(ys).all()):
        raise ConfigError("a power law is fitted in log space: every x and y must be positive and finite")
    lx, ly = np.log(xs), np.log(ys)
    slope, intercept = np.polyfit(lx, ly, 1)
    residual = ly - (intercept + slope * lx)
    total = ((ly - ly.mean()) ** 2).sum()
    r2 = 1.0 - (residual ** 2).sum() / total if total > 0 else 1.0
    return PowerLaw(float(slope), float(math.exp(intercept)), float(r2), len(xs))


@dataclass
class ScalingRun:
    """One model of the study: its width and size, and (tokens seen, validation loss) along training."""

    width: int
    run: RunResult

    @property
    def parameters(self) -> int:
        """N: non-embedding parameters."""
        return self.run.non_embedding_parameters

    @property
    def points(self) -> list[tuple[int, float]]:
        """(tokens seen, validation loss) at every validation of the run."""
        per_step = self.run.tokens_per_step
        return [(step * per_step, loss) for step, loss in zip(*self.run.series("val_loss"))]

    @property
    def tokens(self) -> int:
        return self.run.result.tokens_seen

    @property
    def final_loss(self) -> float:
        return self.run.final_val_loss

    @property
    def compute(self) -> float:
        return training_flops(self.parameters, self.tokens)


def scaling_study(widths: Sequence[int], base_model: GPTConfig | dict, vocab_size: int, train_ids: torch.Tensor,
                  val_ids: torch.Tensor, cfg: TrainConfig, device: torch.device | str, *, seed: int,
                  n_layer: int, evals: int = 4, say: Callable[[str], None] | None = print) -> list[ScalingRun]:
    """Train one model per width (same depth, data, batches and steps); validate ``evals`` times each."""
    if len(widths) < 2:
        raise ConfigError(f"a scaling study needs at least two widths, got {list(widths)}")
    cfg = dataclasses.replace(cfg, eval_every=max(1, cfg.steps // evals), log_every=max(1, cfg.steps // evals))
    runs = []
    for width in sorted(widths):
        model_config = small_model_config(base_model, vocab_size, n_embd=width, n_layer=n_layer)
        run = train_small(f"width {width}", model_config, train_ids, val_ids, cfg.validate(), device, seed=seed)
        runs.append(ScalingRun(width, run))
        if say is not None:
            say(f"width {width:>4}: N = {run.non_embedding_parameters:>9,} non-embedding parameters, "
                f"val loss {run.final_val_loss:.4f} after {run.result.tokens_seen:,} tokens ({run.wall_s:.1f} s)")
    return runs


def compute_frontier(points: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """The (compute, loss) points no other point beats on both: the lowest loss reached for a budget.
    Sorted by compute; along it the loss strictly falls."""
    frontier: list[tuple[float, float]] = []
    for c, loss in sorted(points, key=lambda p: (p[0], p[1])):
        if not frontier or loss < frontier[-1][1]:
            frontier.append((c, loss))
    return frontier
