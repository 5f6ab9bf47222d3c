"""Profiles load into typed objects; anything unknown or out of range fails at once, naming the key."""

import textwrap

import pytest

from roots_course.course.config import load_profile, profile_names
from roots_course.errors import ConfigError


def test_all_profiles_load():
    assert profile_names() == ["smoke", "cpu", "gpu"]
    for name in profile_names():
        profile = load_profile(name)
        assert profile.name == name
        assert profile.train.steps > 0
        model = profile.model_config(vocab_size=profile.tokenizer.vocab_size)
        assert model.n_embd % model.n_head == 0
        assert profile.artifacts_dir.name == name


def test_profiles_grow_from_smoke_to_gpu():
    sizes = [load_profile(n).model["n_embd"] * load_profile(n).model["n_layer"] for n in ("smoke", "cpu", "gpu")]
    assert sizes == sorted(sizes) and len(set(sizes)) == 3


def test_default_profile_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("ROOTS_PROFILE", "smoke")
    assert load_profile().name == "smoke"
    monkeypatch.delenv("ROOTS_PROFILE")
    assert load_profile().name == "cpu"


def test_unknown_profile_names_the_allowed_ones():
    with pytest.raises(ConfigError, match=r"unknown profile 'laptop'; allowed profiles: smoke, cpu, gpu"):
        load_profile("laptop")


@pytest.mark.parametrize("key, value, message", [
    ("train.steps", 0, r"steps"),
    ("train.steps", -5, r"steps"),
    ("train.steps", "many", r"profiles.smoke.train.steps must be int"),
    ("train.optimizer", "lion", r"optimizer"),
    ("model.n_head", 3, r"n_head"),
    ("model.position", "spiral", r"position"),
    ("model.width", 64, r"unknown key profiles.smoke.model.width; allowed keys: .*n_embd"),
    ("tokenizer.kind", "wordpiece", r"tokenizer.kind must be one of char, bpe, fast_bpe"),
    ("corpus.kind", "web", r"corpus.kind must be one of"),
    ("device", "tpu", r"device must be one of auto, cpu, cuda, mps"),
    ("threads", 0, r"threads must be a positive integer"),
    ("colour", "red", r"unknown key profiles.smoke.colour"),
    ("corpus.kind", "text", r"profiles.smoke.corpus.path is required when corpus.kind is 'text'"),
    ("tokenizer.vocab_size", 100, r"profiles.smoke.tokenizer.vocab_size must be between 257 and 1000000"),
    ("society.ngram_sizes", [1, "2"], r"profiles.smoke.society.ngram_sizes\[1\] must be int, got '2'"),
    ("optimization.scaling_widths", [32], r"scaling_widths must be a list of at least 2 integers, each at least 1"),
    ("train.betas", [0.9], r"profiles.smoke.train.betas has the wrong number of items, got \[0.9\]"),
    ("output.top_p", 0, r"profiles.smoke.output.top_p must be in \(0, 1\], got 0"),
])
def test_bad_values_name_the_key(key, value, message):
    with pytest.raises(ConfigError, match=message):
        load_profile("smoke", overrides={key: value})


def test_overrides_apply():
    profile = load_profile("smoke", overrides={"train.steps": 7, "model.n_layer": 1})
    assert profile.train.steps == 7 and profile.model["n_layer"] == 1


def test_broken_file_is_named(tmp_path):
    bad = tmp_path / "_config.yml"
    bad.write_text("profiles: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_profile("smoke", path=bad)
    bad.write_text(textwrap.dedent("""
        profiles:
          tiny:
            train: {steps: 5}
    """))
    with pytest.raises(ConfigError, match="missing key profiles.tiny.model.block_size"):
        load_profile("tiny", path=bad)
    bad.write_text(textwrap.dedent("""
        profiles:
          tiny:
            model: {n_layer: 1, n_head: 1, n_embd: 8, block_size: 8}
            train: {steps: 5}
    """))
    profile = load_profile("tiny", path=bad)
    assert profile.train.steps == 5 and profile.seed == 1337
    with pytest.raises(ConfigError, match="configuration not found"):
        load_profile("smoke", path=tmp_path / "missing.yml")


def test_tasks_section_is_checked():
    profile = load_profile("smoke")
    assert profile.tasks.n_test > 0 and profile.tasks.lora_rank > 0
    assert profile.to_dict()["tasks"]["n_train"] == profile.tasks.n_train
    assert load_profile("smoke", overrides={"tasks.shots": 0}).tasks.shots == 0
    for key, value, message in [("tasks.n_test", 0, "n_test"), ("tasks.lora_lr", 2.0, "lora_lr"),
                                ("tasks.qa_modules", 1, "qa_modules"), ("tasks.shots", -1, "shots"),
                                ("tasks.rank", 4, "unknown key profiles.smoke.tasks.rank")]:
        with pytest.raises(ConfigError, match=message):
            load_profile("smoke", overrides={key: value})


def test_the_model_and_train_sections_mirror_their_dataclasses():
    """Their checks are derived from GPTConfig and TrainConfig: a field added there is a key here at once."""
    import dataclasses

    from roots_course.core.model import GPTConfig
    from roots_course.core.train import TrainConfig
    from roots_course.course.config import ModelSettings, TrainSettings

    for settings, cls, skipped in [(ModelSettings, GPTConfig, {"vocab_size"}), (TrainSettings, TrainConfig, set())]:
        fields = {f.name: f for f in dataclasses.fields(cls) if f.name not in skipped}
        assert list(settings.model_fields) == list(fields)
        for name, info in settings.model_fields.items():
            assert info.is_required() == (fields[name].default is dataclasses.MISSING)
            assert info.is_required() or info.default == fields[name].default
    profile = load_profile("smoke", overrides={"train.betas": [0.8, 0.9], "device": "cuda:1"})
    assert profile.train.betas == (0.8, 0.9) and profile.device == "cuda:1"
