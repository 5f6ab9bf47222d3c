"""The speed paths are wired, checked on a CPU: threads end to end, torch.compile of the training step
only, bf16 autocast and TF32 on CUDA, fused AdamW, and the fused (flash) scaled-dot-product attention.
Timings live in benchmarks/, never here."""

from __future__ import annotations

import dataclasses
import warnings

import pytest
import torch
import torch.nn.functional as F
import tiny_models

import roots_course.__main__ as cli
import roots_course.core.train as train_module
from roots_course.core import device as dev
from roots_course.course import pretraining
from roots_course.course.config import load_profile
from roots_course.errors import ConfigError
from roots_course.core.generate import generate
from roots_course.core.model import GPT
from roots_course.core.train import TrainConfig, make_optimizer, train

TIMING = ("tokens_per_s", "mfu", "elapsed_s")


def tiny(seed: int = 0, **overrides) -> GPT:
    torch.manual_seed(seed)
    return tiny_models.tiny_gpt(**{"vocab_size": 13, **overrides})     # 13 symbols: the corpora below


def quick(**overrides) -> TrainConfig:
    base = {"steps": 4, "batch_size": 3, "lr": 1e-2, "warmup_steps": 1, "eval_every": 2, "eval_batches": 1,
            "log_every": 1, "seed": 1}
    return TrainConfig(**{**base, **overrides})


def corpus(n: int = 600) -> torch.Tensor:
    return (torch.arange(n) * 5) % 13


# --- threads: profile and --threads reach torch -------------------------------------------------------

class _Stop(Exception):
    pass


@pytest.mark.parametrize("cli_threads, profile_threads, expected", [(1, None, 1), (None, 1, 1), (2, 1, 2)])
def test_threads_from_the_cli_or_the_profile_are_set_before_any_work(monkeypatch, cli_threads, profile_threads,
                                                                     expected):
    seen = {}

    def stop(*args, **kwargs):
        seen["threads"] = torch.get_num_threads()
        raise _Stop

    monkeypatch.setattr(pretraining, "prepare_data", stop)
    profile = load_profile("smoke", overrides={"threads": profile_threads, "device": "cpu"})
    torch.set_num_threads(3)
    with pytest.raises(_Stop):
        pretraining.pretrain(pretraining.Run.for_profile(profile), threads=cli_threads)
    assert seen["threads"] == expected


def test_the_cli_passes_threads_and_compile_to_pretrain(monkeypatch):
    calls = []
    monkeypatch.setattr(pretraining, "pretrain", lambda run, **kw: calls.append((run, kw)) or {"ok": True})
    assert cli.main(["train", "--profile", "smoke", "--threads", "1", "--device", "cpu"]) == 0
    assert cli.main(["train", "--profile", "smoke", "--compile", "--device", "cpu"]) == 0
    (run1, kw1), (run2, kw2) = calls
    assert kw1["threads"] == 1 and kw1["device"] == "cpu"
    assert run1.profile.train.compile is False and run2.profile.train.compile is True
    assert kw2["threads"] is None


# --- torch.compile of the training forward only -------------------------------------------------------

def test_compile_is_a_validated_train_setting_off_by_default():
    assert TrainConfig().compile is False
    for name in ("smoke", "cpu", "gpu"):
        assert load_profile(name).train.compile is False
    assert load_profile("smoke", overrides={"train.compile": True}).train.compile is True
    with pytest.raises(ConfigError, match="train.compile must be"):
        load_profile("smoke", overrides={"train.compile": "yes"})
    with pytest.raises(ConfigError, match="train.compile must be true or false"):
        TrainConfig(compile=1).validate()
    assert TrainConfig.from_dict(TrainConfig(compile=True).to_dict()).compile is True


@pytest.mark.slow
def test_compile_traces_the_training_step_whole_and_leaves_generation_eager(monkeypatch):
    """Dynamo with its 'eager' backend: the same graph capture as inductor without the C++ build.
    fullgraph=True fails on any graph break in the training forward."""
    compiled = []

    def compile_eager(module):
        compiled.append(module)
        return torch.compile(module, backend="eager", dynamic=False, fullgraph=True)

    monkeypatch.setattr(train_module, "compile_for_training", compile_eager)
    torch._dynamo.reset()
    plain, model = tiny(), tiny()
    a = train(plain, corpus(), corpus(200), quick(), progress=False)
    b = train(model, corpus(), corpus(200), quick(compile=True), progress=False)
    assert compiled == [model]                       # the step's module, not a replacement of the model
    assert type(model) is GPT
    for ra, rb in zip(a.history, b.history):
        for key in ("train_loss", "val_loss", "grad_norm"):
            assert ra[key] == pytest.approx(rb[key], abs=1e-5)
    # decoding afterwards changes shapes every step and must not go through the compiled module
    for use_cache in (True, False):
        assert len(generate(model, [1, 2, 3], 12, greedy=True, use_cache=use_cache)) == 12
    torch._dynamo.reset()


