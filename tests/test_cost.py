"""Tests of roots_course.society.cost: FLOP counts, the runs read from artifacts, energy and carbon."""

import json

import pytest
import torch

from roots_course.society import cost as C
from roots_course.store.artifacts import ArtifactPaths, atomic_write_json
from roots_course.core.checkpoint import save_checkpoint
from roots_course.errors import ConfigError
from roots_course.core.lora import apply_lora
from roots_course.core.model import GPT, GPTConfig
from roots_course.core.train import TrainConfig, make_optimizer

# not the shared tiny GPT: a shape of its own, whose numbers (2 layers, width 24, window 16) the FLOP
# formulas below are called with
CFG = dict(vocab_size=50, block_size=16, n_layer=2, n_head=2, n_embd=24)


def test_full_training_flops_match_the_models_own_count():
    model = GPT(GPTConfig(**CFG))
    n = C.matmul_params(CFG)
    assert C.training_flops_per_token(n, n, 2, 24, 16) == model.flops_per_token()
    assert C.total_parameters(CFG) == model.num_parameters()
    untied = GPTConfig(**CFG, tie_weights=False)
    assert C.training_flops_per_token(C.matmul_params(untied), C.matmul_params(untied), 2, 24, 16) == \
        GPT(untied).flops_per_token()


def test_frozen_weights_skip_their_gradients():
    n = C.matmul_params(CFG)
    full = C.training_flops_per_token(n, n, 2, 24, 16)
    frozen = C.training_flops_per_token(n, 0, 2, 24, 16)
    assert full - frozen == 2 * n
    assert C.forward_flops_per_token(n, 2, 24, 16) * 3 == full, "forward is a third of a training step"
    with pytest.raises(ConfigError):
        C.training_flops_per_token(-1, 0, 1, 1, 1)


def test_energy_and_carbon_are_linear_in_every_assumption():
    assert C.energy_kwh(3600, 1000) == pytest.approx(1.0)
    assert C.energy_kwh(3600, 2000) == pytest.approx(2 * C.energy_kwh(3600, 1000))
    assert C.energy_kwh(3600, 1000, pue=1.5) == pytest.approx(1.5)
    assert C.carbon_kg(2.0, 500) == pytest.approx(1.0)
    with pytest.raises(ConfigError):
        C.energy_kwh(10, -1)
    with pytest.raises(ConfigError):
        C.energy_kwh(10, 1, pue=0.5)
    with pytest.raises(ConfigError):
        C.carbon_kg(1, -3)


def test_published_figures_are_consistent_with_their_stated_grids():
    gpt3, bloom = C.PUBLISHED[0], C.PUBLISHED[1]
    # Patterson et al.: 1,287 MWh and 552 tCO2e imply about 429 g/kWh; Luccioni et al.: 433 MWh at 57 g/kWh
    assert gpt3["tCO2e"] * 1e6 / (gpt3["energy MWh"] * 1e3) == pytest.approx(429, abs=1)
    assert C.carbon_kg(bloom["energy MWh"] * 1000, 57) / 1000 == pytest.approx(bloom["tCO2e"], rel=0.01)
    assert gpt3["training FLOPs"] == 3.14e23
    assert all(row["source"] for row in C.PUBLISHED)


def _checkpoint(folder, model, state, steps=7, batch_size=4):
    cfg = TrainConfig(steps=steps, batch_size=batch_size, warmup_steps=1)
    optimizer = make_optimizer(model, cfg, "cpu")
    save_checkpoint(folder, model, optimizer, {"step": steps, "history": [], **state}, train_config=cfg)


@pytest.fixture()
def artifacts_dir(tmp_path):
    paths = ArtifactPaths(tmp_path, "tiny")
    torch.manual_seed(0)
    _checkpoint(paths.checkpoint("pretrained"), GPT(GPTConfig(**CFG)), {"tokens_seen": 7 * 4 * 16, "wall_s": 3.0})
    _checkpoint(paths.checkpoint("finetuned_qa"), GPT(GPTConfig(**CFG)),
                {"wall_s": 1.5, "trainable_parameters": C.total_parameters(CFG), "task": "qa",
                 "method": "full fine-tuning"}, steps=5)
    lora_model = GPT(GPTConfig(**CFG))
    apply_lora(lora_model, 2, 4.0)
    adapters = sum(p.numel() for p in lora_model.parameters() if p.requires_grad)
    _checkpoint(paths.checkpoint("lora_qa"), GPT(GPTConfig(**CFG)),
                {"wall_s": 1.0, "trainable_parameters": adapters, "task": "qa", "method": "LoRA (merged)"}, steps=5)
    (paths.checkpoints / "not_a_model").mkdir()
    atomic_write_json(paths.manifest, {"pretrained": {"device": "cpu (test)", "summary": {"train_wall_s": 2.5}},
                                       "tasks": {"device": "cpu"}})
    return paths, adapters


