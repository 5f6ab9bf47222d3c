"""Is the GPU path really taken? One short script that checks and times it, printed as JSON.

    python benchmarks/gpu_check.py [--profile gpu] [--steps 20] [--no-compile]

On the chosen device (default: auto, i.e. CUDA when there is one) with the profile's model and batch:
- the backend settings after ``configure_backends`` (TF32, which scaled-dot-product kernels are allowed)
  and the autocast dtype (bf16 on CUDA);
- which attention kernel one bf16 training step actually runs (from the profiler's op names: flash,
  memory-efficient or math), and whether the step also runs with SDPA restricted to flash alone;
- that AdamW is the fused kernel;
- ms/iter and tokens/s of the course's ``train()`` eager, then with ``compile=True`` (the first step,
  which compiles, is reported apart and left out of the median), with the achieved TFLOP/s and the
  fraction of a bf16 (CUDA) or fp32 (CPU) matmul ceiling measured here.
It runs on a CPU too (everything but the flash restriction is meaningful there), which is how it is
tried before a GPU is at hand.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import statistics
import sys
import traceback

import roots_course  # noqa: F401  (before torch: it chooses the OpenMP wait policy torch then reads)
import torch

from roots_course.course.config import load_profile
from roots_course.core.device import (
    autocast_context,
    backend_settings,
    configure_backends,
    describe,
    matmul_ceiling_flops,
    pick_device,
    set_threads,
)
from roots_course.core.model import GPT
from roots_course.core.train import TrainConfig, make_optimizer, train


def attention_kernels(model: GPT, x: torch.Tensor, device: torch.device) -> list[str]:
    """The aten scaled-dot-product ops one training forward + backward ran."""
    activities = [torch.profiler.ProfilerActivity.CPU]
    with torch.profiler.profile(activities=activities) as prof:
        with autocast_context(device):
            loss = model(x, x).loss
        loss.backward()
    model.zero_grad(set_to_none=True)
    return sorted({e.key for e in prof.key_averages() if "scaled_dot_product" in e.key or "attention" in e.key})


def flash_only_step(model: GPT, x: torch.Tensor, device: torch.device) -> str:
    from torch.nn.attention import SDPBackend, sdpa_kernel

    try:
        with sdpa_kernel(SDPBackend.FLASH_ATTENTION), autocast_context(device):
            loss = model(x, x).loss
        loss.backward()
        model.zero_grad(set_to_none=True)
        return "ok"
    except RuntimeError as exc:
        return f"failed: {str(exc).splitlines()[0]}"


def timed_training(model_config, batch: int, steps: int, device: torch.device, compile: bool) -> dict:
    torch.manual_seed(0)
    model = GPT(model_config).to(device)
    tokens = torch.randint(0, model_config.vocab_size, (500_000,))
    cfg = TrainConfig(steps=steps + 1, batch_size=batch, warmup_steps=1, eval_every=0, eval_batches=1,
                      log_every=1, compile=compile)
    with contextlib.redirect_stdout(sys.stderr):
        result = train(model, tokens, None, cfg, device, progress=False)
    rates = [row["tokens_per_s"] for row in result.history[1:]]
    tokens_per_s = statistics.median(rates)
    return {
        "compile": compile,
        "first_step_s": round(result.history[0]["elapsed_s"], 2),
        "ms_per_iter": round(1000 * batch * model_config.block_size / tokens_per_s, 2),
        "tokens_per_s": round(tokens_per_s, 1),
        "achieved_tflops": round(model.flops_per_token() * tokens_per_s / 1e12, 3),
        "final_train_loss": round(result.final_train_loss, 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profile", default="gpu")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=None, help="default: the profile's")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile timing")
    args = parser.parse_args()

    set_threads(args.threads)
    device = pick_device(args.device)
    configure_backends(device)
    profile = load_profile(args.profile)
    config = profile.model_config(profile.tokenizer.vocab_size)
    batch = args.batch_size or profile.train.batch_size
    report: dict = {"benchmark": "gpu_check", "device": describe(device), "torch": torch.__version__,
                    "profile": args.profile, "model": dataclasses.asdict(config), "batch_size": batch,
                    "backends": backend_settings(device)}
    if device.type == "cuda":
        report["bf16_supported"] = torch.cuda.is_bf16_supported()
        report["cuda"] = torch.version.cuda

    torch.manual_seed(0)
    model = GPT(config).to(device).train()
    x = torch.randint(0, config.vocab_size, (batch, config.block_size), device=device)
    report["attention_ops_in_a_training_step"] = attention_kernels(model, x, device)
    report["flash_only_training_step"] = flash_only_step(model, x, device)
    report["adamw_fused"] = bool(make_optimizer(model, profile.train, device).defaults.get("fused"))
    del model

    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    ceiling = matmul_ceiling_flops(device, n=8192 if device.type == "cuda" else 1024, dtype=dtype)
    report["matmul_ceiling_tflops"] = round(ceiling / 1e12, 2)
    report["ceiling_dtype"] = str(dtype).replace("torch.", "")
    runs = []
    for compile in (False,) if args.no_compile else (False, True):
        try:
            run = timed_training(config, batch, args.steps, device, compile)
            run["fraction_of_matmul_ceiling"] = round(run["achieved_tflops"] * 1e12 / ceiling, 3)
        except Exception as exc:  # noqa: BLE001 - report it and go on: one broken path must not hide the others
            run = {"compile": compile, "error": "".join(traceback.format_exception_only(exc)).strip()}
        runs.append(run)
    report["training"] = runs
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
