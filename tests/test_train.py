"""Tests of roots_course.core.train: configuration, schedule, batches, the loop, checkpoints and resume."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil

import pytest
import torch

import roots_course.core.checkpoint as checkpoint_module
import roots_course.core.train as train_module
from roots_course.core.batches import estimate_loss, get_batch
from roots_course.core.checkpoint import has_checkpoint, load_checkpoint, restore_optimizer, save_checkpoint
from roots_course.core.model import GPT, GPTConfig
from roots_course.core.train import TrainConfig, lr_at, make_optimizer, train
from roots_course.errors import CheckpointError, ConfigError, DataError
from roots_course.store.artifacts import load_tensors, save_tensors

TIMING = ("tokens_per_s", "mfu", "elapsed_s")
VOCAB = 17


def tiny(seed: int = 0, **overrides) -> GPT:
    torch.manual_seed(seed)
    config = dict(vocab_size=VOCAB, block_size=8, n_layer=1, n_head=2, n_embd=16)
    return GPT(GPTConfig(**{**config, **overrides}))


def corpus(n: int = 3000) -> torch.Tensor:
    return torch.arange(n, dtype=torch.int32) % VOCAB      # the next token is always predictable


def quick(**overrides) -> TrainConfig:
    cfg = dict(steps=8, batch_size=4, lr=1e-2, min_lr=1e-3, warmup_steps=2, eval_every=4, eval_batches=2,
               log_every=1, seed=3)
    return TrainConfig(**{**cfg, **overrides})


def losses_only(history: list[dict]) -> list[dict]:
    return [{k: v for k, v in row.items() if k not in TIMING} for row in history]


def same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


# --- configuration --------------------------------------------------------------------------------

@pytest.mark.parametrize("change, message", [
    ({"steps": 0}, "train.steps must be a positive integer, got 0"),
    ({"batch_size": 2.5}, "train.batch_size must be a positive integer, got 2.5"),
    ({"warmup_steps": -1}, "train.warmup_steps must be a non-negative integer, got -1"),
    ({"optimizer": "adam"}, "train.optimizer must be one of adamw, sgd, sgd_momentum, got 'adam'"),
    ({"lr": 0.0}, "train.lr must be a positive number, got 0.0"),
    ({"min_lr": 0.5, "lr": 0.1}, "train.min_lr must be a number between 0 and train.lr (0.1), got 0.5"),
    ({"betas": (0.9, 1.0)}, "train.betas must be two numbers in [0, 1), got (0.9, 1.0)"),
    ({"grad_clip": -1.0}, "train.grad_clip must be a non-negative number"),
    ({"momentum": 1.5}, "train.momentum must be a number in [0, 1), got 1.5"),
    ({"log_every": True}, "train.log_every must be a positive integer, got True"),
])
def test_validate_names_the_field_and_what_it_allows(change, message):
    with pytest.raises(ConfigError) as info:
        dataclasses.replace(TrainConfig(), **change).validate()
    assert message in str(info.value)


def test_config_round_trips_through_json_and_rejects_unknown_keys():
    cfg = TrainConfig(steps=5, betas=(0.8, 0.9), optimizer="sgd_momentum")
    assert TrainConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    with pytest.raises(ConfigError, match=r"unknown key train\.stepz; allowed keys: steps, batch_size"):
        TrainConfig.from_dict({"stepz": 3})


# --- schedule and optimizer -----------------------------------------------------------------------

def test_lr_warms_up_linearly_then_follows_a_cosine_to_min_lr():
    cfg = TrainConfig(steps=101, warmup_steps=10, lr=1.0, min_lr=0.1)
    assert lr_at(0, cfg) == pytest.approx(0.1)                # first update: lr / warmup
    assert lr_at(9, cfg) == pytest.approx(1.0)                # warmup ends at the peak
    assert lr_at(10, cfg) == 1.0                              # the cosine starts at the peak
    assert lr_at(55, cfg) == pytest.approx(0.55)              # halfway down: the mean of lr and min_lr
    assert lr_at(100, cfg) == pytest.approx(0.1)              # the last step uses min_lr
    assert lr_at(1000, cfg) == pytest.approx(0.1)             # and it stays there
    lrs = [lr_at(s, cfg) for s in range(101)]
    assert all(a < b for a, b in zip(lrs[:10], lrs[1:10]))
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:]))
    assert lr_at(0, dataclasses.replace(cfg, warmup_steps=0)) == 1.0
    assert lr_at(5, cfg) == lr_at(5, cfg) and cfg == TrainConfig(steps=101, warmup_steps=10, lr=1.0, min_lr=0.1)
    with pytest.raises(ValueError, match="step must be >= 0"):
        lr_at(-1, cfg)


def test_weight_decay_only_on_matrices_and_each_parameter_once():
    model = tiny(bias=True)                                   # tied embedding/head, biases, LayerNorms
    optimizer = make_optimizer(model, TrainConfig(weight_decay=0.1), "cpu")
    assert isinstance(optimizer, torch.optim.AdamW)
    decay, no_decay = optimizer.param_groups
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert all(p.dim() >= 2 for p in decay["params"]) and all(p.dim() < 2 for p in no_decay["params"])
    listed = [id(p) for g in optimizer.param_groups for p in g["params"]]
    assert len(listed) == len(set(listed)) == len(list(model.parameters()))
    assert model.tok_emb.weight in decay["params"]           # the tied matrix, once
    assert sum(p.numel() for g in optimizer.param_groups for p in g["params"]) == model.num_parameters()


def test_sgd_variants_for_the_optimizer_comparison():
    plain = make_optimizer(tiny(), TrainConfig(optimizer="sgd"), "cpu")
    heavy = make_optimizer(tiny(), TrainConfig(optimizer="sgd_momentum", momentum=0.8), "cpu")
    assert isinstance(plain, torch.optim.SGD) and plain.defaults["momentum"] == 0.0
    assert isinstance(heavy, torch.optim.SGD) and heavy.defaults["momentum"] == 0.8


# --- batches and evaluation -----------------------------------------------------------------------

def test_batches_are_shifted_windows_drawn_reproducibly():
    tokens = torch.arange(20, dtype=torch.int32)
    x, y = get_batch(tokens, 4, 8, torch.Generator().manual_seed(1))
    assert x.shape == y.shape == (4, 8) and x.dtype == y.dtype == torch.int64
    assert torch.equal(y, x + 1) and torch.equal(x[:, 1:], x[:, :-1] + 1)   # contiguous windows
    x2, _ = get_batch(tokens, 4, 8, torch.Generator().manual_seed(1))
    assert torch.equal(x, x2)
    generator = torch.Generator().manual_seed(2)
    seen = torch.cat([torch.cat(get_batch(tokens, 8, 8, generator)) for _ in range(50)])
    assert seen.min() == 0 and seen.max() == 19                # every token can be drawn, none beyond
    with pytest.raises(DataError, match="need at least block_size \\+ 1 = 9 tokens"):
        get_batch(tokens[:8], 1, 8)
    with pytest.raises(DataError, match="1-D"):
        get_batch(tokens.view(4, 5), 1, 2)


def test_estimate_loss_is_deterministic_and_leaves_the_model_as_it_was():
    model = tiny(dropout=0.2)
    model.train()
    first = estimate_loss(model, corpus(), 8, batches=3, batch_size=4)
    second = estimate_loss(model, corpus(), 8, batches=3, batch_size=4)
    assert first == second and math.isfinite(first)
    assert model.training and all(p.grad is None for p in model.parameters())
    assert first == pytest.approx(math.log(VOCAB), abs=0.3)    # an untrained model is near uniform


# --- the training loop ----------------------------------------------------------------------------

def test_training_lowers_the_loss_and_writes_history_rows(capsys):
    model = tiny()
    cfg = quick(steps=40, log_every=10, eval_every=20, warmup_steps=4)
    result = train(model, corpus(), corpus(500), cfg, progress=False, peak_flops=1e12)
    assert [row["step"] for row in result.history] == [10, 20, 30, 40]
    assert set(result.history[0]) == {"step", "lr", "train_loss", "val_loss", "grad_norm", "tokens_per_s",
                                      "mfu", "elapsed_s"}
    assert [row["val_loss"] is not None for row in result.history] == [False, True, False, True]
    assert result.final_val_loss == result.history[-1]["val_loss"] < 0.7 * math.log(VOCAB)
    assert result.final_train_loss < result.history[0]["train_loss"]
    assert all(r["tokens_per_s"] > 0 and 0 < r["mfu"] < 1 and r["grad_norm"] > 0 for r in result.history)
    assert result.steps == 40 and result.tokens_seen == 40 * 4 * 8
    assert 0 <= result.data_fraction < 1 and result.checkpoint is None
    json.dumps(result.to_dict(), allow_nan=False)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 5 and lines[-1].startswith("step 40/40 | lr 1.00e-03 | train ")


def test_without_peak_flops_mfu_is_not_reported():
    result = train(tiny(), corpus(), None, quick(steps=2), progress=False)
    assert all(r["mfu"] is None and r["val_loss"] is None for r in result.history)


def test_the_same_seed_gives_the_same_run():
    runs = [train(tiny(dropout=0.1), corpus(), corpus(500), quick(), progress=False) for _ in range(2)]
    assert losses_only(runs[0].history) == losses_only(runs[1].history)
    other = train(tiny(dropout=0.1), corpus(), corpus(500), quick(seed=4), progress=False)
    assert losses_only(other.history) != losses_only(runs[0].history)


def test_gradient_accumulation_equals_one_big_batch(monkeypatch):
    tokens = corpus()
    x, y = get_batch(tokens, 4, 8, torch.Generator().manual_seed(0))
    halves = []

    def fixed_batch(tokens, batch_size, block_size, generator, device):
        if batch_size == 4:
            return x, y
        halves.append(len(halves) % 2)
        part = slice(0, 2) if halves[-1] == 0 else slice(2, 4)
        return x[part], y[part]

    monkeypatch.setattr(train_module, "get_batch", fixed_batch)
    cfg = quick(steps=1, optimizer="sgd", grad_clip=0.0, warmup_steps=0, lr=0.5)
    big, small = tiny(), tiny()
    one = train(big, tokens, None, dataclasses.replace(cfg, batch_size=4), progress=False)
    two = train(small, tokens, None, dataclasses.replace(cfg, batch_size=2, grad_accum=2), progress=False)
    assert halves == [0, 1]
    assert one.history[0]["train_loss"] == pytest.approx(two.history[0]["train_loss"], abs=1e-6)
    for a, b in zip(big.parameters(), small.parameters()):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=0)


def test_callback_sees_every_row_and_cannot_change_the_run():
    plain = train(tiny(dropout=0.1), corpus(), corpus(500), quick(), progress=False)
    calls = []

    def noisy(step, row):
        calls.append((step, row["step"]))
        torch.rand(100)                 # draws from the global generator, which dropout also uses
        model.eval()

    model = tiny(dropout=0.1)
    watched = train(model, corpus(), corpus(500), quick(), progress=False, callback=noisy)
    assert calls == [(s, s) for s in range(1, 9)]
    assert losses_only(watched.history) == losses_only(plain.history)


def test_quiet_logs_under_ci_and_bad_token_input(monkeypatch, capsys):
    monkeypatch.setenv("CI", "1")
    train(tiny(), corpus(), None, quick(steps=10, log_every=5), progress=None)
    out = capsys.readouterr()
    assert [line.split(" |")[0] for line in out.out.splitlines()[1:]] == ["step  5/10", "step 10/10"]
    assert out.err == ""                                          # no tqdm bar
    with pytest.raises(DataError, match="val_tokens has 5 tokens; a window needs block_size \\+ 1 = 9"):
        train(tiny(), corpus(), corpus(5), quick(), progress=False)
    with pytest.raises(DataError, match="integer token ids"):
        train(tiny(), torch.rand(100), None, quick(), progress=False)


# --- checkpoints and exact resume -----------------------------------------------------------------

@pytest.mark.parametrize("optimizer", ["adamw", "sgd_momentum"])
def test_resume_continues_bit_for_bit(tmp_path, optimizer):
    cfg = quick(optimizer=optimizer, grad_accum=2)
    straight_model = tiny(dropout=0.1)
    straight = train(straight_model, corpus(), corpus(500), cfg, progress=False)

    first = train(tiny(dropout=0.1), corpus(), corpus(500), cfg, progress=False,
                  checkpoint_dir=tmp_path / "ck", stop_at=4)
    assert first.steps == 4 and has_checkpoint(tmp_path / "ck")
    resumed_model = tiny(seed=99, dropout=0.1)                 # fresh objects, other initial weights
    second = train(resumed_model, corpus(), corpus(500), cfg, progress=False,
                   checkpoint_dir=tmp_path / "ck", resume=True)

    assert second.resumed_from_step == 4 and second.steps == 8 and second.tokens_seen == straight.tokens_seen
    assert losses_only(second.history) == losses_only(straight.history)
    assert same_weights(resumed_model, straight_model)
    _, saved_optimizer, state = load_checkpoint(tmp_path / "ck", "cpu", tiny(dropout=0.1))
    assert state["step"] == 8 and len(state["history"]) == 8


def test_resume_without_a_checkpoint_starts_from_step_zero(tmp_path, capsys):
    result = train(tiny(), corpus(), None, quick(steps=2), progress=False,
                   checkpoint_dir=tmp_path / "none", resume=True)
    assert result.resumed_from_step is None and result.steps == 2
    assert f"no checkpoint in {tmp_path / 'none'}: training from step 0" in capsys.readouterr().out
    with pytest.raises(ConfigError, match="resume=True needs a checkpoint_dir"):
        train(tiny(), corpus(), None, quick(), resume=True, progress=False)


def test_resuming_with_a_changed_config_warns(tmp_path):
    train(tiny(), corpus(), None, quick(steps=2), progress=False, checkpoint_dir=tmp_path / "ck")
    with pytest.warns(UserWarning, match=r"steps \(2 -> 4\)"):
        result = train(tiny(), corpus(), None, quick(steps=4), progress=False,
                       checkpoint_dir=tmp_path / "ck", resume=True)
    assert [row["step"] for row in result.history] == [1, 2, 3, 4]


@pytest.fixture
def checkpoint(tmp_path):
    """A checkpoint after 2 steps of a tiny GPT with biases (so vectors sit in the optimizer too)."""
    directory = tmp_path / "ck"
    train(tiny(bias=True), corpus(), corpus(500), quick(steps=2), progress=False, checkpoint_dir=directory)
    return directory


def test_load_checkpoint_builds_the_model_from_its_config(checkpoint):
    config = json.loads((checkpoint / "config.json").read_text())
    assert config["train"]["steps"] == 2 and config["model"]["bias"] is True
    model, optimizer_state, state = load_checkpoint(checkpoint, "cpu")
    assert isinstance(model, GPT) and model.config == GPTConfig.from_dict(config["model"])
    again = tiny(seed=5, bias=True)
    load_checkpoint(checkpoint, "cpu", again)
    assert same_weights(model, again)
    assert state["step"] == 2 and [row["step"] for row in state["history"]] == [1, 2]
    assert {"python", "numpy", "torch"} <= set(state["rng"]) and state["batch_sampler"]
    optimizer = make_optimizer(model, quick(), "cpu")
    restore_optimizer(optimizer, optimizer_state)
    assert all(int(s["step"]) == 2 for s in optimizer.state.values())
    assert len(optimizer.state) == len(list(model.parameters()))


@pytest.mark.parametrize("name", ["model.safetensors", "optimizer.safetensors", "config.json", "state.json"])
def test_a_missing_file_is_named(checkpoint, name):
    (checkpoint / name).unlink()
    with pytest.raises(CheckpointError, match=f"{name}: file missing"):
        load_checkpoint(checkpoint, "cpu")


@pytest.mark.parametrize("name", ["model.safetensors", "optimizer.safetensors", "config.json", "state.json"])
def test_a_truncated_file_is_named(checkpoint, name):
    path = checkpoint / name
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CheckpointError, match=name):
        load_checkpoint(checkpoint, "cpu")


@pytest.mark.parametrize("edit, message", [
    (lambda t: t.pop("ln_f.weight"), r"model.safetensors: missing tensor\(s\) ln_f.weight"),
    (lambda t: t.update(stray=torch.zeros(2)), r"model.safetensors: unexpected tensor\(s\) stray"),
    (lambda t: t.update({"ln_f.weight": torch.zeros(3)}),
     r"model.safetensors: tensor 'ln_f.weight' has shape \(3,\), the model expects \(16,\)"),
])
def test_tensors_that_do_not_fit_the_model_are_named(checkpoint, edit, message):
    tensors = load_tensors(checkpoint / "model.safetensors")
    edit(tensors)
    save_tensors(checkpoint / "model.safetensors", tensors)
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(checkpoint, "cpu")


def test_optimizer_tensors_that_do_not_fit_are_named(checkpoint):
    tensors = load_tensors(checkpoint / "optimizer.safetensors")
    tensors.pop("0.exp_avg")
    save_tensors(checkpoint / "optimizer.safetensors", tensors)
    with pytest.raises(CheckpointError, match=r"optimizer.safetensors: missing tensor\(s\) 0.exp_avg"):
        load_checkpoint(checkpoint, "cpu")


def test_optimizer_state_of_another_kind_or_shape_is_refused(checkpoint):
    model, optimizer_state, _ = load_checkpoint(checkpoint, "cpu")
    with pytest.raises(CheckpointError, match="holds the state of a AdamW optimizer, not of SGD"):
        restore_optimizer(make_optimizer(model, quick(optimizer="sgd_momentum"), "cpu"), optimizer_state)
    wrong = {**optimizer_state, "state": {**optimizer_state["state"], 0: {
        **optimizer_state["state"][0], "exp_avg": torch.zeros(1, 1)}}}
    with pytest.raises(CheckpointError, match=r"tensor '0.exp_avg' has shape \(1, 1\)"):
        restore_optimizer(make_optimizer(model, quick(), "cpu"), wrong)


def test_resume_from_a_state_without_generator_states_is_refused(checkpoint):
    state = json.loads((checkpoint / "state.json").read_text())
    del state["batch_sampler"]
    (checkpoint / "state.json").write_text(json.dumps(state))
    with pytest.raises(CheckpointError, match="state.json: cannot restore the random number generators"):
        train(tiny(bias=True), corpus(), None, quick(steps=2), progress=False, checkpoint_dir=checkpoint,
              resume=True)


def test_a_different_model_config_names_the_keys(checkpoint):
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(checkpoint, "cpu", tiny(bias=True, n_embd=32, n_head=4))
    message = str(info.value)
    assert "config.json" in message and "n_embd (checkpoint 16, model 32)" in message
    assert "n_head (checkpoint 2, model 4)" in message and "n_layer" not in message


def test_a_crash_while_saving_keeps_the_old_checkpoint(checkpoint, monkeypatch):
    model, optimizer_state, state = load_checkpoint(checkpoint, "cpu")
    optimizer = make_optimizer(model, quick(), "cpu")
    restore_optimizer(optimizer, optimizer_state)

    def crash(path, obj):
        raise KeyboardInterrupt("power cut")

    monkeypatch.setattr(checkpoint_module, "atomic_write_json", crash)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(checkpoint, model, optimizer, {**state, "step": 3})
    monkeypatch.undo()
    assert load_checkpoint(checkpoint, "cpu")[2]["step"] == 2          # the old one, whole
    assert (checkpoint.parent / ".ck.new").exists()                    # the half-written one aside
    save_checkpoint(checkpoint, model, optimizer, {**state, "step": 3})
    assert load_checkpoint(checkpoint, "cpu")[2]["step"] == 3
    assert sorted(os.listdir(checkpoint.parent)) == ["ck"]


def test_a_crash_between_the_renames_is_finished_on_the_next_read(checkpoint):
    os.replace(checkpoint, checkpoint.parent / ".ck.old")             # the moment the target is gone
    assert has_checkpoint(checkpoint)
    assert load_checkpoint(checkpoint, "cpu")[2]["step"] == 2


def test_save_refuses_to_replace_a_folder_that_is_not_a_checkpoint(checkpoint, tmp_path):
    model, _, state = load_checkpoint(checkpoint, "cpu")
    precious = tmp_path / "notes"
    precious.mkdir()
    (precious / "thesis.txt").write_text("years of work")
    with pytest.raises(CheckpointError, match="is not a checkpoint folder; refusing to replace it"):
        save_checkpoint(precious, model, make_optimizer(model, quick(), "cpu"), state)
    assert (precious / "thesis.txt").read_text() == "years of work"
    shutil.rmtree(precious)
