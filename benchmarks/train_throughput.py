"""Training throughput of roots_course.core.train, printed as JSON.

    python benchmarks/train_throughput.py [--configs reference cpu large] [--steps 30] [--threads 2] [--compile]
                                          [--text FILE [--path-steps 300] [--target-loss 2.0]]

For each named config it runs the course's own ``train()`` (no validation, one history row per step)
and reports the median over steps after a warm-up of: ms/iter, tokens/s, achieved GFLOP/s (from
``GPT.flops_per_token``: 6·N + 12·L·C·T) and that as a fraction of a matmul ceiling measured here, at
the same thread count, just before. It then profiles one training step by phase (data, forward,
backward, optimizer) with the same components, so one can see where the time goes.

Named configs: ``reference`` is the CPU recipe most small-GPT courses publish (4 layers, 4 heads,
width 128, context 64, batch 12, a 65-character vocabulary); ``cpu``/``smoke``/``gpu`` are the course
profiles' models; ``large`` is 6 layers, 6 heads, width 384, context 256, batch 64, vocabulary 65.
Token ids are random: the speed of a step does not depend on which tokens it sees.

With ``--text FILE`` it also times the path users run: ``python -m roots_course train --text FILE
--tokenizer char`` with the reference recipe (the command of ``train_vs_reference.py``: the CLI as chapter 2
calls ``train``, history, log lines, validation and checkpoints included), reported as ``path``: tokens/s
over the whole loop, the median of the speeds it logs, wall time, and the time from launch to the first
validation at or below ``--target-loss`` (default: the run's own final validation loss).

``--compile`` trains through ``torch.compile`` (``TrainConfig.compile``); ``first_step_s`` then holds the
compilation, and the median leaves it out. Compare a run with and without it, end to end: on a CPU the
compile time is rarely won back by the course's short runs.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import roots_course  # noqa: F401  (before torch: it chooses the OpenMP wait policy torch then reads)
import torch
from train_vs_reference import ROOT, child_env, course_command, run_timed, summarize, time_to

from roots_course.core.batches import get_batch
from roots_course.core.device import (
    autocast_context,
    configure_backends,
    describe,
    matmul_ceiling_flops,
    pick_device,
    set_threads,
)
from roots_course.core.model import GPT, GPTConfig
from roots_course.core.train import TrainConfig, make_optimizer, train
from roots_course.course.config import load_profile

NAMED = {
    "reference": (dict(vocab_size=65, block_size=64, n_layer=4, n_head=4, n_embd=128), 12),
    "large": (dict(vocab_size=65, block_size=256, n_layer=6, n_head=6, n_embd=384), 64),
}


def resolve(name: str) -> tuple[GPTConfig, int]:
    if name in NAMED:
        fields, batch = NAMED[name]
        return GPTConfig(**fields), batch
    profile = load_profile(name)
    return profile.model_config(profile.tokenizer.vocab_size), profile.train.batch_size


def measure(name: str, steps: int, warmup: int, device: torch.device, ceiling: float,
            compile: bool = False) -> dict:
    config, batch = resolve(name)
    torch.manual_seed(0)
    model = GPT(config).to(device)
    tokens = torch.randint(0, config.vocab_size, (200_000,))
    cfg = TrainConfig(steps=warmup + steps, batch_size=batch, lr=1e-3, min_lr=1e-4, warmup_steps=2,
                      weight_decay=0.1, grad_clip=1.0, grad_accum=1, eval_every=0, eval_batches=1,
                      log_every=1, seed=0, compile=compile)
    with contextlib.redirect_stdout(sys.stderr):  # keep stdout for the JSON alone
        result = train(model, tokens, None, cfg, device, progress=False)
    per_step = [r["tokens_per_s"] for r in result.history[warmup:]]
    tokens_per_s = statistics.median(per_step)
    step_tokens = batch * config.block_size
    flops = model.flops_per_token() * tokens_per_s
    return {
        "config": name,
        "model": dataclasses.asdict(config),
        "batch_size": batch,
        "parameters": model.num_parameters(),
        "compiled": compile,
        "first_step_s": round(result.history[0]["elapsed_s"], 3),
        "train_wall_s": round(result.wall_s, 2),
        "steps_timed": len(per_step),
        "ms_per_iter": round(1000 * step_tokens / tokens_per_s, 2),
        "tokens_per_s": round(tokens_per_s, 1),
        "achieved_gflops": round(flops / 1e9, 2),
        "fraction_of_matmul_ceiling": round(flops / ceiling, 3),
        "data_fraction_of_step": round(result.data_fraction, 4),
        "phases_ms": profile_step(model, tokens, cfg, device),
    }


def profile_step(model: GPT, tokens: torch.Tensor, cfg: TrainConfig, device: torch.device,
                 repeats: int = 5) -> dict[str, float]:
    """Median milliseconds of each phase of one training step, timed separately."""
    optimizer = make_optimizer(model, cfg, device)
    generator = torch.Generator().manual_seed(0)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    phases: dict[str, list[float]] = {"data": [], "forward": [], "backward": [], "optimizer": []}
    for _ in range(repeats + 1):
        t0 = time.perf_counter()
        x, y = get_batch(tokens, cfg.batch_size, model.config.block_size, generator, device)
        sync(); t1 = time.perf_counter()
        with autocast_context(device):        # bf16 on CUDA, as in train()
            loss = model(x, y).loss
        sync(); t2 = time.perf_counter()
        loss.backward()
        sync(); t3 = time.perf_counter()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        sync(); t4 = time.perf_counter()
        for key, dt in zip(phases, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
            phases[key].append(dt * 1000)
    return {k: round(statistics.median(v[1:]), 2) for k, v in phases.items()}


def measure_path(text: str, steps: int, threads: int | None, target: float | None) -> dict:
    """The CLI's training run on ``text`` (see the module docstring), timed from outside."""
    with tempfile.TemporaryDirectory(prefix="roots_path_") as tmp:
        command = course_command(Path(text).resolve(), Path(tmp) / "run", steps, max(steps // 3, 1), 20, threads)
        lines, wall, status = run_timed(command, ROOT, child_env("course"))
    run = summarize("course", lines, wall, status)
    run["target_loss"] = run["final_val_loss"] if target is None else target
    run["time_to_target_s"] = time_to(run, run["target_loss"])
    return {"command": "python -m roots_course train --text FILE --tokenizer char --set <reference recipe>",
            "steps": steps, **run}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--configs", nargs="+", default=["reference", "cpu"],
                        help="names from: reference, large, smoke, cpu, gpu")
    parser.add_argument("--steps", type=int, default=30, help="timed steps per config")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--compile", action="store_true", help="train through torch.compile")
    parser.add_argument("--text", default=None, help="also time the CLI's training run on this text file")
    parser.add_argument("--path-steps", type=int, default=300)
    parser.add_argument("--target-loss", type=float, default=None)
    args = parser.parse_args()

    threads = set_threads(args.threads)
    device = pick_device(args.device)
    configure_backends(device)            # TF32 on CUDA, as pretrain() sets it
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    ceiling = matmul_ceiling_flops(device, n=4096 if device.type == "cuda" else 1024, dtype=dtype)
    load_before = os.getloadavg()
    results = [measure(name, args.steps, args.warmup, device, ceiling, args.compile) for name in args.configs]
    path = measure_path(args.text, args.path_steps, args.threads, args.target_loss) if args.text else None
    print(json.dumps({
        "benchmark": "train_throughput",
        "device": describe(device),
        "threads": threads,
        "matmul_ceiling_gflops": round(ceiling / 1e9, 1),
        "ceiling_dtype": str(dtype).replace("torch.", ""),
        "cpu_count": os.cpu_count(),
        "load_average_1_5_15_min_before": [round(x, 2) for x in load_before],
        "results": results,
        "path": path,
    }, indent=2))


if __name__ == "__main__":
    main()
