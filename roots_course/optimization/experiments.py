"""Small training runs side by side: the same data, the same starting weights, the same batches, and
one setting changed. That is what a fair comparison of optimizers, learning rates, clipping or batch
sizes needs, and it is all this module does.

    variants = {"sgd": cfg_a, "adamw": cfg_b}        # TrainConfigs that differ in one thing
    runs = compare(variants, model_config, train_ids, val_ids, device, seed=1337)
    runs["adamw"].final_val_loss, runs["adamw"].history

Every run builds its model from the same seed (identical initial weights) and ``train`` draws its
batches from ``cfg.seed`` (identical batches while the batch size is equal). The loop's own log lines
are kept (``RunResult.log``) rather than printed: one summary line per run is easier to read.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from roots_course.core.device import seed_everything
from roots_course.errors import ConfigError
from roots_course.core.model import GPT, GPTConfig
from roots_course.core.train import TrainConfig, TrainResult, train

NO_CLIP = 1e9     # a clipping threshold no gradient reaches: the norm is measured, nothing is clipped


def heads_for(width: int, head_dim: int = 32) -> int:
    """A number of attention heads for a model of ``width``: heads of ``head_dim`` dimensions (one
    head when the model is narrower than that)."""
    if width < 1:
        raise ConfigError(f"width must be a positive integer, got {width!r}")
    heads = max(1, width // head_dim)
    while width % heads:
        heads -= 1
    return heads


def small_model_config(base: GPTConfig | Mapping[str, Any], vocab_size: int, *, n_embd: int | None = None,
                       n_layer: int | None = None, block_size: int | None = None) -> GPTConfig:
    """``base`` (a GPTConfig or a profile's ``model`` mapping) with some sizes replaced; the number of
    heads follows the width (``heads_for``) whenever the width changes."""
    fields = base.to_dict() if isinstance(base, GPTConfig) else dict(base)
    fields["vocab_size"] = vocab_size
    if n_embd is not None and n_embd != fields.get("n_embd"):
        fields["n_embd"] = n_embd
        fields["n_head"] = heads_for(n_embd)
    if n_layer is not None:
        fields["n_layer"] = n_layer
    if block_size is not None:
        fields["block_size"] = block_size
    return GPTConfig(**fields).validate()


@dataclass
class RunResult:
    """One finished run: what was trained, how, and what happened."""

    name: str
    config: TrainConfig
    model_config: GPTConfig
    result: TrainResult
    parameters: int
    non_embedding_parameters: int
    wall_s: float
    log: str = ""
    model: GPT | None = None

    @property
    def history(self) -> list[dict[str, Any]]:
        return self.result.history

    @property
    def final_val_loss(self) -> float:
        """The last validation loss; +inf when training diverged (a NaN loss), so comparisons hold."""
        loss = self.result.final_val_loss
        return math.inf if loss is None or not math.isfinite(loss) else float(loss)

    @property
    def tokens_per_step(self) -> int:
        return self.config.batch_size * self.config.grad_accum * self.model_config.block_size

    def series(self, key: str) -> tuple[list[int], list[float]]:
        """(steps, values) of one history column, skipping rows where it is missing."""
        rows = [r for r in self.history if r.get(key) is not None]
        return [r["step"] for r in rows], [float(r[key]) for r in rows]

    def summary(self) -> dict[str, Any]:
        return {"run": self.name, "optimizer": self.config.optimizer, "lr": self.config.lr,
                "batch_size": self.config.batch_size, "steps": self.result.steps,
                "tokens": self.result.tokens_seen, "final_val_loss": round(self.final_val_loss, 4),
                "tokens_per_s": round(self.result.tokens_per_s), "wall_s": round(self.wall_s, 1)}


def train_small(name: str, model_config: GPTConfig, train_ids: torch.Tensor, val_ids: torch.Tensor,
                cfg: TrainConfig, device: torch.device | str, *, seed: int, model: GPT | None = None,
                keep_model: bool = False, peak_flops: float | None = None) -> RunResult:
    """Build a GPT from ``seed`` (or continue ``model``), train it with ``cfg``; return what happened."""
    if model is None:
        seed_everything(seed)
        model = GPT(model_config)
    started = time.perf_counter()
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        result = train(model, train_ids, val_ids, cfg, device, progress=False, peak_flops=peak_flops)
    return RunResult(name, cfg, model.config, result, model.num_parameters(),
               model.num_parameters(non_embedding=True), time.perf_counter() - started, buffer.getvalue(),
               model if keep_model else None)


def compare(variants: Mapping[str, TrainConfig], model_config: GPTConfig, train_ids: torch.Tensor,
            val_ids: torch.Tensor, device: torch.device | str, *, seed: int,
            say: Callable[[str], None] | None = print) -> dict[str, RunResult]:
    """Train one model per variant, each from the same initial weights; one line per run."""
    runs = {}
    for name, cfg in variants.items():
        runs[name] = run = train_small(name, model_config, train_ids, val_ids, cfg, device, seed=seed)
        if say is not None:
            say(f"{name:<16} val loss {run.final_val_loss:7.4f} after {run.result.steps} steps "
                f"({run.result.tokens_seen:,} tokens, {run.wall_s:.1f} s)")
    return runs


def comparison_config(base: TrainConfig, steps: int, **changes: Any) -> TrainConfig:
    """``base`` resized for a short side run: ``steps`` updates, warmup a tenth of them, a history row
    every step (the curves and the gradient norms need them) and validation only at the end."""
    fields = {"steps": steps, "warmup_steps": max(1, steps // 10), "log_every": 1, "eval_every": 0}
    fields.update(changes)
    return dataclasses.replace(base, **fields).validate()


# Learning rates for the optimizers: AdamW takes the profile's; plain SGD needs a far larger step, since
# its update is lr × gradient and these gradients are small. The multipliers were picked from a grid
# (×1, ×3, ×10, ×30, ×100, ×300, ×1000 of AdamW's rate, 150-200 steps) on the smoke and cpu comparison
# models: the best of each optimizer was kept (SGD: ×100 to ×300; momentum: ×30), so the comparison is
# between tuned optimizers, not between one tuned one and others left at a bad setting.
SGD_LR_FACTOR = 100.0
MOMENTUM_LR_FACTOR = 30.0


def optimizer_variants(base: TrainConfig) -> dict[str, TrainConfig]:
    """Plain SGD, SGD with momentum and AdamW, each at its own (tuned) learning rate."""
    def with_lr(optimizer: str, factor: float) -> TrainConfig:
        return dataclasses.replace(base, optimizer=optimizer, lr=base.lr * factor,
                                   min_lr=base.min_lr * factor).validate()
    return {"SGD": with_lr("sgd", SGD_LR_FACTOR), "SGD + momentum": with_lr("sgd_momentum", MOMENTUM_LR_FACTOR),
            "AdamW": base}


def lr_variants(base: TrainConfig, factors: Sequence[float] = (1 / 30, 1.0, 30.0)) -> dict[str, TrainConfig]:
    """The same run at the learning rate (and floor) times each factor."""
    out = {}
    for f in factors:
        label = "lr" if f == 1 else (f"lr × {f:g}" if f > 1 else f"lr / {1 / f:g}")
        out[label] = dataclasses.replace(base, lr=base.lr * f, min_lr=base.min_lr * f).validate()
    return out


def batch_size_variants(base: TrainConfig, factors: Sequence[float] = (0.25, 1.0, 4.0),
                        evals: int = 4) -> dict[str, TrainConfig]:
    """Batch sizes base × factor with the number of steps scaled so every run sees the same tokens;
    validation ``evals`` times per run, so the curves can be drawn against tokens seen.

    Every run validates on the same windows: ``train`` validates on ``eval_batches`` batches of
    ``batch_size`` windows drawn from one generator seeded with ``cfg.seed``, so ``eval_batches`` is
    set to keep ``eval_batches × batch_size`` the same for every run: the base's count, raised to the
    next multiple of every batch size (see ``validation_windows``). The draws of a CPU generator
    continue one stream, so the runs get the same window starts whatever their batch size.
    """
    out = {}
    tokens = base.batch_size * base.steps
    batches = [max(1, round(base.batch_size * f)) for f in factors]
    every = math.lcm(*batches)
    windows = -(-validation_windows(base) // every) * every      # rounded up to a multiple of each
    for batch in batches:
        steps = max(1, tokens // batch)
        out[f"batch {batch}"] = dataclasses.replace(
            base, batch_size=batch, steps=steps, warmup_steps=max(1, steps // 10),
            eval_every=max(1, steps // evals), log_every=max(1, steps // 50),
            eval_batches=windows // batch).validate()
    return out


def validation_windows(cfg: TrainConfig) -> int:
    """How many windows ``train`` validates on with ``cfg``: ``eval_batches × batch_size``."""
    return cfg.eval_batches * cfg.batch_size


def clip_fraction(run: RunResult, threshold: float) -> float:
    """Share of the recorded steps whose gradient norm (before clipping) exceeded ``threshold``."""
    _, norms = run.series("grad_norm")
    if not norms:
        raise ConfigError(f"run {run.name!r} recorded no gradient norms (train with grad_clip > 0)")
    return sum(n > threshold for n in norms) / len(norms)

