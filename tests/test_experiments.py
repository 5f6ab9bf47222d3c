"""Tests of roots_course.optimization.experiments (fair side-by-side runs), chapter 2's exercises, and what
pretrain adds for chapter 2 (history, MFU, samples at each validation)."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
import tiny_models

from roots_course.optimization import experiments
from roots_course.course.config import load_profile
from roots_course.errors import ConfigError
from roots_course.course.exercises import check
from roots_course.core.model import GPT, GPTConfig
from roots_course.optimization.ngram import NGramModel
from roots_course.optimization.exercises import EXERCISES
from roots_course.course.pretraining import Run, mfu_of_run, pretrain
from roots_course.core.train import TrainConfig, lr_at

VOCAB = 13
MODEL = tiny_models.tiny_config(vocab_size=VOCAB, block_size=8, n_layer=1)
IDS = (torch.arange(3000) % VOCAB).to(torch.int32)


def cfg(**changes) -> TrainConfig:
    base = TrainConfig(steps=10, batch_size=4, lr=1e-2, min_lr=1e-3, warmup_steps=1, eval_batches=2, seed=3)
    return experiments.comparison_config(base, changes.pop("steps", 10), **changes)


def test_heads_follow_the_width():
    assert [experiments.heads_for(w) for w in (8, 16, 32, 64, 96, 192)] == [1, 1, 1, 2, 3, 6]
    c = experiments.small_model_config({"n_layer": 6, "n_head": 6, "n_embd": 192, "block_size": 128}, 50,
                                       n_embd=64, n_layer=2)
    assert (c.n_layer, c.n_head, c.n_embd, c.block_size, c.vocab_size) == (2, 2, 64, 128, 50)
    same = experiments.small_model_config(MODEL, 20)
    assert same.n_head == MODEL.n_head and same.vocab_size == 20


def test_comparison_config_logs_every_step_and_validates_at_the_end():
    c = cfg(steps=40)
    assert (c.steps, c.warmup_steps, c.log_every, c.eval_every) == (40, 4, 1, 0)


def test_runs_of_a_comparison_start_from_the_same_weights_and_batches():
    runs = experiments.compare({"a": cfg(), "b": cfg()}, MODEL, IDS, IDS[:400], "cpu", seed=5, say=None)
    assert runs["a"].history[0]["train_loss"] == runs["b"].history[0]["train_loss"]
    assert runs["a"].final_val_loss == runs["b"].final_val_loss
    assert runs["a"].log and "training for steps" in runs["a"].log     # the loop's lines are kept, not printed
    steps, losses = runs["a"].series("train_loss")
    assert steps == list(range(1, 11)) and len(losses) == 10


def test_variants_change_one_thing():
    base = cfg(steps=20)
    opt = experiments.optimizer_variants(base)
    assert [c.optimizer for c in opt.values()] == ["sgd", "sgd_momentum", "adamw"]
    assert opt["SGD"].lr == base.lr * experiments.SGD_LR_FACTOR and opt["AdamW"] == base
    lrs = experiments.lr_variants(base, (1 / 30, 1.0, 30.0))
    assert list(lrs) == ["lr / 30", "lr", "lr × 30"]
    assert lrs["lr × 30"].lr == pytest.approx(base.lr * 30) and lrs["lr"] == base
    batches = experiments.batch_size_variants(base, (0.25, 1.0, 4.0))
    assert [c.batch_size for c in batches.values()] == [1, 4, 16]
    assert [c.batch_size * c.steps for c in batches.values()] == [80, 80, 80]


def test_a_diverged_run_counts_as_infinitely_bad():
    run = experiments.train_small("x", MODEL, IDS, IDS[:400], cfg(steps=2), "cpu", seed=0)
    run.result.final_val_loss = float("nan")
    assert run.final_val_loss == math.inf


def test_clip_fraction_and_no_clip_threshold():
    clipped = experiments.train_small("c", MODEL, IDS, IDS[:400], cfg(grad_clip=1e-6), "cpu", seed=0)
    free = experiments.train_small("f", MODEL, IDS, IDS[:400], cfg(grad_clip=experiments.NO_CLIP), "cpu", seed=0)
    assert experiments.clip_fraction(clipped, 1e-6) == 1.0
    assert experiments.clip_fraction(free, experiments.NO_CLIP) == 0.0
    with pytest.raises(ConfigError):
        experiments.clip_fraction(experiments.train_small("n", MODEL, IDS, IDS[:400], cfg(grad_clip=0.0), "cpu",
                                                          seed=0), 1.0)


def test_adamw_beats_plain_sgd_at_the_same_learning_rate():
    runs = experiments.compare({"sgd": cfg(steps=30, optimizer="sgd"), "adamw": cfg(steps=30)}, MODEL, IDS,
                               IDS[:400], "cpu", seed=0, say=None)
    assert runs["adamw"].final_val_loss < runs["sgd"].final_val_loss


def test_continuing_a_given_model_trains_it_in_place():
    torch.manual_seed(0)
    model = GPT(MODEL)
    before = model.tok_emb.weight.detach().clone()
    run = experiments.train_small("ft", MODEL, IDS, IDS[:400], cfg(steps=3), "cpu", seed=0, model=model,
                                  keep_model=True)
    assert run.model is model and not torch.equal(before, model.tok_emb.weight)


# --- chapter 2's exercises -------------------------------------------------------------------------

def test_every_reference_solution_passes_its_own_check():
    for exercise in EXERCISES.values():
        result = check(exercise, exercise.reference)
        assert result.passed and not result.used_reference, result.message


def test_a_formula_in_another_order_passes_and_a_wrong_one_fails():
    def units_reordered(loss, n_tokens, n_chars):
        return math.e ** loss, loss * (1 / math.log(2)), loss * n_tokens / (n_chars * math.log(2))

    assert check(EXERCISES["loss_units"], units_reordered).passed
    assert not check(EXERCISES["loss_units"], lambda loss, t, c: (loss, loss, loss)).passed

    def off_by_one(step, lr, min_lr, warmup, steps):          # a classic: warmup starting at 0
        ref = EXERCISES["warmup_cosine"].reference
        return lr * step / warmup if step < warmup else ref(step, lr, min_lr, warmup, steps)

    assert not check(EXERCISES["warmup_cosine"], off_by_one).passed


def test_reference_solutions_agree_with_the_library():
    schedule = EXERCISES["warmup_cosine"].reference
    for t in (TrainConfig(steps=50, lr=3e-3, min_lr=3e-4, warmup_steps=5), TrainConfig(steps=7, warmup_steps=0)):
        for s in range(t.steps + 3):
            assert schedule(s, t.lr, t.min_lr, t.warmup_steps, t.steps) == pytest.approx(lr_at(s, t))
    compute = EXERCISES["gpt_compute"].reference
    for layers, width in ((1, 16), (3, 48), (6, 192)):
        model = GPT(GPTConfig(vocab_size=100, block_size=16, n_layer=layers, n_head=1, n_embd=width))
        n, c = compute(layers, width, 1000)
        assert n == model.num_parameters(non_embedding=True) and c == 6 * n * 1000
    bigram = EXERCISES["bigram_prob"].reference
    ids = [0, 2, 1, 2, 2, 0, 1, 1, 2]
    library = NGramModel(2, 3, k=0.3).fit(ids)
    for a in range(3):
        for b in range(3):
            assert bigram(ids, 3, 0.3, a, b) == pytest.approx(library.prob([a], b))


# --- what pretrain adds for chapter 2 --------------------------------------------------------------

TINY = {"corpus.max_chars": 30_000, "tokenizer.vocab_size": 300, "train.steps": 6, "train.eval_every": 3,
        "train.eval_batches": 2, "train.log_every": 3, "model.block_size": 32}


def test_pretrain_returns_history_mfu_and_samples(tmp_path):
    profile = load_profile("smoke", overrides=TINY)
    profile.paths["artifacts"] = tmp_path
    seen = []
    summary = pretrain(Run.for_profile(profile), threads=1, progress=False, say=lambda s: None,
                       callback=lambda step, row: seen.append((step, dict(row))), peak_flops=1e12,
                       sample_prompt="The ", sample_tokens=5)
    history = summary["history"]
    assert [r["step"] for r in history] == [3, 6]
    assert all(r["sample"].startswith("The ") for r in history)           # each validation row
    assert [s for s, _ in seen] == [3, 6] and "sample" in seen[0][1]     # the callback saw the sample
    assert 0 < summary["mfu"] < 1 and summary["peak_flops"] == 1e12
    assert summary["flops_per_token"] > 0


def test_pretrain_measures_the_ceiling_before_and_after_and_uses_the_larger(tmp_path):
    profile = load_profile("smoke", overrides=TINY)
    profile.paths["artifacts"] = tmp_path
    timings = iter([1e12, 3e12])                              # before, after training
    summary = pretrain(Run.for_profile(profile), threads=1, progress=False, say=lambda s: None,
                       ceiling=lambda: next(timings))
    assert summary["peak_flops_before"] == 1e12 and summary["peak_flops_after"] == 3e12
    assert summary["peak_flops"] == 3e12
    # the run's MFU comes from its printed throughput, not from a mean of the rows
    expected = summary["flops_per_token"] * summary["tokens_per_s"] / 3e12
    assert summary["mfu"] == pytest.approx(expected, rel=1e-3)
    assert all(r["mfu"] * 3e12 == pytest.approx(summary["flops_per_token"] * r["tokens_per_s"])
               for r in summary["history"])
    assert not summary["sample_prompt"].endswith(" ")


def test_mfu_of_run():
    assert mfu_of_run(1e6, 2e3, 4e9) == pytest.approx(0.5)
    assert mfu_of_run(1e6, 2e3, 2e9, world=2) == pytest.approx(0.5)
    assert mfu_of_run(1e6, 2e3, None) is None
    with pytest.raises(ValueError, match="ceiling"):
        mfu_of_run(1e6, 2e3, -1.0)


def test_samples_do_not_change_the_training_run(tmp_path):
    def run(folder, **extra):
        profile = load_profile("smoke", overrides=TINY)
        profile.paths["artifacts"] = tmp_path / folder
        return pretrain(Run.for_profile(profile), threads=1, progress=False, say=lambda s: None, **extra)

    plain = run("a")
    sampled = run("b", sample_prompt="The ")
    assert [r["train_loss"] for r in plain["history"]] == [r["train_loss"] for r in sampled["history"]]
    assert plain["val_loss"] == sampled["val_loss"] and plain["mfu"] is None


def test_optimization_settings_are_validated():
    with pytest.raises(ConfigError, match="floor_lr"):
        load_profile("smoke", overrides={"optimization.floor_lr": 2.0})
    with pytest.raises(ConfigError, match="compare_n_embd"):
        load_profile("smoke", overrides={"optimization.compare_n_embd": 0})
    profile = load_profile("cpu")
    assert dataclasses.asdict(profile.optimization)["scaling_widths"] == (32, 64, 128)
    for name in ("smoke", "cpu", "gpu"):
        widths = load_profile(name).optimization.scaling_widths
        assert len(widths) >= (2 if name == "smoke" else 3)


def test_optimizer_step_exercises_match_torch_over_ten_steps():
    from roots_course.optimization.exercises import against_torch
    assert against_torch("adamw", EXERCISES["adamw_step"].reference) < 1e-5
    assert against_torch("sgd", EXERCISES["sgd_momentum_step"].reference) < 1e-5

    def adam_without_bias_correction(param, grad, m, v, t, lr, b1, b2, eps, wd):
        m, v = b1 * m + (1 - b1) * grad, b2 * v + (1 - b2) * grad * grad
        return param * (1 - lr * wd) - lr * m / (v.sqrt() + eps), m, v

    def momentum_from_zero(param, grad, buf, lr, mu):
        buf = (1 - mu) * grad if buf is None else mu * buf + grad
        return param - lr * buf, buf

    assert against_torch("adamw", adam_without_bias_correction) > 1e-3
    assert not check(EXERCISES["adamw_step"], adam_without_bias_correction).passed
    assert against_torch("sgd", momentum_from_zero) > 1e-3
    assert not check(EXERCISES["sgd_momentum_step"], momentum_from_zero).passed
    with pytest.raises(ValueError, match="kind"):
        against_torch("adam", EXERCISES["adamw_step"].reference)


def test_batch_size_variants_validate_on_the_same_windows():
    from roots_course.core.batches import get_batch
    base = TrainConfig(steps=40, batch_size=16, eval_batches=5)
    variants = experiments.batch_size_variants(base, factors=(0.25, 1.0, 4.0))
    assert {experiments.validation_windows(c) for c in variants.values()} == {128}   # 80 → × 64
    tokens = torch.arange(5000)

    def windows(cfg):          # the windows estimate_loss draws for cfg (seeded with cfg.seed)
        g = torch.Generator().manual_seed(cfg.seed)
        return torch.cat([get_batch(tokens, cfg.batch_size, 8, g)[0] for _ in range(cfg.eval_batches)])

    first, *others = [windows(c) for c in variants.values()]
    assert all(torch.equal(first, o) for o in others)
    odd = experiments.batch_size_variants(TrainConfig(steps=40, batch_size=16, eval_batches=1),
                                          factors=(0.25, 3.0))           # batches 4 and 48
    assert {experiments.validation_windows(c) for c in odd.values()} == {48}
