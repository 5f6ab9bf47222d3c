"""Pretraining: the optimizer, the learning-rate schedule and the loop (batches and the validation loss
live in ``roots_course.core.batches``, the progress bar and log lines in ``roots_course.core.progress``).

One training step, in the order the loop runs it::

    lr = lr_at(step, cfg)                         warmup, then cosine decay to min_lr
    repeat grad_accum times:
        x, y = get_batch(train_tokens, ...)       random windows; y is x shifted by one token
        loss = model(x, y).loss                   mean cross-entropy over the window
        (loss / grad_accum).backward()            so the sum of gradients is the mean over the batch
    clip_grad_norm_(params, grad_clip)            one bad batch cannot throw the weights far
    optimizer.step(); zero_grad(set_to_none=True)

Speed on a CPU comes from doing nothing extra per step: the loss is summed as a tensor and read
with ``.item()`` (a sync point on a GPU) only when a history row is written; batches are cut from the
token tensor with index arithmetic rather than Python loops.

Checkpoints (``roots_course.core.checkpoint``) are written at every evaluation; resuming from one continues
bit for bit as if training had never stopped (on the CPU; GPU kernels are not all deterministic).

Optional speed-ups: ``TrainConfig.compile`` runs the training forward (and so its backward) through
``torch.compile``; the model object itself stays eager, so evaluation and generation, whose shapes
change every call, never trigger a recompilation. Under ``torchrun`` (``roots_course.core.distributed``)
the same loop trains data-parallel: each process takes its slice of one global batch, DDP averages
the gradients, and only rank 0 logs and writes checkpoints.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from roots_course.core import distributed
from roots_course.core.batches import checked_tokens, estimate_loss, get_batch
from roots_course.core.checkpoint import ResumePoint, has_checkpoint, json_safe, resume_training, save_training
from roots_course.core.device import autocast_context, seed_everything
from roots_course.core.progress import Meter, TrainLog
from roots_course.errors import ConfigError

OPTIMIZERS = ("adamw", "sgd", "sgd_momentum")



# --- configuration --------------------------------------------------------------------------------

@dataclass(frozen=True)
class TrainConfig:
    """How long and how to train. ``validate()`` checks every value; ``train`` calls it."""

    steps: int = 1000                 # optimizer updates
    batch_size: int = 16              # windows per micro-batch
    lr: float = 1e-3                  # peak learning rate, reached at the end of warmup
    min_lr: float = 1e-4              # learning rate of the last step
    warmup_steps: int = 100
    weight_decay: float = 0.1         # on >= 2-D weights only
    betas: tuple[float, float] = (0.9, 0.95)
    grad_clip: float = 1.0            # max global gradient norm; 0 turns clipping off
    grad_accum: int = 1               # micro-batches per update
    eval_every: int = 100             # steps between validations (0: only at the end)
    eval_batches: int = 20
    optimizer: str = "adamw"          # one of OPTIMIZERS
    momentum: float = 0.9             # for "sgd_momentum"
    seed: int = 0
    log_every: int = 10               # steps between history rows (and log lines)
    compile: bool = False             # torch.compile the training forward (see train()); off: eager

    def validate(self) -> TrainConfig:
        """Raise ConfigError naming the first bad field and what it allows; return self."""
        for name in ("steps", "batch_size", "grad_accum", "eval_batches", "log_every"):
            _check_int(name, getattr(self, name), minimum=1, what="a positive integer")
        for name in ("warmup_steps", "eval_every", "seed"):
            _check_int(name, getattr(self, name), minimum=0, what="a non-negative integer")
        if not _is_number(self.lr) or not 0 < self.lr < math.inf:
            raise ConfigError(f"train.lr must be a positive number, got {self.lr!r}")
        if not _is_number(self.min_lr) or not 0 <= self.min_lr <= self.lr:
            raise ConfigError(f"train.min_lr must be a number between 0 and train.lr ({self.lr}), "
                              f"got {self.min_lr!r}")
        if not _is_number(self.weight_decay) or not 0 <= self.weight_decay < math.inf:
            raise ConfigError(f"train.weight_decay must be a non-negative number, got {self.weight_decay!r}")
        if not (isinstance(self.betas, (tuple, list)) and len(self.betas) == 2
                and all(_is_number(b) and 0 <= b < 1 for b in self.betas)):
            raise ConfigError(f"train.betas must be two numbers in [0, 1), got {self.betas!r}")
        if not _is_number(self.grad_clip) or not 0 <= self.grad_clip < math.inf:
            raise ConfigError(f"train.grad_clip must be a non-negative number (0 turns clipping off), "
                              f"got {self.grad_clip!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"train.optimizer must be one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}")
        if not _is_number(self.momentum) or not 0 <= self.momentum < 1:
            raise ConfigError(f"train.momentum must be a number in [0, 1), got {self.momentum!r}")
        if not isinstance(self.compile, bool):
            raise ConfigError(f"train.compile must be true or false, got {self.compile!r}")
        return self

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["betas"] = list(self.betas)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        """Build and validate a config; unknown keys raise ConfigError listing the allowed ones."""
        allowed = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(d) - set(allowed))
        if unknown:
            raise ConfigError(f"unknown key train.{unknown[0]}; allowed keys: {', '.join(allowed)}")
        d = dict(d)
        if isinstance(d.get("betas"), list):
            d["betas"] = tuple(d["betas"])
        return cls(**d).validate()


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _check_int(name: str, value: Any, minimum: int, what: str) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ConfigError(f"train.{name} must be {what}, got {value!r}")


# --- optimizer and schedule -----------------------------------------------------------------------

def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Two groups: matrices (>= 2-D: linear layers, embeddings) decay; vectors (biases, norms) do not.

    Decay pulls weights toward zero; a norm's gain or a bias has no scale to keep small, so decaying
    it only fights the fit. ``named_parameters`` lists a tied weight once.
    """
    decay = [p for p in model.parameters() if p.requires_grad and p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.dim() < 2]
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return [g for g in groups if g["params"]]


