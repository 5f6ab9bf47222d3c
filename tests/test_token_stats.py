"""Tests of roots_course.representation.token_stats: readable pieces, granularity rows, the vocabulary sweep, script
costs and the Zipf fit."""

from __future__ import annotations

import pydoc_data.topics

import pytest
import torch

from roots_course.representation import token_stats as ts
from roots_course.core.bpe import ByteBPETokenizer
from roots_course.errors import DataError
from roots_course.core.fast_bpe import FastBPETokenizer
from roots_course.core.tokenizer import CharTokenizer

DOCS = "\n\n".join(pydoc_data.topics.topics[k] for k in sorted(pydoc_data.topics.topics))
TRAIN, VAL = DOCS[:60_000], DOCS[60_000:70_000]


@pytest.fixture(scope="module")
def bpe() -> FastBPETokenizer:
    return FastBPETokenizer.train(TRAIN, 400)


def test_readable_marks_spaces_breaks_and_partial_characters():
    assert ts.readable(b" the") == "␣the"
    assert ts.readable(b"\n\t") == "↵⇥"
    zh = "语".encode()
    assert ts.readable(zh) == "语"
    assert ts.readable(zh[:1]) == "\\xe8" and ts.readable(zh[1:]) == "\\xaf\\xad"
    assert ts.readable(b"a" + zh[:2]) == "a\\xe8\\xaf"


def test_pieces_join_back_to_the_text(bpe):
    text = "Return the list of items.\n    x = 1"
    parts = ts.pieces(bpe, text)
    assert len(parts) == len(bpe.encode(text))
    assert "".join(parts).replace("␣", " ").replace("↵", "\n") == text


def test_words_split_punctuation_and_drop_spaces():
    assert ts.words("Don't stop, 42 times!") == ["Don", "'", "t", "stop", ",", "42", "times", "!"]


def test_granularity_rows_count_tokens_and_unknowns():
    chars = CharTokenizer.train("abc ")
    row = ts.granularity_row("chars", chars, "abcz")
    assert (row.tokens, row.chars, row.unknown_share) == (4, 4, 0.25)
    raw = ts.bytes_row("héllo")
    assert raw.tokens == 6 and raw.bytes_per_token == 1.0 and raw.tokens_per_char == 1.2
    words = ts.word_level_row("a a a b b c", "a c d d", vocab_size=2)  # vocabulary {a, b} + <unk>
    assert words.vocab_size == 3 and words.tokens == 4 and words.unknown_share == 0.75
    assert ts.word_level_row("a a b", "a b").unknown_share == 0.0
    assert set(row.as_row()) >= {"tokenizer", "tokens per character", "bytes per token", "unknown share"}


def test_bpe_compresses_better_than_bytes_and_never_has_unknowns(bpe):
    row = ts.granularity_row("bpe", bpe, VAL)
    assert row.unknown_share == 0
    assert row.bytes_per_token > 1.5
    assert row.tokens < ts.bytes_row(VAL).tokens


def test_vocab_sweep_starts_at_bytes_and_shortens_sequences():
    rows = ts.vocab_sweep(TRAIN, VAL, [512, 300, 300])
    assert [r.vocab_size for r in rows] == [256, 300, 512]
    assert rows[0].bytes_per_token == 1.0
    assert rows[0].tokens > rows[1].tokens > rows[2].tokens
    savings = ts.savings_per_added_token(rows)
    assert len(savings) == 2 and all(s > 0 for s in savings) and savings[0] > savings[1]


def test_chinese_costs_more_than_english_for_an_english_tokenizer(bpe):
    rows = {r["text"]: r for r in ts.script_costs(bpe, {"en": "The value of the list is returned.",
                                                        "zh": "返回列表的值。"})}
    assert rows["zh"]["bytes per character"] == 3.0
    assert rows["zh"]["tokens per character"] > 2 * rows["en"]["tokens per character"]
    assert rows["zh"]["single-byte tokens"] == 1.0


def test_token_kind():
    assert ts.token_kind(b" the") == "starts a word"
    assert ts.token_kind(b"ing") == "inside a word"
    assert ts.token_kind(b"42") == "digits"
    assert ts.token_kind(b"(") == ts.token_kind(b" ") == ts.token_kind(b"\xe8") == "punctuation and other"


def test_passage_picks_a_prose_paragraph(bpe):
    text = "x = 1\n\nheader\n\n    indented code here\n\nThis is a plain sentence of prose that is long enough.\n\nend"
    ids = ts.passage(text, bpe, 5, start=0.0)
    assert len(ids) == 5 and bpe.decode(ids).startswith("This is")


def test_rank_frequency_from_ids_and_items():
    assert ts.rank_frequency(torch.tensor([3, 3, 1, 3, 1, 7])).tolist() == [3, 2, 1]
    assert ts.rank_frequency(["a", "b", "a"]).tolist() == [2, 1]
    with pytest.raises(DataError):
        ts.rank_frequency([])


def test_zipf_fit_recovers_an_exact_power_law():
    ranks = torch.arange(1, 1001, dtype=torch.float64)
    fit = ts.zipf_fit(1e6 * ranks**-1.3)
    assert fit.slope == pytest.approx(-1.3, abs=1e-9) and fit.intercept == pytest.approx(6.0, abs=1e-9)
    assert fit.r2 == pytest.approx(1.0) and (fit.lo, fit.hi) == (10, 500)
    torch.testing.assert_close(fit.predict(torch.tensor([10.0])), torch.tensor([1e6 * 10**-1.3], dtype=torch.float64))
    with pytest.raises(DataError, match="lo"):
        ts.zipf_fit(ranks, lo=5, hi=2000)


def test_words_of_real_text_follow_zipf_roughly():
    fit = ts.zipf_fit(ts.rank_frequency(ts.words(DOCS)))
    assert -1.5 < fit.slope < -0.7 and fit.r2 > 0.9


def test_from_scratch_and_library_bpe_measure_alike():
    text = TRAIN[:20_000]
    ours = ts.granularity_row("ours", ByteBPETokenizer.train(text, 300), VAL)
    theirs = ts.granularity_row("library", FastBPETokenizer.train(text, 300), VAL)
    assert ours.tokens == pytest.approx(theirs.tokens, rel=0.03)
