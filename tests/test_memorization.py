"""Tests of roots_course.society.memorization: the n-gram index against plain sets, continuations, losses, ROC and AUC."""

import itertools
import random

import numpy as np
import pytest
import torch
from tiny_models import sharp_tiny_gpt

from roots_course.society import memorization as M
from roots_course.errors import ConfigError
from roots_course.core.generate import generate
from roots_course.core.model import GPT, GPTConfig


def tiny_model(**overrides) -> GPT:
    return sharp_tiny_gpt(**{"vocab_size": 30, "block_size": 24, **overrides}).eval()


# ---- the index --------------------------------------------------------------------------------------


def test_hashes_have_one_per_ngram_and_separate_orders():
    assert len(M.ngram_hashes([1, 2, 3, 4], 2)) == 3
    assert len(M.ngram_hashes([1, 2], 3)) == 0
    a, b = M.ngram_hashes([1, 2], 2), M.ngram_hashes([2, 1], 2)
    assert a[0] != b[0], "order matters"
    assert M.ngram_hashes([0, 0], 2)[0] != M.ngram_hashes([0], 1)[0]
    with pytest.raises(ConfigError):
        M.ngram_hashes([1, 2], 0)


@pytest.mark.parametrize("seed", range(5))
def test_index_agrees_with_sets_of_tuples(seed):
    rng = random.Random(seed)
    reference = [rng.randrange(5) for _ in range(400)]
    for n in (1, 2, 3, 5, 8):
        index = M.NgramIndex(reference, n)
        known = set(M.ngrams(reference, n))
        assert len(index) == len(known)
        for _ in range(10):
            query = [rng.randrange(6) for _ in range(rng.randrange(0, 30))]
            expected = [g in known for g in M.ngrams(query, n)]
            assert index.contains(query).tolist() == expected
            found, total = index.counts(query)
            assert total == len(expected) and found == sum(expected)
            if expected:
                assert found / total == pytest.approx(M.ngram_overlap(query, reference, n))


def test_training_text_is_always_found_and_unseen_text_is_not():
    ids = torch.arange(100) % 37
    index = M.TrainingIndex(ids, [1, 2, 4, 16])
    assert index.overlap([ids[10:40], ids[50:90]]) == {1: 1.0, 2: 1.0, 4: 1.0, 16: 1.0}
    unseen = [40, 41, 42, 43, 44, 45]  # ids never in the text
    shares = index.overlap([unseen])
    assert [shares[n] for n in (1, 2, 4)] == [0.0, 0.0, 0.0] and np.isnan(shares[16])
    assert np.isnan(index.overlap([[1, 2]])[4]), "no 4-gram in a 2-token text: undefined, not 0"


def test_overlap_pools_ngrams_over_sequences():
    index = M.TrainingIndex([1, 2, 3], [2])
    # [1, 2, 3] has 2 known bigrams of 2; [9, 9, 9, 9] has 0 of 3: pooled 2 / 5, not the mean of 1 and 0
    assert index.overlap([[1, 2, 3], [9, 9, 9, 9]])[2] == pytest.approx(2 / 5)


def test_longest_match_marks_the_longest_indexed_run():
    index = M.TrainingIndex([5, 6, 7, 8, 9], [1, 2, 4])
    assert index.longest_match([5, 6, 7, 8, 0, 9]).tolist() == [4, 2, 2, 1, 0, 1]


def test_plain_overlap_definition():
    assert M.ngram_overlap([1, 2, 3], [1, 2, 3, 4], 2) == 1.0
    assert M.ngram_overlap([1, 2, 3], [3, 2, 1], 2) == 0.0
    assert M.ngram_overlap([5, 5, 5], [5, 5], 2) == 1.0
    assert M.ngram_overlap([1], [1, 2], 2) == 0.0


# ---- windows, continuations, losses -----------------------------------------------------------------


def test_windows_are_slices_of_the_stream():
    tokens = torch.arange(50)
    w = M.sample_windows(tokens, 7, 20, torch.Generator().manual_seed(1))
    assert w.shape == (20, 7)
    assert torch.equal(w - w[:, :1], torch.arange(7).expand(20, 7)), "consecutive tokens"
    assert int(w.max()) < 50
    with pytest.raises(ConfigError):
        M.sample_windows(torch.arange(5), 7, 1, torch.Generator())


def test_greedy_batch_equals_one_at_a_time_generation():
    model = tiny_model()
    prompts = torch.randint(0, 30, (5, 6), generator=torch.Generator().manual_seed(2))
    written, probs = M.continue_batch(model, prompts, 8, batch_size=2)
    assert written.shape == probs.shape == (5, 8)
    for row in range(5):
        assert written[row].tolist() == generate(model, prompts[row].tolist(), 8, greedy=True)
    # the reported probability is the model's for the token it wrote
    logits = model(torch.cat([prompts[:1], written[:1, :1]], 1)).logits[0, -2]
    assert probs[0, 0].item() == pytest.approx(logits.softmax(-1)[written[0, 0]].item(), rel=1e-4)
    assert ((probs > 0) & (probs <= 1)).all()


def test_sampling_is_reproducible_and_window_is_checked():
    model = tiny_model()
    prompts = torch.zeros(3, 4, dtype=torch.long)
    a = M.continue_batch(model, prompts, 6, greedy=False, generator=torch.Generator().manual_seed(3))[0]
    b = M.continue_batch(model, prompts, 6, greedy=False, generator=torch.Generator().manual_seed(3))[0]
    assert torch.equal(a, b)
    with pytest.raises(ConfigError):
        M.continue_batch(model, prompts, 21)  # 4 + 21 > 24