def make_optimizer(model: nn.Module, cfg: TrainConfig,
                   device: torch.device | str | None = None) -> torch.optim.Optimizer:
    """AdamW (decoupled weight decay), plain SGD, or SGD with momentum, as ``cfg.optimizer`` says.

    AdamW uses the fused kernel (one kernel for all parameters) on CUDA and on the CPU, where it is
    the fastest of torch's three implementations for a small model; SGD uses the multi-tensor one.
    The learning rate set here is replaced every step by ``lr_at``.
    """
    device = torch.device(device) if device is not None else next(model.parameters()).device
    groups = parameter_groups(model, cfg.weight_decay)
    if cfg.optimizer == "adamw":
        fused = device.type in ("cuda", "cpu")
        return torch.optim.AdamW(groups, lr=cfg.lr, betas=tuple(cfg.betas), fused=fused)
    if cfg.optimizer in ("sgd", "sgd_momentum"):
        momentum = cfg.momentum if cfg.optimizer == "sgd_momentum" else 0.0
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=momentum, foreach=True)
    raise ConfigError(f"train.optimizer must be one of {', '.join(OPTIMIZERS)}, got {cfg.optimizer!r}")


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Learning rate for update number ``step`` (0-based): linear warmup, then cosine to ``min_lr``.

    Warmup climbs lr/W, 2·lr/W, …, lr over the first W steps; the cosine then falls from lr at step W
    to min_lr at the last step (steps - 1) and stays there after it.
    """
    if step < 0:
        raise ValueError(f"step must be >= 0, got {step}")
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    decay_steps = cfg.steps - 1 - cfg.warmup_steps
    progress = 1.0 if decay_steps <= 0 else min(1.0, (step - cfg.warmup_steps) / decay_steps)
    return cfg.min_lr + 0.5 * (1.0 + math.cos(math.pi * progress)) * (cfg.lr - cfg.min_lr)


# --- the training loop ----------------------------------------------------------------------------

@dataclass
class TrainResult:
    """What a call to ``train`` did. ``steps``, ``tokens_seen`` and ``wall_s`` count from step 0
    (across resumes); ``tokens_per_s`` and ``data_fraction`` are measured in this call only."""

    history: list[dict[str, Any]]
    final_train_loss: float | None
    final_val_loss: float | None
    steps: int
    tokens_seen: int
    wall_s: float
    tokens_per_s: float
    data_fraction: float                # share of training time spent cutting batches
    checkpoint: str | None = None
    resumed_from_step: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return json_safe(dataclasses.asdict(self))


Callback = Callable[[int, dict[str, Any]], Any]


def train(model: nn.Module, train_tokens: torch.Tensor, val_tokens: torch.Tensor | None, cfg: TrainConfig,
          device: torch.device | str | None = None, *, checkpoint_dir: str | os.PathLike | None = None,
          resume: bool = False, callback: Callback | None = None, progress: bool | None = None,
          peak_flops: float | None = None, stop_at: int | None = None,
          checkpoint_state: dict[str, Any] | None = None) -> TrainResult:
    """Train ``model`` in place on windows of ``train_tokens`` for ``cfg.steps`` updates.

    - Every ``cfg.log_every`` steps (and at each validation and the last step) a history row is
      written: step, lr, train_loss (mean since the previous row), val_loss (None unless validated),
      grad_norm (before clipping, at that step; None without clipping), tokens_per_s, mfu, elapsed_s.
    - Validation (``estimate_loss`` on ``val_tokens``) runs every ``cfg.eval_every`` steps and at the end.
    - With ``checkpoint_dir`` a checkpoint is saved at each validation and at the end; with
      ``resume=True`` training continues from the checkpoint there (if one exists; else from step 0).
    - ``callback(step, row)`` runs after each row, e.g. to print a sample. It runs with the random
      number generators saved and restored around it, so it cannot change the training run.
    - ``progress``: True for a tqdm bar, False for one log line per row, None to choose (a bar in a
      terminal or notebook, lines when the environment variable CI or PAPERMILL is set).
    - ``peak_flops``: the device's peak FLOP/s; with it each row reports the model FLOPs utilisation
      ``mfu = flops_per_token × tokens/s ÷ peak_flops``.
    - ``stop_at``: end this call after that many steps (the schedule still spans ``cfg.steps``), to
      train in chunks; a later call with ``resume=True`` continues.
    - ``checkpoint_state``: JSON-able entries saved in every checkpoint's ``state.json`` besides the
      loop's own (e.g. a digest of the training data, so a resume can check it trains on the same).
    - ``cfg.compile``: the training forward runs through ``torch.compile`` (static shapes); ``model``
      itself is not replaced, so validation, callbacks and generation run eagerly.
    - Inside a torchrun process group (``roots_course.core.distributed``) the step is data-parallel:
      ``cfg.batch_size`` windows per process, ``world_size × batch_size`` per step in all, gradients
      averaged by DDP; token counts and tokens/s are global; only rank 0 logs, calls ``callback`` and
      writes checkpoints (of ``model``, not of the DDP wrapper).
    """
    cfg.validate()
    device = torch.device(device) if device is not None else next(model.parameters()).device
    model.to(device)
    block_size = model.config.block_size
    train_tokens, val_tokens = checked_tokens(train_tokens, val_tokens, block_size)
    checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
    end = cfg.steps if stop_at is None else min(int(stop_at), cfg.steps)
    rank, world = distributed.rank(), distributed.world_size()
    share = {"rank": rank, "world_size": world} if world > 1 else {}     # this process's slice of a batch
    main = rank == 0

    optimizer = make_optimizer(model, cfg, device)
    sampler = torch.Generator().manual_seed(cfg.seed)    # draws the training windows
    past = (resume_training(checkpoint_dir, model, optimizer, sampler, cfg, device, print if main else None)
            if resume else ResumePoint())
    if past.resumed is None:
        seed_everything(cfg.seed)        # dropout's randomness; the model was initialised by the caller
    wrapped = distributed.wrap_model(model, device)         # DDP with several processes, else the model
    step_model = compile_for_training(wrapped) if cfg.compile else wrapped
    params = [p for group in optimizer.param_groups for p in group["params"]]
    meter = Meter(cfg.batch_size * cfg.grad_accum * block_size * world, past.wall_s,
                  getattr(model, "flops_per_token", lambda: None)(), peak_flops, world)
    log = TrainLog(progress, cfg, past.step, end, device, block_size, world) if main else None

    model.train()
    loss_sum = torch.zeros((), device=device)     # summed on the device: no sync until a row is written
    grad_norm = None
    for step in range(past.step, end):
        lr = lr_at(step, cfg)
        for group in optimizer.param_groups:
            group["lr"] = lr
        for micro in range(cfg.grad_accum):
            t0 = time.perf_counter()
            x, y = get_batch(train_tokens, cfg.batch_size, block_size, sampler, device, **share)  # (B, T) each
            meter.data_s += time.perf_counter() - t0
            with distributed.no_sync(wrapped, skip=micro < cfg.grad_accum - 1):
                with autocast_context(device):
                    loss = step_model(x, y).loss
                (loss / cfg.grad_accum).backward()
            loss_sum += loss.detach()
        if cfg.grad_clip > 0:
            grad_norm = torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        meter.steps_in_row += 1
        done = step + 1
        if log is not None:
            log.advance()

        validate = val_tokens is not None and (done == end or (cfg.eval_every > 0 and done % cfg.eval_every == 0))
        if not (validate or done == end or done % cfg.log_every == 0):
            continue
        row = _history_row(done, lr, loss_sum, grad_norm, cfg, meter)    # the one wait for the device
        if validate:
            row["val_loss"] = _validation_loss(model, val_tokens, cfg, device)
        past.history.append(row)
        if log is not None:
            log.row(row, validate)
        if main and checkpoint_dir is not None and (validate or done == end):
            save_training(checkpoint_dir, model, optimizer, sampler, cfg, past.history, meter.wall(),
                          meter.tokens_per_step, checkpoint_state)
        if main and callback is not None:
            _call_back(callback, done, row, model, device)
        loss_sum.zero_()
        meter.start_row()
    if log is not None:
        log.close()
    distributed.barrier()       # every process returns after rank 0 has written the last checkpoint
    return _result(past, max(end, past.step), meter, checkpoint_dir)


def compile_for_training(model: nn.Module) -> nn.Module:
    """``torch.compile`` of the module for the training step: fixed (B, T) shapes, so ``dynamic=False``.

    The result shares the parameters of ``model``; only calls through it are compiled. The first call
    compiles (tens of seconds on a CPU), later ones reuse the kernels. On the CPU the course's small
    models gain little or lose (see benchmarks/train_throughput.py --compile), so it is off by default.
    """
    return torch.compile(model, dynamic=False)


# --- the loop's helpers (resuming and saving: core/checkpoint.py; logs and clocks: core/progress.py) ----

def _history_row(done: int, lr: float, loss_sum: torch.Tensor, grad_norm: torch.Tensor | None,
                 cfg: TrainConfig, meter: Meter) -> dict[str, Any]:
    """One row of the history; reading the loss (``.item()``) is where the loop waits for the device."""
    losses = meter.steps_in_row * cfg.grad_accum
    train_loss = (distributed.mean_over_ranks(loss_sum) / losses).item()
    return {"step": done, "lr": lr, "train_loss": train_loss, "val_loss": None,
            "grad_norm": None if grad_norm is None else grad_norm.item(), **meter.end_row()}


def _validation_loss(model: nn.Module, val_tokens: torch.Tensor, cfg: TrainConfig, device: torch.device) -> float:
    """``estimate_loss`` on this process's share of the validation batches, averaged over processes."""
    rank, world = distributed.rank(), distributed.world_size()
    loss = estimate_loss(model, val_tokens, model.config.block_size, cfg.eval_batches, cfg.batch_size,
                         seed=cfg.seed, rank=rank, world_size=world)
    if world == 1:
        return loss
    return distributed.mean_over_ranks(torch.tensor(loss, device=device, dtype=torch.float64)).item()


