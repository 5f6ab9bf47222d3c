"""Tests of roots_course.tasks.classify and GPT.hidden_states: pooling, padding, heads, probes."""

import pytest
import torch
import tiny_models

from roots_course.tasks.classify import (
    GPTClassifier,
    encode_texts,
    extract_features,
    pool,
    predict,
    train_classifier,
    train_probe,
)
from roots_course.errors import ConfigError, DataError
from roots_course.core.model import GPT

TOK = tiny_models.char_tokenizer()


def _gpt() -> GPT:
    return tiny_models.tiny_gpt(vocab_size=TOK.vocab_size).eval()


def test_hidden_states_are_what_the_head_reads():
    model = _gpt()
    idx = torch.randint(0, TOK.vocab_size, (3, 9))
    hidden = model.hidden_states(idx)
    assert hidden.shape == (3, 9, 16)
    torch.testing.assert_close(model.lm_head(hidden), model(idx).logits)


def test_pooling_ignores_padding():
    model = _gpt()
    x, lengths = encode_texts(TOK, ["abc", "defgh", "z"], block_size=16)
    assert x.shape == (3, 5) and lengths.tolist() == [3, 5, 1]
    hidden = model.hidden_states(x)
    alone = model.hidden_states(x[:1, :3])  # the first text without its padding
    torch.testing.assert_close(pool(hidden, lengths, "last")[0], alone[0, -1])
    torch.testing.assert_close(pool(hidden, lengths, "mean")[0], alone[0].mean(0))
    with pytest.raises(ConfigError):
        pool(hidden, lengths, "max")
    with pytest.raises(DataError):
        encode_texts(TOK, ["a", ""], block_size=16)


@pytest.mark.slow
def test_classifier_and_probe_learn_an_easy_rule():
    texts = [a + b + c for a in "abcdefgh" for b in "xyz" for c in "mnop"]
    labels = torch.tensor([int(t[0] in "abcd") for t in texts])  # the class is in the first letter
    x, lengths = encode_texts(TOK, texts, block_size=16)

    model = GPTClassifier(_gpt(), n_classes=2)
    with pytest.raises(ConfigError):
        GPTClassifier(_gpt(), n_classes=1)
    assert model(x[:4], lengths[:4]).shape == (4, 2)
    run = train_classifier(model, x, lengths, labels, steps=150, lr=3e-3, batch_size=16)
    assert run.trainable_parameters == sum(p.numel() for p in model.parameters())
    assert (predict(model, x, lengths) == labels).float().mean() > 0.9

    frozen = GPTClassifier(_gpt(), n_classes=2)
    frozen.freeze_backbone()
    assert train_classifier(frozen, x[:8], lengths[:8], labels[:8], steps=2, lr=1e-3).trainable_parameters == 16 * 2 + 2

    features = extract_features(_gpt(), x, lengths, "mean")
    assert features.shape == (len(texts), 16)
    _, probe = train_probe(features, labels, 2, steps=300, lr=0.05)
    assert probe.trainable_parameters == 34 and probe.history[-1] < probe.history[0]


def test_save_and_load_classifier(tmp_path):
    from roots_course.tasks.classify import load_classifier, save_classifier

    model = GPTClassifier(_gpt(), n_classes=3, pooling="mean")
    x, lengths = encode_texts(TOK, ["abc", "de"], block_size=16)
    save_classifier(tmp_path / "clf", model, ["json", "os", "heapq"])
    loaded, labels = load_classifier(tmp_path / "clf")
    assert labels == ["json", "os", "heapq"] and loaded.pooling == "mean"
    torch.testing.assert_close(loaded(x, lengths), model(x, lengths))
    with pytest.raises(ConfigError):
        save_classifier(tmp_path / "bad", model, ["a", "b"])
