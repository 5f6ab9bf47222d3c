"""Data-parallel training through torchrun (roots_course.core.distributed), on the CPU with the Gloo backend.

The two end-to-end tests start real ``torchrun --standalone --nproc_per_node 2`` subprocesses. Two
processes with batch b must train exactly like one process with batch 2b (each rank's windows are one
half of the single process's draw; DDP averages the two halves' gradients), and the checkpoint the
two-process run writes must load in one process.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import tiny_models

from roots_course.core import distributed
from roots_course.core.checkpoint import has_checkpoint, load_checkpoint
from roots_course.errors import ConfigError
from roots_course.core.model import GPT
from roots_course.core.batches import get_batch
from roots_course.core.train import TrainConfig, train

ROOT = Path(__file__).resolve().parent.parent
TIMING = ("tokens_per_s", "mfu", "elapsed_s")


# --- the torchrun environment ---------------------------------------------------------------------

def test_no_torchrun_variables_means_one_process():
    env = distributed.env_from_torchrun({})
    assert (env.rank, env.world_size, env.local_rank) == (0, 1, 0)
    assert env.is_main and not env.is_distributed
    env = distributed.env_from_torchrun({"RANK": "1", "WORLD_SIZE": "4", "LOCAL_RANK": "1"})
    assert (env.rank, env.world_size, env.local_rank) == (1, 4, 1)
    assert env.is_distributed and not env.is_main


@pytest.mark.parametrize("environ, message", [
    ({"RANK": "0", "WORLD_SIZE": "2"}, "LOCAL_RANK missing"),
    ({"RANK": "x", "WORLD_SIZE": "2", "LOCAL_RANK": "0"}, "RANK must be an integer, got 'x'"),
    ({"RANK": "2", "WORLD_SIZE": "2", "LOCAL_RANK": "0"}, "0 <= RANK < WORLD_SIZE"),
])
def test_a_broken_torchrun_environment_is_named(environ, message):
    with pytest.raises(ConfigError, match=message):
        distributed.env_from_torchrun(environ)


def test_backend_and_device_per_process(monkeypatch):
    assert distributed.backend_for(torch.device("cpu")) == "gloo"
    assert distributed.backend_for(torch.device("cuda", 1)) == "nccl"
    two = distributed.DistEnv(rank=1, world_size=2, local_rank=1)
    assert distributed.device_for("cpu", two) == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert distributed.device_for("cuda", two) == torch.device("cuda", 1)        # GPU number LOCAL_RANK
    assert distributed.device_for("auto", distributed.DistEnv()) == torch.device("cuda")
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(ConfigError, match="LOCAL_RANK=1 but this machine has 1 CUDA GPU"):
        distributed.device_for("cuda", two)


def test_outside_torchrun_everything_is_one_process():
    assert not distributed.active()
    assert (distributed.rank(), distributed.world_size(), distributed.is_main()) == (0, 1, True)
    model = torch.nn.Linear(2, 2)
    assert distributed.wrap_model(model, torch.device("cpu")) is model
    value = torch.tensor(3.0)
    assert distributed.mean_over_ranks(value) is value
    distributed.barrier()
    with distributed.main_first():
        pass
    assert distributed.init_distributed("cpu", environ={}) == torch.device("cpu")
    assert not distributed.active()


def test_the_ranks_windows_are_the_halves_of_one_global_draw():
    tokens = torch.arange(500)
    x, y = get_batch(tokens, 6, 8, torch.Generator().manual_seed(4))
    parts = [get_batch(tokens, 3, 8, torch.Generator().manual_seed(4), rank=r, world_size=2) for r in (0, 1)]
    torch.testing.assert_close(torch.cat([p[0] for p in parts]), x, rtol=0, atol=0)
    torch.testing.assert_close(torch.cat([p[1] for p in parts]), y, rtol=0, atol=0)
    with pytest.raises(ValueError, match="rank must be in"):
        get_batch(tokens, 3, 8, rank=2, world_size=2)


def test_only_rank_0_logs_calls_back_and_writes_checkpoints(tmp_path, monkeypatch, capsys):
    # Pretend to be rank 1 of 2 (no process group: the collectives are stood in for).
    monkeypatch.setattr(distributed, "rank", lambda: 1)
    monkeypatch.setattr(distributed, "world_size", lambda: 2)
    monkeypatch.setattr(distributed, "barrier", lambda: None)
    torch.manual_seed(0)
    model = tiny_models.tiny_gpt(vocab_size=11, block_size=8, n_layer=1)
    calls = []
    cfg = TrainConfig(steps=4, batch_size=2, warmup_steps=1, eval_every=2, eval_batches=1, log_every=1)
    result = train(model, torch.arange(400) % 11, torch.arange(100) % 11, cfg, "cpu",
                   checkpoint_dir=tmp_path / "ckpt", progress=False, callback=lambda s, r: calls.append(s))
    assert capsys.readouterr().out == ""
    assert calls == [] and not has_checkpoint(tmp_path / "ckpt")
    assert len(result.history) == 4 and result.tokens_seen == 4 * 2 * 8 * 2      # global tokens


# --- real processes -------------------------------------------------------------------------------

WORKER = textwrap.dedent('''
    import json, sys
    from pathlib import Path
    import torch
    from roots_course.core import distributed
    from roots_course.core.model import GPT, GPTConfig
    from roots_course.core.train import TrainConfig, train

    out, batch = Path(sys.argv[1]), int(sys.argv[2])
    torch.set_num_threads(1)
    with distributed.distributed_session("cpu") as device:
        torch.manual_seed(0)
        model = GPT(GPTConfig(vocab_size=17, block_size=8, n_layer=1, n_head=2, n_embd=16))
        tokens = torch.randint(0, 17, (4000,), generator=torch.Generator().manual_seed(1))
        val = torch.randint(0, 17, (600,), generator=torch.Generator().manual_seed(2))
        cfg = TrainConfig(steps=10, batch_size=batch, lr=1e-2, min_lr=1e-3, warmup_steps=2, eval_every=5,
                          eval_batches=2, log_every=1, seed=3, grad_accum=2)
        result = train(model, tokens, val, cfg, device, checkpoint_dir=out / "ckpt", progress=False)
        weights = {k: v.tolist() for k, v in model.state_dict_for_saving().items()}
        (out / f"rank{distributed.rank()}.json").write_text(json.dumps(
            {"world": distributed.world_size(), "result": result.to_dict(), "weights": weights}))
''')


def torchrun(*args: str, cwd: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    """``torchrun --standalone --nproc_per_node 2 ARGS`` with the course on the path, one thread each."""
    launcher = Path(sys.executable).with_name("torchrun")
    command = [str(launcher)] if launcher.is_file() else [sys.executable, "-m", "torch.distributed.run"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "ROOTS_QUIET": "1"}
    return subprocess.run([*command, "--standalone", "--nproc_per_node", "2", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, check=False, timeout=timeout)


def run_worker_alone(script: Path, out: Path, batch: int) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "ROOTS_QUIET": "1"}
    for name in distributed.ENV_VARS:
        env.pop(name, None)
    done = subprocess.run([sys.executable, str(script), str(out), str(batch)], env=env, capture_output=True,
                          text=True, check=False, timeout=300)
    assert done.returncode == 0, done.stderr


@pytest.mark.slow
def test_two_processes_train_like_one_with_the_same_global_batch(tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(WORKER, encoding="utf-8")
    (tmp_path / "two").mkdir()
    (tmp_path / "one").mkdir()
    launched = torchrun(str(script), str(tmp_path / "two"), "2", cwd=tmp_path)
    assert launched.returncode == 0, launched.stdout[-3000:] + launched.stderr[-3000:]
    run_worker_alone(script, tmp_path / "one", 4)

    rank0, rank1, single = (json.loads(p.read_text()) for p in
                            (tmp_path / "two" / "rank0.json", tmp_path / "two" / "rank1.json",
                             tmp_path / "one" / "rank0.json"))
    assert (rank0["world"], rank1["world"], single["world"]) == (2, 2, 1)
    two_rows, one_rows = rank0["result"]["history"], single["result"]["history"]
    assert [r["step"] for r in two_rows] == [r["step"] for r in one_rows] == list(range(1, 11))
    for a, b in zip(two_rows, one_rows):
        assert a["train_loss"] == pytest.approx(b["train_loss"], abs=1e-5)
        assert a["grad_norm"] == pytest.approx(b["grad_norm"], abs=1e-5)
        assert (a["val_loss"] is None) == (b["val_loss"] is None)
        if a["val_loss"] is not None:
            assert a["val_loss"] == pytest.approx(b["val_loss"], abs=1e-5)
    assert rank0["result"]["tokens_seen"] == single["result"]["tokens_seen"] == 10 * 2 * 4 * 8
    # DDP keeps the two copies identical, and equal to the one-process model
    assert rank0["weights"] == rank1["weights"]
    for name, values in single["weights"].items():
        torch.testing.assert_close(torch.tensor(rank0["weights"][name]), torch.tensor(values), atol=1e-5, rtol=0)
    # the two-process checkpoint loads in this (single) process, with the weights rank 0 ended with
    model, _, state = load_checkpoint(tmp_path / "two" / "ckpt")
    assert state["step"] == 10
    for name, tensor in model.state_dict_for_saving().items():
        torch.testing.assert_close(tensor, torch.tensor(rank0["weights"][name]), atol=0, rtol=0)


@pytest.mark.slow
def test_torchrun_cli_trains_and_its_checkpoint_loads_in_one_process(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("the cat sat on the mat. the dog sat on the log.\n" * 200, encoding="utf-8")
    out = tmp_path / "run"
    launched = torchrun("-m", "roots_course", "train", "--profile", "smoke", "--text", str(text), "--tokenizer",
                        "char", "--steps", "12", "--out", str(out), "--device", "cpu", cwd=ROOT)
    assert launched.returncode == 0, launched.stdout[-3000:] + launched.stderr[-3000:]
    stdout = launched.stdout
    assert stdout.count("training for steps") == 1                     # rank 0 alone logs ...
    assert stdout.count('"profile": "smoke"') == 1                     # ... and prints the summary
    summary = json.loads(stdout[stdout.index("\n{") + 1:])
    assert summary["world_size"] == 2 and summary["steps"] == 12
    assert "x 2 processes" in stdout

    checkpoint = Path(summary["checkpoint"])
    model, _, state = load_checkpoint(checkpoint)
    assert isinstance(model, GPT) and state["step"] == 12
    assert state["tokens_seen"] == 12 * 2 * 16 * 64                  # two ranks of the smoke batch 16 x 64
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for name in distributed.ENV_VARS:
        env.pop(name, None)
    sampled = subprocess.run([sys.executable, "-m", "roots_course", "sample", "--checkpoint", str(checkpoint),
                              "--prompt", "the ", "--max-new-tokens", "10", "--device", "cpu"],
                             cwd=ROOT, env=env, capture_output=True, text=True, check=False, timeout=300)
    assert sampled.returncode == 0, sampled.stderr
    assert sampled.stdout.startswith("the ")
    shutil.rmtree(out, ignore_errors=True)