def test_window_losses_are_the_mean_cross_entropy_of_each_window():
    model = tiny_model()
    windows = torch.randint(0, 30, (4, 25), generator=torch.Generator().manual_seed(4))
    losses = M.window_losses(model, windows, batch_size=3)
    for i in range(4):
        loss = model(windows[i : i + 1, :-1], windows[i : i + 1, 1:]).loss
        assert losses[i].item() == pytest.approx(loss.item(), rel=1e-5)
    with pytest.raises(ConfigError):
        M.window_losses(model, torch.zeros(1, 26, dtype=torch.long))


def test_extraction_of_a_text_the_model_continues_perfectly():
    model = tiny_model(vocab_size=8, n_layer=1)
    # build a stream that is exactly the model's own greedy continuation: extraction must be perfect
    stream = [1, 2, 3]
    stream += generate(model, stream, 40, greedy=True)
    ex = M.extract(model, torch.tensor(stream[:20]), 3, 4, 6, torch.Generator().manual_seed(0))
    assert ex.matched.shape == (6,) and ex.exact.dtype == torch.bool
    # matched counts leading equal tokens only
    fake = M.Extraction(torch.zeros(2, 1), torch.tensor([[1, 2, 3], [1, 2, 3]]), torch.tensor([[1, 9, 3], [1, 2, 3]]),
                        torch.ones(2, 3))
    assert fake.matched.tolist() == [1, 3] and fake.exact.tolist() == [False, True]
    assert fake.exact_rate == 0.5 and fake.token_accuracy == pytest.approx(5 / 6)


# ---- ROC and AUC -------------------------------------------------------------------------------------


def pairwise_auc(pos, neg):
    return sum(1.0 if p > n else 0.5 if p == n else 0.0 for p, n in itertools.product(pos, neg)) / (len(pos) * len(neg))


@pytest.mark.parametrize("seed", range(6))
def test_rank_auc_equals_counting_pairs_with_ties(seed):
    rng = random.Random(seed)
    pos = [rng.randrange(8) for _ in range(rng.randrange(1, 30))]  # small integers: many ties
    neg = [rng.randrange(6) for _ in range(rng.randrange(1, 30))]
    assert M.auc(pos, neg) == pytest.approx(pairwise_auc(pos, neg), abs=1e-12)
    fpr, tpr, thresholds = M.roc_curve(pos, neg)
    assert M.area_under(fpr, tpr) == pytest.approx(M.auc(pos, neg), abs=1e-12)
    assert fpr[0] == tpr[0] == 0 and fpr[-1] == tpr[-1] == 1
    assert np.all(np.diff(fpr) >= 0) and np.all(np.diff(tpr) >= 0) and thresholds[0] == np.inf


def test_auc_extremes_and_symmetry():
    assert M.auc([3, 4], [1, 2]) == 1.0
    assert M.auc([1, 2], [3, 4]) == 0.0
    assert M.auc([1, 1], [1]) == 0.5
    assert M.auc([0.9, 0.2], [0.5]) + M.auc([0.5], [0.9, 0.2]) == pytest.approx(1.0)
    with pytest.raises(ConfigError):
        M.auc([], [1.0])
    with pytest.raises(ConfigError):
        M.auc([float("nan")], [1.0])


def test_average_ranks_share_ties():
    assert M.average_ranks(np.array([10.0, 20.0, 10.0, 30.0])).tolist() == [1.5, 3.0, 1.5, 4.0]


def test_tpr_at_low_fpr():
    pos, neg = [5, 4, 3, 0], [2, 1, 0, -1]
    assert M.tpr_at_fpr(pos, neg, 0.0) == 0.75  # threshold 3 catches 3 positives and no negative
    assert M.tpr_at_fpr(pos, neg, 1.0) == 1.0


def test_loss_gap_gives_auc_above_half_for_a_memorised_window():
    torch.manual_seed(0)
    # a shape of its own, sized with the 150 steps below to memorise one window
    model = GPT(GPTConfig(vocab_size=16, block_size=12, n_layer=1, n_head=2, n_embd=32))
    seen = torch.randint(0, 16, (1, 13), generator=torch.Generator().manual_seed(5))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(150):  # memorise one window
        loss = model(seen[:, :-1], seen[:, 1:]).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    unseen = torch.randint(0, 16, (20, 13), generator=torch.Generator().manual_seed(6))
    member = M.window_losses(model, seen.expand(3, 13))
    other = M.window_losses(model, unseen)
    assert member.max() < other.min()
    assert M.auc(-member, -other) == 1.0


def test_shares_ngram_with_flags_windows_holding_an_indexed_ngram():
    training = list(range(20))
    index = M.NgramIndex(training, 4)
    windows = [[50, 51, 5, 6, 7, 8, 52], [50, 5, 6, 7, 51, 52, 53], [9, 10, 11, 12]]
    assert M.shares_ngram_with(index, windows).tolist() == [True, False, True]
    assert M.shares_ngram_with(index, torch.tensor([[1, 2, 3]])).tolist() == [False], "shorter than n"


def test_duplicated_spans_are_the_maximal_runs_of_found_ngrams():
    index = M.NgramIndex(list(range(20)), 3)
    ids = [50, 1, 2, 3, 4, 51, 7, 8, 9, 52, 10, 11]
    assert M.duplicated_spans(index, ids) == [(1, 4), (6, 3)], "10, 11 is shorter than n: no span"
    assert M.duplicated_spans(index, [40, 41, 42]) == []
