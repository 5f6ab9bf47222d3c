"""Tests of roots_course.optimization.ngram: counts, smoothing, scoring, the choice of k, and the baselines."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest
import torch

from roots_course.errors import ConfigError, DataError
from roots_course.optimization.ngram import NGramModel, choose_k, ngram_baselines


def test_unigram_probabilities_are_smoothed_frequencies():
    ids = [0, 0, 0, 1]
    m = NGramModel(1, vocab_size=3, k=1.0).fit(ids)
    assert m.prob([], 0) == pytest.approx((3 + 1) / (4 + 3))
    assert m.prob([], 2) == pytest.approx(1 / 7)          # never seen: only the k
    assert m.prob([2, 0], 1) == pytest.approx(2 / 7)      # a unigram ignores any context


def test_bigram_matches_hand_counts():
    ids = [0, 1, 2, 0, 1, 2, 0, 1, 3, 3]
    m = NGramModel(2, vocab_size=4, k=0.5).fit(ids)
    pairs = Counter(zip(ids, ids[1:]))
    for a in range(4):
        followed = sum(c for (x, _), c in pairs.items() if x == a)
        for b in range(4):
            assert m.prob([a], b) == pytest.approx((pairs[(a, b)] + 0.5) / (followed + 0.5 * 4))


@pytest.mark.parametrize("order", [1, 2, 3, 5])
def test_every_context_gives_a_distribution(order):
    rng = np.random.default_rng(order)
    ids = rng.integers(0, 6, size=300)
    m = NGramModel(order, 6, k=0.1).fit(ids)
    for context in ([], [1], [2, 3], [0, 1, 2, 3, 4], [5, 5, 5, 5]):
        total = sum(m.prob(context, s) for s in range(6))
        assert total == pytest.approx(1.0)


def test_unseen_context_is_uniform_and_loss_is_finite():
    m = NGramModel(3, vocab_size=5, k=0.01).fit([0, 1, 0, 1, 0, 1])
    assert m.prob([4, 4], 2) == pytest.approx(1 / 5)
    assert math.isfinite(m.cross_entropy([4, 3, 2, 1, 0]))


def test_cross_entropy_is_mean_negative_log_prob_and_bits_divide_by_ln2():
    ids = [0, 1, 1, 0, 2, 1, 0]
    m = NGramModel(2, 3, k=1.0).fit(ids)
    expected = -np.mean([math.log(m.prob(ids[:i], ids[i])) for i in range(len(ids))])
    assert m.cross_entropy(ids) == pytest.approx(expected)
    assert m.bits(ids) == pytest.approx(expected / math.log(2))


def test_start_of_text_is_padded_so_every_symbol_is_scored():
    m = NGramModel(4, 3, k=1.0).fit([0, 1, 2] * 20)
    # By hand: each of the three padded start contexts (_ _ _), (_ _ 0), (_ 0 1) occurs once in training,
    # followed by the symbol that comes next here: (1 + 1) / (1 + 3). The full contexts (0 1 2) and
    # (1 2 0) occur 19 times each, always followed by 0 and 1: (19 + 1) / (19 + 3).
    expected = np.log([2 / 4, 2 / 4, 2 / 4, 20 / 22, 20 / 22])
    assert m.log_probs([0, 1, 2, 0, 1]) == pytest.approx(expected)
    # the same symbol at the start of a text is scored in its padded context, not the full one
    assert m.prob([], 1) == pytest.approx(1 / 4) and m.prob([1, 2, 0], 1) == pytest.approx(20 / 22)


def test_bigram_counts_and_loss_by_hand():
    ids = [0, 1, 0, 2] * 25                     # 100 symbols: after 0 comes 1 or 2, after 1 or 2 comes 0
    m = NGramModel(2, 3, k=1.0).fit(ids)
    # counts: 0 is a context 50 times (25 x 1, 25 x 2), 1 is 25 times (all 0), 2 is 24 times (the last 2
    # ends the text), the start once (0): P = (count + 1) / (context count + 3)
    assert m.prob([0], 1) == pytest.approx(26 / 53) and m.prob([0], 2) == pytest.approx(26 / 53)
    assert m.prob([0], 0) == pytest.approx(1 / 53)
    assert m.prob([1], 0) == pytest.approx(26 / 28) and m.prob([1], 2) == pytest.approx(1 / 28)
    assert m.prob([2], 0) == pytest.approx(25 / 27)
    assert m.prob([], 0) == pytest.approx(2 / 4)
    nats = -(math.log(2 / 4) + 50 * math.log(26 / 53) + 25 * math.log(26 / 28) + 24 * math.log(25 / 27)) / 100
    assert m.cross_entropy(ids) == pytest.approx(nats)


def test_losses_of_a_text_whose_entropy_is_known():
    """In 0 1 0 2 0 1 0 2 ... symbol 0 is half the text and 1, 2 a quarter each: a unigram needs 1.5 bits
    per symbol. Given the previous symbol, only the choice after a 0 is open (1 bit, half the time):
    a bigram needs 0.5 bits. With almost no smoothing the models reach exactly these on the text itself."""
    ids = [0, 1, 0, 2] * 1000
    assert NGramModel(1, 3, k=1e-9).fit(ids).bits(ids) == pytest.approx(1.5, abs=1e-6)
    assert NGramModel(2, 3, k=1e-9).fit(ids).bits(ids) == pytest.approx(0.5, abs=1e-3)
    # the text repeats every 4 symbols: a trigram sees "1 0" or "2 0" and knows what comes next
    assert NGramModel(3, 3, k=1e-9).fit(ids).bits(ids) == pytest.approx(0.0, abs=1e-6)


def test_a_deterministic_sequence_is_learned_by_a_bigram_but_not_a_unigram():
    ids = np.arange(2000) % 7                 # each symbol fully determines the next
    uni = NGramModel(1, 7, k=0.001).fit(ids)
    bi = NGramModel(2, 7, k=0.001).fit(ids)
    assert uni.bits(ids) == pytest.approx(math.log2(7), abs=0.01)
    assert bi.bits(ids) < 0.01


def test_accepts_tensors_and_rejects_bad_input():
    m = NGramModel(2, 4).fit(torch.tensor([0, 1, 2, 3, 0, 1]))
    assert math.isfinite(m.cross_entropy(torch.tensor([1, 2, 3])))
    with pytest.raises(DataError, match="outside range"):
        m.cross_entropy([0, 9])
    with pytest.raises(DataError, match="empty"):
        NGramModel(2, 4).fit([])
    with pytest.raises(ConfigError, match="k must be a positive number"):
        NGramModel(2, 4, k=0)
    with pytest.raises(ConfigError, match="not been fitted"):
        NGramModel(2, 4).cross_entropy([1, 2])
    with pytest.raises(ConfigError, match="64-bit key"):
        NGramModel(10, 100_000)


def test_choose_k_prefers_little_smoothing_on_plentiful_regular_data_and_more_on_sparse_data():
    regular = np.arange(5000) % 5
    assert choose_k(regular, 2, 5) <= 1e-3
    rng = np.random.default_rng(0)
    sparse = rng.integers(0, 200, size=400)  # random text, 200 symbols: bigram counts are almost all 0 or 1
    assert choose_k(sparse, 2, 200) >= 0.1


def test_baselines_report_each_order_and_more_context_helps_on_structured_data():
    rng = np.random.default_rng(1)
    words = [[0, 1, 2], [3, 4], [5, 1, 6, 2]]
    ids = np.concatenate([words[i] for i in rng.integers(0, 3, size=3000)])
    train, val = ids[:8000], ids[8000:]
    rows = ngram_baselines(train, val, 7, orders=(1, 2, 3))
    assert [r.name for r in rows] == ["unigram", "bigram", "trigram"]
    assert rows[0].nats > rows[1].nats > rows[2].nats
    assert all(r.bits == pytest.approx(r.nats / math.log(2)) for r in rows)


def test_interpolated_ngram_sums_to_one_and_beats_add_k_on_new_text():
    from roots_course.optimization.ngram import InterpolatedNGram, interpolated_baseline
    rng = np.random.default_rng(0)
    # a source where the last symbol predicts the next, plus noise: the trigram's contexts are sparse
    ids = [0]
    for _ in range(3000):
        ids.append((ids[-1] * 3 + 1) % 40 if rng.random() < 0.7 else int(rng.integers(0, 40)))
    ids = np.array(ids)
    train, val = ids[:2000], ids[2000:]
    model = InterpolatedNGram(3, 40, k=0.1).fit(train)
    for context in ([1, 4], [39, 39], [5], []):
        assert math.isclose(sum(model.prob(context, w) for w in range(40)), 1.0, rel_tol=1e-9)
    _, add_k_trigram = ngram_baselines(train, val, 40, orders=(2, 3))
    interp = interpolated_baseline(train, val, 40, order=3)
    assert interp.nats < add_k_trigram.nats             # the shorter contexts rescue the sparse ones
    assert interp.name == "trigram (interpolated)"
    # an unseen context falls back to the shorter one exactly
    bigram_only = InterpolatedNGram(2, 40, k=0.1).fit(train)
    pairs = set(zip(train[:-1].tolist(), train[1:].tolist()))
    a, b = next((a, b) for a in range(40) for b in range(40) if (a, b) not in pairs)
    for w in (0, 3, b):
        assert math.isclose(model.prob([a, b], w), bigram_only.prob([b], w), rel_tol=1e-12)
    assert not math.isclose(model.prob(train[:2].tolist(), int(train[2])),
                            bigram_only.prob(train[1:2].tolist(), int(train[2])))   # a seen one differs
    with pytest.raises(ConfigError, match="fitted"):
        InterpolatedNGram(2, 5).log_probs([1, 2])