def _call_back(callback: Callback, done: int, row: dict[str, Any], model: nn.Module, device: torch.device) -> None:
    """Run the caller's callback with the random number generators saved and restored around it."""
    with torch.random.fork_rng(devices=_rng_devices(device)):
        callback(done, row)
    model.train()


def _result(past: ResumePoint, done: int, meter: Meter, checkpoint_dir: Path | None) -> TrainResult:
    history = past.history
    last_val = next((r["val_loss"] for r in reversed(history) if r["val_loss"] is not None), None)
    return TrainResult(
        history=history,
        final_train_loss=history[-1]["train_loss"] if history else None,
        final_val_loss=last_val,
        steps=done,
        tokens_seen=done * meter.tokens_per_step,
        wall_s=meter.wall(),
        tokens_per_s=meter.steps_trained * meter.tokens_per_step / meter.train_s if meter.train_s > 0 else 0.0,
        data_fraction=meter.data_s / meter.train_s if meter.train_s > 0 else 0.0,
        checkpoint=str(checkpoint_dir) if checkpoint_dir is not None and has_checkpoint(checkpoint_dir) else None,
        resumed_from_step=past.resumed,
    )


def _rng_devices(device: torch.device) -> list[int]:
    return [device.index if device.index is not None else torch.cuda.current_device()] \
        if device.type == "cuda" else []


