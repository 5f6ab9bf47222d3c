"""Which hardware to run on, in which precision, with which random seed and how many threads.

The order of preference is CUDA, then Apple's MPS, then the CPU. MPS is only chosen when asked for
or when it is the only accelerator: users of other small-GPT courses report losses on MPS that differ
from the CPU's, so the course reports the device it used next to every number.
"""

from __future__ import annotations

import contextlib
import os
import random
from typing import ContextManager

import numpy as np
import torch

from roots_course._offline import choose_wait_policy
from roots_course.errors import ConfigError

DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")


def pick_device(preference: str = "auto") -> torch.device:
    """Return the device to use: ``auto`` picks cuda → mps → cpu; a named device must exist."""
    preference = (preference or "auto").lower()
    kind = preference.split(":")[0]
    if kind not in DEVICE_CHOICES:
        raise ConfigError(f"device must be one of {', '.join(DEVICE_CHOICES)}, got {preference!r}")
    if kind == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if kind == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device 'cuda' was asked for but torch sees no CUDA GPU; use device='auto' or 'cpu'")
    if kind == "mps" and not torch.backends.mps.is_available():
        raise ConfigError("device 'mps' was asked for but this machine has no MPS backend; use 'auto' or 'cpu'")
    return torch.device(preference)


def autocast_dtype(device: torch.device) -> torch.dtype | None:
    """The reduced precision to train in: bf16 on GPUs that support it, else None (full fp32)."""
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return None


def autocast_context(device: torch.device, enabled: bool = True) -> ContextManager:
    """Mixed precision where it pays: bf16 autocast on CUDA, nothing on CPU/MPS.

    bf16 has fp32's exponent range, so unlike fp16 it needs no loss scaling.
    """
    dtype = autocast_dtype(device) if enabled else None
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def configure_backends(device: torch.device) -> None:
    """Let matmuls use TF32 tensor cores on CUDA (about 3 decimal digits, ample for training), and keep
    the flash kernel of scaled-dot-product attention allowed (torch's default; the model's fused
    attention calls it with ``is_causal=True`` and no mask, which is what flash needs). The CPU is
    left as it is."""
    if torch.device(device).type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cuda.enable_flash_sdp(True)


def backend_settings(device: torch.device) -> dict[str, object]:
    """What the fast paths are set to, for a report: TF32, the SDPA kernels allowed, autocast dtype.

    Flash attention on CUDA needs fp16/bf16 inputs (bf16 autocast gives them), a head size that is a
    multiple of 8 up to 256, and ``is_causal`` rather than an explicit mask.
    """
    device = torch.device(device)
    dtype = autocast_dtype(device) if device.type == "cuda" and torch.cuda.is_available() else None
    return {
        "device": device.type,
        "tf32_matmul": bool(torch.backends.cuda.matmul.allow_tf32),
        "tf32_cudnn": bool(torch.backends.cudnn.allow_tf32),
        "flash_sdp_enabled": bool(torch.backends.cuda.flash_sdp_enabled()),
        "mem_efficient_sdp_enabled": bool(torch.backends.cuda.mem_efficient_sdp_enabled()),
        "math_sdp_enabled": bool(torch.backends.cuda.math_sdp_enabled()),
        "autocast_dtype": None if dtype is None else str(dtype).replace("torch.", ""),
        "threads": torch.get_num_threads(),
    }


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch (all devices) and return a CPU generator seeded the same way."""
    if not isinstance(seed, int) or seed < 0:
        raise ConfigError(f"seed must be a non-negative integer, got {seed!r}")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    generator = torch.Generator()
    generator.manual_seed(seed)
    return generator


def set_threads(n: int | None) -> int:
    """Use ``n`` CPU threads for torch (None keeps the current setting); return the number in force.

    On a busy 2-core machine one thread can beat two: the second thread waits on the core that
    another process holds. benchmarks/train_throughput.py measures it.
    """
    if n is not None:
        if not isinstance(n, int) or n < 1:
            raise ConfigError(f"threads must be a positive integer, got {n!r}")
        torch.set_num_threads(n)
    return torch.get_num_threads()


def describe(device: torch.device) -> str:
    """A human-readable name of the device, for provenance; on the CPU with the OpenMP wait policy and why
    it was chosen (``roots_course._offline.choose_wait_policy``)."""
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    if device.type == "mps":
        return "mps (Apple GPU)"
    policy, why = choose_wait_policy()
    return f"cpu ({os.cpu_count()} cores, {torch.get_num_threads()} threads, OMP_WAIT_POLICY={policy}: {why})"


def matmul_ceiling_flops(device: torch.device | None = None, n: int = 1024, dtype: torch.dtype = torch.float32,
                         repeats: int = 20) -> float:
    """Measure the FLOP/s of a large square matmul here: the ceiling that model FLOP utilisation is
    measured against.

    A ceiling is the best the device does, so this keeps the fastest of ``repeats`` timings: on a
    shared machine a median taken while another job held a core would set the ceiling too low, and
    a training run that later had the machine to itself would then show a utilisation above 100%.
    A product of two (n, n) matrices costs 2·n³ FLOPs (one multiply and one add per term).
    """
    import time

    device = device or torch.device("cpu")
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    for _ in range(2):  # warm up caches, thread pools and kernels
        a @ b
    sync()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        sync()
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best
