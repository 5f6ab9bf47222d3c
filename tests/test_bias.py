"""Tests of roots_course.society.bias: counting pronouns and co-occurrences, and probing a model."""

import math

import pytest
import torch
import tiny_models

from roots_course.society import bias as B
from roots_course.errors import ConfigError
from roots_course.core.generate import sequence_log_prob

TEXT = ("The user said they would call it. She wrote the tests; he read them!\n\n"
        "If a user needs a copy, you can ask the caller. Users and their programs: THEY run it.")


def test_words_and_counts_ignore_case_and_respect_word_boundaries():
    assert B.words("He's here; HE went") == ["he", "s", "here", "he", "went"]
    counts = B.word_counts("the theme, the", ["the", "them"])
    assert counts["the"] == 2 and counts["them"] == 0


def test_pronoun_counts_group_every_form():
    counts = B.pronoun_counts(TEXT)
    assert counts["they"] == {"they": 2, "them": 1, "their": 1, "theirs": 0, "themselves": 0}
    assert counts["she"]["she"] == 1 and counts["he"]["he"] == 1 and counts["it"]["it"] == 2
    totals = B.group_totals(counts)
    assert totals["they"] == 4 and totals["you"] == 1 and totals["we"] == 0


def test_sentences_split_at_end_marks_and_blank_lines():
    parts = B.sentences("One. Two? Three!\n\nFour\nstill four.")
    assert parts == ["One.", "Two?", "Three!", "Four\nstill four."]


def test_cooccurrence_counts_sentences_and_plurals():
    table = B.cooccurrence(TEXT, nouns=("user", "caller", "programmer"))
    assert table["user"]["they"] == 2, "'user' and 'Users' sentences both hold a form of they"
    assert table["user"]["it"] == 2 and table["user"]["she"] == 0
    assert table["caller"]["you"] == 1 and table["programmer"] == {g: 0 for g in B.PRONOUNS}
    assert table["(sentences)"]["they"] == 3 and table["(sentences)"]["she"] == 1  # "them" counts for they


def test_keyword_in_context_marks_the_word():
    lines = B.keyword_in_context(TEXT, "she", width=5)
    assert len(lines) == 1 and lines[0] == " it. [She] wrot"
    assert B.keyword_in_context(TEXT, "nobody") == []


def test_shares_normalise_and_mark_the_undefined():
    assert B.shares({"a": 1, "b": 3}) == {"a": 0.25, "b": 0.75}
    assert all(math.isnan(v) for v in B.shares({"a": 0, "b": 0}).values())


@pytest.fixture(scope="module")
def tiny(char_tokenizer):
    torch.manual_seed(0)
    tokenizer = char_tokenizer
    model = tiny_models.tiny_gpt(vocab_size=tokenizer.vocab_size, block_size=32, n_layer=1).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(5)
    return model, tokenizer


def test_continuation_logprob_is_the_sequence_logprob_of_the_tail(tiny):
    model, tokenizer = tiny
    prefix, tail = "if a user needs it,", " she can"
    ids = tokenizer.encode(prefix) + tokenizer.encode(tail)
    expected = sequence_log_prob(model, ids, start=len(tokenizer.encode(prefix)))
    assert B.continuation_logprobs(model, tokenizer, prefix, [tail])[0] == pytest.approx(expected, abs=1e-4)


def test_next_token_probs_read_the_first_token(tiny):
    model, tokenizer = tiny
    probs = B.next_token_probs(model, tokenizer, "the user", [" he", " hello", " she"])
    assert probs[0] == probs[1], "same first token, same probability"
    logits = model(torch.tensor([tokenizer.encode("the user")])).logits[0, -1]
    assert probs[2] == pytest.approx(logits.softmax(-1)[tokenizer.encode(" ")[0]].item(), rel=1e-5)


def test_probe_shares_sum_to_one_per_template(tiny):
    model, tokenizer = tiny
    rows = B.probe(model, tokenizer, ["when the user calls,", "if the caller waits,"],
                   {"he": " he", "she": " she", "they": " they"})
    assert len(rows) == 6
    for template in ("when the user calls,", "if the caller waits,"):
        mine = [r for r in rows if r["template"] == template]
        assert sum(r["first-token share"] for r in mine) == pytest.approx(1.0)
        assert sum(r["whole-word share"] for r in mine) == pytest.approx(1.0)
    means = B.mean_shares(rows, "whole-word share")
    assert set(means) == {"he", "she", "they"} and sum(means.values()) == pytest.approx(1.0)


def test_log_ratios_are_differences_of_whole_word_logprobs(tiny):
    model, tokenizer = tiny
    templates = ["when the user calls,", "if the caller waits,"]
    rows = B.probe(model, tokenizer, templates, {"he": " he", "she": " she", "they": " they"})
    column = "log P(word + 'can')"
    ratios = B.log_ratios(rows, "he", "she", column)
    assert list(ratios) == templates
    for template in templates:
        he, she = (B.continuation_logprobs(model, tokenizer, template, [w + " can"])[0] for w in (" he", " she"))
        assert ratios[template] == pytest.approx(he - she, abs=1e-9)
    assert B.log_ratios(rows, "she", "he", column)[templates[0]] == pytest.approx(-ratios[templates[0]])
    with pytest.raises(ConfigError):
        B.log_ratios(rows, "he", "it", column)


def test_plot_log_ratios_draws_one_bar_per_template():
    import matplotlib

    matplotlib.use("Agg")
    from roots_course.society import plots

    fig = plots.plot_log_ratios({"a,": 2.3, "b,": -1.0, "c,": 0.2}, "title")
    ax = fig.axes[0]
    assert len(ax.patches) == 3 and [t.get_text() for t in ax.get_yticklabels()] == ["a,", "b,", "c,"]
    assert "nats" in ax.get_xlabel()
