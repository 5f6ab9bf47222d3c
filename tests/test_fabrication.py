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


def test_label_logprobs_score_each_label_after_the_prompt(tiny):
    model, tokenizer = tiny
    prompt, labels = ">>> import ", ["json", "os", "io"]
    scores = F.label_logprobs(model, tokenizer, [prompt, "from "], labels)
    assert scores.shape == (2, 3) and bool((scores < 0).all())
    for k, label in enumerate(labels):  # one label at a time, no padding: the same number
        ids = tokenizer.encode(prompt) + tokenizer.encode(label + "\n")
        n = len(tokenizer.encode(label + "\n"))
        logp = torch.log_softmax(model(torch.tensor([ids[:-1]])).logits[0].detach().double(), dim=-1)
        expected = logp[-n:].gather(1, torch.tensor(ids[-n:])[:, None]).sum()
        assert float(scores[0, k]) == pytest.approx(float(expected), abs=1e-4)
    with pytest.raises(ConfigError):
        F.label_logprobs(model, tokenizer, [], labels)


def test_temperature_changes_confidence_not_predictions_and_fits_the_spread():
    torch.manual_seed(0)
    labels = torch.randint(0, 4, (400,))
    true_logits = torch.randn(400, 4)
    true_logits[torch.arange(400), labels] += 1.0  # (N, K): a calibrated model's logits...
    labels = torch.distributions.Categorical(logits=true_logits).sample()  # ...and labels drawn from them
    overconfident = 3.0 * true_logits  # the same ranking, three times too sharp
    pred1, conf1 = F.label_confidence(overconfident)
    pred3, conf3 = F.label_confidence(overconfident, temperature=3.0)
    assert torch.equal(pred1, pred3) and bool((conf3 <= conf1 + 1e-12).all())
    t = F.fit_temperature(overconfident, labels)
    assert 2.0 < t < 4.5, t
    right = (pred1 == labels).tolist()
    before = F.expected_calibration_error(conf1.tolist(), right)
    after = F.expected_calibration_error(F.label_confidence(overconfident, t)[1].tolist(), right)
    assert after < before
    with pytest.raises(ConfigError):
        F.label_confidence(overconfident, temperature=0.0)
    with pytest.raises(ConfigError):
        F.fit_temperature(overconfident, labels[:10])


def test_fit_temperature_is_never_worse_than_no_scaling_where_it_was_fitted():
    torch.manual_seed(1)
    logits, labels = torch.randn(30, 5, dtype=torch.float64), torch.randint(0, 5, (30,))
    t = F.fit_temperature(logits, labels)
    nll = [float(torch.nn.functional.cross_entropy(logits / x, labels)) for x in (t, 1.0)]
    assert nll[0] <= nll[1]
