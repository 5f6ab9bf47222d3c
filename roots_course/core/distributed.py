"""Training on several processes at once — several GPUs, or several machines — with PyTorch's
DistributedDataParallel (DDP), launched by ``torchrun``.

    torchrun --nproc_per_node 2 -m roots_course train --profile smoke         # 2 processes, one machine
    torchrun --nnodes 2 --node_rank R --master_addr HOST --master_port 29500 \\
             --nproc_per_node 8 -m roots_course train --profile gpu           # on each of two machines

``torchrun`` starts one process per GPU (or per slice of CPU cores) and tells each who it is through
environment variables: ``RANK`` (0 … WORLD_SIZE-1 across every machine), ``WORLD_SIZE`` (how many
processes in all) and ``LOCAL_RANK`` (which GPU of this machine to use). Every process holds a whole
copy of the model; what they share is the work of one optimizer step:

- **Data.** Every process draws the *same* random window starts for the global batch of
  ``WORLD_SIZE × batch_size`` windows (the batch sampler has the same seed everywhere) and keeps only
  its own slice ``[rank·b, (rank+1)·b)``. Two processes with batch b therefore see exactly the windows
  one process with batch 2b sees, split in two halves: the runs are the same computation.
- **Gradients.** After ``backward`` DDP averages every gradient over the processes (an all-reduce,
  overlapped with the backward pass). The mean of the per-process mean losses is the mean over the
  global batch, so every process ends the step with the gradient one big batch would give, and the
  identical optimizer steps keep the copies identical.
- **Side effects.** Only rank 0 writes checkpoints, metrics and log lines. A checkpoint holds the plain
  model's weights (never the DDP wrapper's), so it loads in one process like any other.

The backend that carries the all-reduce is NCCL between GPUs and Gloo between CPU processes (which
is how the tests run two processes on a laptop). Outside ``torchrun`` every function here is a no-op:
one process is a world of size 1.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from roots_course.core.device import pick_device
from roots_course.errors import ConfigError

ENV_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK")


@dataclass(frozen=True)
class DistEnv:
    """Who this process is in a torchrun job (rank 0 of a world of 1 outside torchrun)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def env_from_torchrun(environ: Mapping[str, str] | None = None) -> DistEnv:
    """Read RANK, WORLD_SIZE and LOCAL_RANK (as torchrun sets them); none set means one process.

    Raises ConfigError when only some are set or a value is not a valid index.
    """
    environ = os.environ if environ is None else environ
    present = [name for name in ENV_VARS if environ.get(name, "") != ""]
    if not present:
        return DistEnv()
    if len(present) != len(ENV_VARS):
        missing = [name for name in ENV_VARS if name not in present]
        raise ConfigError(f"distributed training needs {', '.join(ENV_VARS)} in the environment (torchrun sets "
                          f"them); {', '.join(missing)} missing")
    values = {}
    for name in ENV_VARS:
        try:
            values[name] = int(environ[name])
        except ValueError:
            raise ConfigError(f"environment variable {name} must be an integer, got {environ[name]!r}") from None
    rank, world, local = values["RANK"], values["WORLD_SIZE"], values["LOCAL_RANK"]
    if world < 1 or not 0 <= rank < world or local < 0:
        raise ConfigError(f"inconsistent torchrun environment: RANK={rank}, WORLD_SIZE={world}, LOCAL_RANK={local} "
                          "(need WORLD_SIZE >= 1, 0 <= RANK < WORLD_SIZE, LOCAL_RANK >= 0)")
    return DistEnv(rank, world, local)


def backend_for(device: torch.device) -> str:
    """NCCL between GPUs, Gloo between CPU processes."""
    return "nccl" if torch.device(device).type == "cuda" else "gloo"


def device_for(preference: str, env: DistEnv) -> torch.device:
    """The device of this process: ``pick_device(preference)``, and on CUDA the GPU LOCAL_RANK."""
    device = pick_device(preference)
    if env.is_distributed and device.type == "cuda":
        if env.local_rank >= torch.cuda.device_count():
            raise ConfigError(f"LOCAL_RANK={env.local_rank} but this machine has {torch.cuda.device_count()} "
                              "CUDA GPU(s); start at most one process per GPU (--nproc_per_node)")
        device = torch.device("cuda", env.local_rank)
    if env.is_distributed and device.type == "mps":
        raise ConfigError("distributed training runs on CUDA (NCCL) or the CPU (Gloo), not on MPS")
    return device


def init_distributed(preference: str = "auto", environ: Mapping[str, str] | None = None) -> torch.device:
    """Join the torchrun job (if there is one) and return the device this process trains on.

    Under torchrun: picks ``cuda:LOCAL_RANK`` (or the CPU), makes it the current CUDA device and
    initialises the default process group (NCCL or Gloo) from torchrun's rendezvous variables.
    Outside torchrun: the same as ``pick_device(preference)``; no process group.
    """
    env = env_from_torchrun(environ)
    device = device_for(preference, env)
    if env.is_distributed and not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend=backend_for(device))
    return device


def shutdown() -> None:
    """Leave the process group (if this process is in one)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


@contextlib.contextmanager
def distributed_session(preference: str = "auto") -> Iterator[torch.device]:
    """``with distributed_session("auto") as device:`` — join the torchrun job, leave it at the end."""
    device = init_distributed(preference)
    try:
        yield device
    finally:
        shutdown()


# --- where this process stands ---------------------------------------------------------------------

def active() -> bool:
    """True inside an initialised process group of more than one process."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if active() else 0


def world_size() -> int:
    return dist.get_world_size() if active() else 1


def is_main() -> bool:
    """Rank 0: the one process that writes files and logs."""
    return rank() == 0


def barrier() -> None:
    if active():
        dist.barrier()


@contextlib.contextmanager
def main_first() -> Iterator[None]:
    """Rank 0 runs the block first (e.g. builds and saves the corpus and tokenizer); the others wait,
    then run it too (and find the artifacts ready instead of writing them at the same time)."""
    if active() and not is_main():
        dist.barrier()
    yield
    if active() and is_main():
        dist.barrier()


# --- the model and the numbers the processes share ---------------------------------------------------

def wrap_model(model: nn.Module, device: torch.device) -> nn.Module:
    """The model DDP-wrapped for the backward pass's gradient all-reduce (the model itself with one
    process). DDP copies rank 0's weights to every process when it is built. Keep using the plain
    model for saving, evaluation and generation: only the training forward goes through the wrapper.
    """
    if not active():
        return model
    from torch.nn.parallel import DistributedDataParallel

    device = torch.device(device)
    device_ids = [device.index if device.index is not None else torch.cuda.current_device()] \
        if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=device_ids)


def no_sync(wrapped: nn.Module, skip: bool) -> contextlib.AbstractContextManager:
    """With gradient accumulation, all micro-batches but the last skip the all-reduce (``skip=True``):
    gradients add up locally and are averaged once, on the last backward of the step."""
    if skip and hasattr(wrapped, "no_sync"):
        return wrapped.no_sync()
    return contextlib.nullcontext()


def mean_over_ranks(value: torch.Tensor) -> torch.Tensor:
    """The mean of a tensor over all processes (a copy; the value itself with one process)."""
    if not active():
        return value
    total = value.detach().clone()
    dist.all_reduce(total, op=dist.ReduceOp.SUM)
    return total / dist.get_world_size()