def test_recorded_runs_read_every_checkpoint(artifacts_dir):
    paths, adapters = artifacts_dir
    runs = {r.name: r for r in C.recorded_runs(paths)}
    assert list(runs) == ["pretrained", "finetuned_qa", "lora_qa"], "pretraining first, folders without a model skipped"
    pre, full, lora = runs["pretrained"], runs["finetuned_qa"], runs["lora_qa"]
    n = C.matmul_params(CFG)
    assert pre.kind == "pretraining" and pre.tokens == 7 * 4 * 16 and pre.tokens_exact
    assert pre.flops_per_token == GPT(GPTConfig(**CFG)).flops_per_token()
    assert pre.flops == pre.flops_per_token * pre.tokens
    assert pre.wall_s == 2.5 and pre.device == "cpu (test)", "manifest's summary wins for pretraining"
    assert full.kind == "full fine-tuning" and not full.tokens_exact and full.tokens == 5 * 4 * 16
    assert full.flops_per_token == pre.flops_per_token and full.device == "cpu" and full.wall_s == 1.5
    assert lora.kind == "LoRA" and lora.trained_parameters == adapters
    assert lora.flops_per_token == C.training_flops_per_token(n + adapters, adapters, 2, 24, 16)
    assert lora.flops_per_token < full.flops_per_token


def test_estimate_never_guesses_a_missing_wall_time(artifacts_dir):
    paths, _ = artifacts_dir
    runs = C.recorded_runs(paths)
    runs[1].wall_s = None
    rows = C.estimate(runs, 100.0, 400.0)
    assert rows[1]["energy_Wh"] is None and rows[1]["carbon_g"] is None
    assert rows[0]["energy_Wh"] == pytest.approx(100 * 2.5 / 3600)
    assert rows[0]["carbon_g"] == pytest.approx(rows[0]["energy_Wh"] / 1000 * 400)
    json.dumps(rows)  # JSON-able, for the metrics file


def test_forward_meter_counts_tokens_only_while_running():
    model = GPT(GPTConfig(**CFG)).eval()
    meter = C.ForwardMeter(model)
    with torch.no_grad():
        model(torch.zeros(3, 5, dtype=torch.long))  # not counted: the meter is not running
        with meter.measure():
            model(torch.zeros(3, 5, dtype=torch.long))
            model(torch.zeros(2, 4, dtype=torch.long))
        model(torch.zeros(3, 5, dtype=torch.long))
    assert meter.tokens == 15 + 8 and meter.wall_s > 0
    run = meter.as_run("eval", "cpu")
    assert run.flops == 23 * C.forward_flops_per_token(C.matmul_params(CFG), 2, 24, 16) and run.kind == "evaluation"
    meter.start().start()  # starting twice keeps one hook
    with torch.no_grad():
        model(torch.zeros(1, 2, dtype=torch.long))
    meter.stop().stop()
    assert meter.tokens == 25


def test_a_classifier_run_is_read_from_chapter_4s_metrics(artifacts_dir):
    paths, _ = artifacts_dir
    model = GPT(GPTConfig(**CFG))
    from roots_course.tasks.classify import GPTClassifier, save_classifier

    clf = GPTClassifier(model, 3, pooling="last")
    save_classifier(paths.checkpoint("classifier_qa"), clf, ["a", "b", "c"])
    head = sum(p.numel() for p in clf.head.parameters())
    assert {r.name: r for r in C.recorded_runs(paths)}["classifier_qa"].flops is None, "nothing recorded: no guess"
    atomic_write_json(paths.metric("tasks"), {"settings": {"classify_steps": 6, "batch_size": 2}, "classification": {
        "linear probe (last pooling)": {"trainable": head, "train_s": 0.1},
        "fine-tuned with a head (last pooling)": {"trainable": model.num_parameters() + head, "train_s": 0.7}}})
    run = {r.name: r for r in C.recorded_runs(paths)}["classifier_qa"]
    assert run.kind == "classifier" and run.wall_s == 0.7 and run.steps == 6 and run.tokens == 6 * 2 * 16
    body = C.matmul_params(CFG) - CFG["vocab_size"] * CFG["n_embd"]  # no vocabulary head in a classifier
    assert run.flops_per_token == C.training_flops_per_token(body + head, body + head, 2, 24, 16)
    assert C.classifier_record(None) is None and C.classifier_record({"classification": {}}) is None
