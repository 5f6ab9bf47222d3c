"""The end-to-end recipe: each step reuses its artifact when the settings match and rebuilds it
(saying so) when they do not; a chapter can therefore run alone on a fresh clone."""

import re

import pytest
import torch

from roots_course.course.config import load_profile
from roots_course.course.pretraining import Run, load_pretrained, prepare_data, pretrain
from roots_course.store.artifacts import read_json

TINY = {"corpus.max_chars": 30_000, "tokenizer.vocab_size": 300, "train.steps": 6, "train.eval_every": 3,
        "train.eval_batches": 2, "train.log_every": 3, "model.block_size": 32}


@pytest.fixture
def run(tmp_path):
    profile = load_profile("smoke", overrides=TINY)
    profile.paths["artifacts"] = tmp_path
    return Run.for_profile(profile)


def test_pretrain_then_reuse_everything(run):
    said: list[str] = []
    summary = pretrain(run, threads=1, progress=False, say=said.append)
    assert any("building the corpus" in s for s in said)
    assert any("training a fast_bpe tokenizer" in s for s in said)
    assert summary["steps"] == 6 and summary["val_loss"] > 0
    assert summary["sample"].startswith("The ")
    assert (run.paths.checkpoint("pretrained") / "model.safetensors").is_file()
    assert run.paths.manifest.is_file() and run.paths.metric("pretrained_summary").is_file()
    # the OpenMP wait policy and its evidence: in the run's "pretraining" line and in the manifest
    policy = re.compile(r"OMP_WAIT_POLICY=(ACTIVE|PASSIVE): ")
    assert any(s.startswith("pretraining") and policy.search(s) for s in said)
    assert policy.search(read_json(run.paths.manifest)["pretrained"]["device"])

    said.clear()
    tokenizer, train_ids, val_ids = prepare_data(run, say=said.append)
    assert said == []                      # nothing rebuilt: every artifact was fresh
    assert train_ids.dtype == torch.long and int(train_ids.max()) < tokenizer.vocab_size

    model, tokenizer2 = load_pretrained(run, say=said.append)
    assert said == [] and tokenizer2.encode("The list") == tokenizer.encode("The list")
    assert model.config.vocab_size == tokenizer.vocab_size


def test_changed_settings_rebuild_what_depends_on_them(run):
    prepare_data(run, say=lambda s: None)
    profile = load_profile("smoke", overrides={**TINY, "tokenizer.vocab_size": 320})
    profile.paths["artifacts"] = run.paths.root
    said: list[str] = []
    tokenizer, _, _ = prepare_data(Run.for_profile(profile), say=said.append)
    assert not any("building the corpus" in s for s in said)    # the corpus is unchanged
    assert any("tokenizer" in s for s in said) and any("tokenizing" in s for s in said)
    assert tokenizer.vocab_size <= 320


def test_load_pretrained_trains_when_missing_and_says_so(run):
    said: list[str] = []
    model, _ = load_pretrained(run, say=said.append)
    assert any("no pretrained checkpoint" in s for s in said)
    assert model.num_parameters() > 0


def test_a_char_tokenizer_announces_its_real_vocabulary(tmp_path):
    profile = load_profile("smoke", overrides={**TINY, "tokenizer.kind": "char"})
    profile.paths["artifacts"] = tmp_path
    said: list[str] = []
    tokenizer, _, _ = prepare_data(Run.for_profile(profile), say=said.append)
    assert not any("vocabulary 300" in s for s in said)           # the profile's BPE size means nothing here
    assert any("char tokenizer (one id per character of the text)" in s for s in said)
    assert f"  {tokenizer.vocab_size} ids: {tokenizer.vocab_size - 1} characters and <unk>" in said
