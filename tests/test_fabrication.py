"""Tests of roots_course.society.fabrication: checking generated names against Python, and calibration."""

import pytest
import torch
import tiny_models

from roots_course.society import fabrication as F
from roots_course.errors import ConfigError
from roots_course.core.tokenizer_kinds import train_tokenizer


def test_first_identifier():
    assert F.first_identifier("dumps(obj)") == "dumps"
    assert F.first_identifier("_private.x") == "_private"
    assert F.first_identifier(" dumps") == "" and F.first_identifier("9lives") == ""


def test_attribute_exists_looks_up_and_never_imports_unknown_modules():
    assert F.attribute_exists("json", "dumps") and not F.attribute_exists("json", "dumpz")
    assert not F.attribute_exists("os", "")
    with pytest.raises(ConfigError):
        F.attribute_exists("antigravity", "fly")  # not in SAFE_MODULES: refused, not imported
    assert all(m.isidentifier() for m in F.SAFE_MODULES)


def test_reliability_and_ece_by_hand():
    conf = [0.1, 0.15, 0.9, 0.95, 0.85, 0.5]
    right = [False, False, True, True, False, True]
    rows = F.reliability(conf, right, bins=2)
    assert [r["answers"] for r in rows] == [2, 4]
    assert rows[1]["share right"] == 0.75 and rows[1]["mean confidence"] == pytest.approx(0.8)
    # ECE = 2/6 * |0 - 0.125| + 4/6 * |0.75 - 0.8|
    assert F.expected_calibration_error(conf, right, bins=2) == pytest.approx(2 / 6 * 0.125 + 4 / 6 * 0.05)
    assert F.expected_calibration_error([1.0, 1.0], [True, True]) == 0.0, "1.0 falls into the last bin"
    with pytest.raises(ConfigError):
        F.reliability([0.5], [True, False])


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    tokenizer = train_tokenizer("char", ">>> import json\nfrom os abcdefghijklmnopqrstuvwxyz_.()\n ")
    model = tiny_models.tiny_gpt(vocab_size=tokenizer.vocab_size, block_size=40, n_layer=1).eval()
    return model, tokenizer


def test_complete_apis_gives_a_checked_name_for_every_prompt(tiny):
    model, tokenizer = tiny
    results = F.complete_apis(model, tokenizer, ["json", "os"], "the dumps function", max_new_tokens=6)
    assert [(r.module, r.form) for r in results] == [("json", "attribute"), ("json", "from-import"),
                                                     ("os", "attribute"), ("os", "from-import")]
    for r in results:
        assert r.name and r.written.startswith(r.name[0]), "the first token is forced to begin a name"
        assert r.exists == F.attribute_exists(r.module, r.name)
        assert 0.0 < r.probability <= 1.0
        assert r.verdict in ("real", "invented", "misattributed (a word of the training text)")
        assert r.to_dict()["verdict"] == r.verdict


def test_answers_with_confidence_stop_at_the_newline(tiny):
    model, tokenizer = tiny
    answers = F.answers_with_confidence(model, tokenizer, ["import json", ">>> from os"], max_new_tokens=5)
    assert len(answers) == 2
    for text, confidence in answers:
        assert "\n" not in text and 0.0 < confidence <= 1.0
    long_prompt = "a" * 100  # longer than the window: kept from the end, no error
    assert len(F.answers_with_confidence(model, tokenizer, [long_prompt], max_new_tokens=5)) == 1
    with pytest.raises(ConfigError):
        F.greedy_by_length(model, tokenizer, ["a"], steps=40)
