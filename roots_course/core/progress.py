"""What a training run shows while it runs: a tqdm progress bar in a terminal or notebook, or one log
line per history row under CI and the pipeline (where a bar's redraws would fill the log); and the
clocks behind the speeds it shows (``Meter``).
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

import torch


class TrainLog:
    """Rank 0's view of a training run: a tqdm bar, or one line per history row."""

    def __init__(self, progress: bool | None, cfg: Any, start: int, end: int, device: torch.device,
                 block_size: int, world: int) -> None:
        self.total = cfg.steps
        self.bar = _progress_bar(progress, cfg.steps, start)
        if self.bar is None:
            print(f"training for steps {start + 1}..{end} of {cfg.steps} on {device} "
                  f"({cfg.batch_size} x {block_size} tokens x {cfg.grad_accum} per step"
                  f"{f' x {world} processes' if world > 1 else ''}, {cfg.optimizer}"
                  f"{', compiled' if cfg.compile else ''})")

    def advance(self) -> None:
        if self.bar is not None:
            self.bar.update(1)

    def row(self, row: dict[str, Any], validated: bool) -> None:
        if self.bar is None:
            print(format_row(row, self.total))
            return
        self.bar.set_postfix_str(format_row(row, self.total, short=True), refresh=False)
        if validated:
            self.bar.write(format_row(row, self.total))

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def format_row(row: dict[str, Any], total: int, short: bool = False) -> str:
    parts = [f"train {row['train_loss']:.4f}"]
    if row["val_loss"] is not None:
        parts.append(f"val {row['val_loss']:.4f}")
    if short:
        return " | ".join(parts)
    parts = [f"step {row['step']:>{len(str(total))}}/{total}", f"lr {row['lr']:.2e}", *parts,
             f"{row['tokens_per_s']:,.0f} tok/s"]
    if row["mfu"] is not None:
        parts.append(f"mfu {100 * row['mfu']:.1f}%")
    parts.append(f"{row['elapsed_s']:.1f} s")
    return " | ".join(parts)


def quiet_environment() -> bool:
    """True under CI and the pipeline (which sets PAPERMILL=1) or when ROOTS_QUIET is set:
    progress bars then give way to one log line every few steps."""
    return any(os.environ.get(var, "").strip().lower() not in ("", "0", "false", "no")
               for var in ("CI", "PAPERMILL", "ROOTS_QUIET"))


def _progress_bar(progress: bool | None, total: int, initial: int):
    """A tqdm bar when asked for (or, with None, when interactive); None means line logs."""
    if progress is None:
        progress = not quiet_environment() and ("ipykernel" in sys.modules or sys.stderr.isatty())
    if not progress:
        return None
    from tqdm.auto import tqdm
    return tqdm(total=total, initial=initial, desc="train", unit="step", dynamic_ncols=True)


class Meter:
    """The clocks of one call to ``train``: wall time, time spent training (between rows, so without
    validation, checkpoints and callbacks) and time spent cutting batches."""

    def __init__(self, tokens_per_step: int, wall_before: float, flops_per_token: int | None,
                 peak_flops: float | None, world: int) -> None:
        self.tokens_per_step, self.wall_before, self.world = tokens_per_step, wall_before, world
        self.flops_per_token, self.peak_flops = flops_per_token, peak_flops
        self.started = self.row_started = time.perf_counter()
        self.train_s = self.data_s = 0.0
        self.steps_in_row = self.steps_trained = 0

    def end_row(self) -> dict[str, Any]:
        """tokens_per_s, mfu and elapsed_s of the row that ends now."""
        now = time.perf_counter()
        self.train_s += now - self.row_started
        self.steps_trained += self.steps_in_row
        tokens_per_s = self.steps_in_row * self.tokens_per_step / max(now - self.row_started, 1e-9)
        mfu = (self.flops_per_token * tokens_per_s / (self.peak_flops * self.world)   # peak_flops is per device
               if self.peak_flops and self.flops_per_token is not None else None)
        return {"tokens_per_s": tokens_per_s, "mfu": mfu, "elapsed_s": self.wall()}

    def start_row(self) -> None:
        self.steps_in_row = 0
        self.row_started = time.perf_counter()

    def wall(self) -> float:
        return self.wall_before + time.perf_counter() - self.started