def test_resuming_a_checkpoint_that_predates_the_compile_key_does_not_warn(tmp_path):
    import json

    cfg = quick(steps=4)
    train(tiny(), corpus(), corpus(200), cfg, checkpoint_dir=tmp_path / "c", progress=False, stop_at=2)
    config_file = tmp_path / "c" / "config.json"
    saved = json.loads(config_file.read_text())
    del saved["train"]["compile"]
    config_file.write_text(json.dumps(saved))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        train(tiny(), corpus(), corpus(200), cfg, checkpoint_dir=tmp_path / "c", resume=True, progress=False,
              stop_at=3)
    with pytest.warns(UserWarning, match=r"compile \(False -> True\)"):
        train(tiny(), corpus(), corpus(200), dataclasses.replace(cfg, compile=True),
              checkpoint_dir=tmp_path / "c", resume=True, progress=False, stop_at=3)


# --- the GPU path, checked without a GPU -----------------------------------------------------------------

def test_configure_backends_turns_tf32_on_for_cuda_only(monkeypatch):
    matmul, cudnn = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    try:
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        dev.configure_backends(torch.device("cpu"))
        assert not torch.backends.cuda.matmul.allow_tf32 and not torch.backends.cudnn.allow_tf32
        dev.configure_backends(torch.device("cuda"))           # sets flags only: no GPU needed
        assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32
        assert torch.backends.cuda.flash_sdp_enabled()
        report = dev.backend_settings(torch.device("cuda"))
        assert report["tf32_matmul"] and report["flash_sdp_enabled"]
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = matmul, cudnn


def test_bf16_autocast_context_on_cuda_and_none_on_cpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")                       # "CUDA is not available, disabling autocast"
        context = dev.autocast_context(torch.device("cuda"))
    assert isinstance(context, torch.autocast)
    assert context.device == "cuda" and context.fast_dtype == torch.bfloat16
    assert not isinstance(dev.autocast_context(torch.device("cuda"), enabled=False), torch.autocast)
    assert not isinstance(dev.autocast_context(torch.device("cpu")), torch.autocast)


def test_the_training_loop_enters_autocast_for_its_device(monkeypatch):
    entered = []

    def recording(device, enabled=True):
        entered.append(torch.device(device).type)
        return dev.autocast_context(torch.device("cpu"))

    monkeypatch.setattr(train_module, "autocast_context", recording)
    train(tiny(), corpus(), None, quick(steps=2), progress=False)
    assert entered == ["cpu", "cpu"]


@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_adamw_is_the_fused_kernel_on_cpu_and_cuda(device):
    optimizer = make_optimizer(tiny(), TrainConfig(), device)
    assert isinstance(optimizer, torch.optim.AdamW) and optimizer.defaults["fused"] is True


def test_training_calls_sdpa_with_is_causal_and_no_mask(monkeypatch):
    """What flash attention on CUDA needs: is_causal=True and no explicit mask."""
    real = F.scaled_dot_product_attention
    calls = []

    def recording(q, k, v, attn_mask=None, dropout_p=0.0, is_causal=False, **kw):
        calls.append({"mask": attn_mask is not None, "is_causal": is_causal, "T": q.size(-2), "S": k.size(-2)})
        return real(q, k, v, attn_mask=attn_mask, dropout_p=dropout_p, is_causal=is_causal, **kw)

    monkeypatch.setattr(F, "scaled_dot_product_attention", recording)
    train(tiny(), corpus(), corpus(200), quick(steps=2), progress=False)
    assert calls and all(c["is_causal"] and not c["mask"] and c["T"] == c["S"] == 16 for c in calls)


def test_the_fused_attention_runs_the_flash_kernel_forward_and_backward():
    model = tiny()
    x = torch.randint(0, 13, (2, 16))
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        loss = model(x, x).loss
        loss.backward()
    names = {event.key for event in prof.key_averages()}
    assert "aten::_scaled_dot_product_flash_attention_for_cpu" in names
    assert "aten::_scaled_dot_product_flash_attention_for_cpu_backward" in names
    assert not any("math" in name for name in names if "scaled_dot_product" in name)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_on_cuda_a_bf16_training_step_runs_on_flash_attention_alone():
    from torch.nn.attention import SDPBackend, sdpa_kernel

    device = torch.device("cuda")
    dev.configure_backends(device)
    model = tiny(n_embd=128, n_head=2).to(device)
    optimizer = make_optimizer(model, TrainConfig(), device)
    x = torch.randint(0, 13, (4, 16), device=device)
    with sdpa_kernel(SDPBackend.FLASH_ATTENTION), dev.autocast_context(device):
        loss = model(x, x).loss
    loss.backward()
    optimizer.step()
    assert torch.isfinite(loss)
