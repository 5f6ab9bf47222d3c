"""Chapter 5's exercise references agree with the library they mirror; the package's gathered names and
the profile section load."""

import random

import pytest

from roots_course import society
from roots_course.society import cost, memorization
from roots_course.course.config import load_profile
from roots_course.errors import ConfigError
from roots_course.course.exercises import check
from roots_course.core.model import GPT, GPTConfig
from roots_course.society.exercises import EXERCISES


def test_references_pass_their_own_checks():
    for exercise in EXERCISES.values():
        assert check(exercise, exercise.reference).passed


def test_references_agree_with_the_library():
    for args in EXERCISES["auc_by_pairs"].cases():
        assert EXERCISES["auc_by_pairs"].reference(*args) == pytest.approx(memorization.auc(*args), abs=1e-12)
    for args in EXERCISES["ngram_overlap"].cases():
        assert EXERCISES["ngram_overlap"].reference(*args) == memorization.ngram_overlap(*args)
    for wall, watts, grid, pue in EXERCISES["carbon_grams"].cases():
        expected = cost.carbon_kg(cost.energy_kwh(wall, watts, pue), grid) * 1000
        assert EXERCISES["carbon_grams"].reference(wall, watts, grid, pue) == pytest.approx(expected, rel=1e-12)
    # a shape of its own (3 layers, width 20, window 12): the reference below is called with these numbers
    model = GPT(GPTConfig(vocab_size=60, block_size=12, n_layer=3, n_head=2, n_embd=20))
    n = cost.matmul_params(model.config)
    assert EXERCISES["training_flops"].reference(n, 3, 20, 12, 1000) == model.flops_per_token() * 1000


def test_wrong_attempts_fail():
    assert not check(EXERCISES["auc_by_pairs"], lambda p, n: 0.5).passed
    assert not check(EXERCISES["training_flops"], lambda n, L, C, T, D: 6 * n * D).passed, "attention must count"
    assert not check(EXERCISES["ngram_overlap"], lambda c, r, n: len(set(c) & set(r)) / max(len(c), 1)).passed
    assert not check(EXERCISES["carbon_grams"], lambda w, p, g, pue=1.0: p * w * g / 3600).passed


def test_ties_matter_in_the_auc_cases():
    cases = EXERCISES["auc_by_pairs"].cases()
    assert any(set(p) & set(n) for p, n in cases), "some case must have tied scores"
    rng = random.Random(0)
    pos, neg = [rng.random() for _ in range(5)], [rng.random() for _ in range(7)]
    assert society.auc(pos, neg) == pytest.approx(EXERCISES["auc_by_pairs"].reference(pos, neg))


def test_profiles_have_a_society_section_that_fits_the_window():
    for name in ("smoke", "cpu", "gpu"):
        p = load_profile(name)
        s, block = p.society, p.model["block_size"]
        assert s.sample_prompt_tokens + s.sample_tokens <= block, name
        assert s.extraction_prompt_tokens + s.extraction_tokens <= block, name
        assert p.to_dict()["society"]["samples"] == s.samples
    with pytest.raises(ConfigError, match="samples"):
        load_profile("smoke", overrides={"society.samples": 0})
    with pytest.raises(ConfigError, match="society"):
        load_profile("smoke", overrides={"society.unknown_key": 1})


def test_the_package_exports_what_it_lists():
    for name in society.__all__:
        assert hasattr(society, name), name
