"""Tests of roots_course.society.model_card: cards assembled from artifacts, with every section, never guessed."""

import pytest
import torch
import tiny_models

from roots_course.society import cost as C
from roots_course.society import model_card as MC
from roots_course.store.artifacts import ArtifactPaths, atomic_write_json
from roots_course.core.checkpoint import save_checkpoint
from roots_course.core.train import TrainConfig, make_optimizer

CFG = {**tiny_models.TINY_GPT, "n_layer": 1}
ASSUMPTIONS = {"power_watts": 65.0, "grid_g_per_kwh": 429.0, "pue": 1.0}


def _save(folder, state):
    model = tiny_models.tiny_gpt(**CFG)
    cfg = TrainConfig(steps=4, batch_size=2, warmup_steps=1)
    save_checkpoint(folder, model, make_optimizer(model, cfg, "cpu"), {"step": 4, "history": [], **state}, train_config=cfg)


@pytest.fixture()
def paths(tmp_path):
    torch.manual_seed(0)
    paths = ArtifactPaths(tmp_path, "tiny")
    _save(paths.checkpoint("pretrained"), {"tokens_seen": 128, "wall_s": 2.0})
    _save(paths.checkpoint("finetuned_qa"), {"wall_s": 1.0, "task": "qa", "method": "full fine-tuning",
                                             "trainable_parameters": C.total_parameters(CFG)})
    atomic_write_json(paths.metric("pretrained_summary"), {"val_loss": 3.5, "val_perplexity": 33.1, "train_loss": 3.4,
                                                           "flops_per_token": 1})
    atomic_write_json(paths.manifest, {"pretrained": {"created": "2026-01-01T00:00:00+00:00",
                                                      "git": {"commit": "abcdef1234567890"}, "device": "cpu"}})
    return paths


def _cards(paths):
    rows = C.estimate(C.recorded_runs(paths), **{"power_watts": 65.0, "grid_g_per_kwh": 429.0})
    findings = [{"metric": "membership AUC", "value": "0.600", "measured on": "windows", "source": "chapter 5"}]
    return MC.build_cards(paths, "tiny", rows, ASSUMPTIONS, "A datasheet.", findings, ["Invents APIs."])


def test_every_card_has_every_section_and_the_recorded_numbers(paths):
    cards = _cards(paths)
    assert set(cards) == {"pretrained", "finetuned_qa"}
    for text in cards.values():
        assert MC.missing_sections(text) == []
        assert "Invents APIs." in text and "65.0 W" in text and "429.0 g CO2e per kWh" in text and "Wh" in text
    pre = cards["pretrained"]
    assert "| validation loss (nats/token) | 3.5 |" in pre and "| membership AUC | 0.600 |" in pre
    assert "A datasheet." in pre and "commit `abcdef123456`" in pre
    tuned = cards["finetuned_qa"]
    assert "metrics/tasks.json) was not found" in tuned, "a missing upstream file is said, not skipped"
    assert "No metrics recorded" in tuned and "starting from `pretrained`" in tuned


def test_task_metrics_come_from_chapter_4s_file(paths):
    atomic_write_json(paths.metric("tasks"), {"tasks": {"qa": {"metrics": ["exact match"], "methods": {
        "full fine-tuning": {"exact match": {"value": 0.5, "low": 0.3, "high": 0.7, "n": 40}, "answer_loss": 1.25},
        "LoRA": {"exact match": {"value": 0.1, "low": 0.0, "high": 0.2, "n": 40}}}}}})
    tuned = _cards(paths)["finetuned_qa"]
    assert "| qa: exact match | 0.500 [0.300, 0.700] |" in tuned and "1.250" in tuned
    assert "0.100" not in tuned, "the LoRA row belongs to lora_qa's card"
    assert "was not found" not in tuned


def test_missing_sections_and_unrecorded_values():
    assert MC.missing_sections("## Model details\n## Metrics\n") == ["Intended use", "Training data", "Limitations", "Cost"]
    card = MC.CardInputs(name="x", kind="pretraining", profile="p", architecture={}, parameters=None,
                         trained_parameters=None, base=None, provenance={}, intended=["a"], out_of_scope=["b"],
                         data="d", metrics=[], limitations=["l"], cost={})
    text = MC.render(card)
    assert MC.missing_sections(text) == [] and text.count(MC.NOT_RECORDED) >= 5


def test_write_cards_puts_markdown_files_in_the_artifacts(paths):
    written = MC.write_cards(paths, {"pretrained": "# card\n", "lora_qa": "# other"})
    assert [p.name for p in written] == ["pretrained.md", "lora_qa.md"]
    assert all(p.parent == paths.dir / "model_cards" for p in written)
    assert written[1].read_text() == "# other\n"


def test_task_of_and_intended_use():
    assert MC.task_of("lora_code", None) == "code" and MC.task_of("instruct", None) == "all"
    assert MC.task_of("finetuned_qa", {"task": "text"}) == "text"
    uses, out = MC.intended_use("LoRA", "qa")
    assert any("`qa`" in u for u in uses) and any("Decisions about people" in o for o in out)


def test_demoted_headings_keep_the_text():
    text = "# Card\n\n## Metrics\nbody # not a heading"
    assert MC.demote_headings(text) == "### Card\n\n#### Metrics\nbody # not a heading"
