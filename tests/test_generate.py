"""Tests of roots_course.core.generate: logit filters, cached vs uncached decoding, beam search, scoring."""

import itertools
import math

import pytest
import torch
import torch.nn.functional as F
from tiny_models import sharp_tiny_gpt

from roots_course.errors import ConfigError
from roots_course.core.generate import beam_search, generate, process_logits, sequence_log_prob
from roots_course.core.model import POSITIONS

tiny_model = sharp_tiny_gpt


# ---- process_logits ---------------------------------------------------------------------------


def test_process_logits_is_pure():
    logits = torch.randn(2, 10)
    before = logits.clone()
    out = process_logits(logits, temperature=0.7, top_k=3, top_p=0.9, repetition_penalty=1.5, previous_ids=[1, 2])
    assert torch.equal(logits, before) and out is not logits


def test_temperature_divides_logits():
    logits = torch.randn(3, 8)
    torch.testing.assert_close(process_logits(logits, temperature=2.0), logits / 2)
    torch.testing.assert_close(process_logits(logits[0]), logits[0])  # (V,) works too


def test_top_k_keeps_exactly_k_even_with_ties():
    logits = torch.tensor([[1.0, 1.0, 1.0, 1.0, 0.0, 3.0], [5.0, 4.0, 3.0, 2.0, 1.0, 0.0]])
    for k in (1, 2, 3, 6):
        out = process_logits(logits, top_k=k)
        assert (out.isfinite().sum(dim=-1) == k).all()
    out = process_logits(logits, top_k=2)
    assert out[0, 5] == 3.0 and out[1, :2].tolist() == [5.0, 4.0]  # the largest survive, unchanged
    assert process_logits(logits, top_k=100).isfinite().all()  # k > V keeps everything


@pytest.mark.parametrize(
    "p, kept", [(0.4, [0]), (0.75, [0, 1]), (0.85, [0, 1, 2]), (0.99, [0, 1, 2, 3]), (1.0, [0, 1, 2, 3])]
)
def test_top_p_keeps_the_smallest_set_reaching_p(p, kept):
    probs = torch.tensor([0.15, 0.5, 0.05, 0.3])  # ranked: 1, 3, 0, 2
    order = [1, 3, 0, 2]
    out = process_logits(probs.log()[None], top_p=p)[0]
    assert sorted(torch.nonzero(out.isfinite()).flatten().tolist()) == sorted(order[i] for i in kept)


def test_top_p_on_random_distributions():
    logits = torch.randn(50, 30) * 2
    for p in (0.3, 0.6, 0.9):
        out = process_logits(logits, top_p=p)
        probs = logits.softmax(-1)
        for row in range(50):
            keep = out[row].isfinite()
            mass = probs[row][keep].sum()
            assert mass >= p - 1e-6  # reaches p ...
            assert mass - probs[row][keep].min() < p  # ... and would not without its least likely token
            if not keep.all():  # and they are the most likely ones
                assert probs[row][keep].min() >= probs[row][~keep].max()


@pytest.mark.parametrize("temperature, top_k, top_p, penalty", [(0.7, 10, 0.9, 1.3), (1.5, None, 0.5, 1.0),
                                                               (1.0, 5, None, 2.0), (0.9, 3, 0.3, 0.8)])
def test_process_logits_matches_the_transformers_logits_processors(temperature, top_k, top_p, penalty):
    """The teaching version against the library: Hugging Face's repetition penalty, temperature, top-k and
    top-p processors, applied in that order, keep the same tokens with the same scores."""
    processors = pytest.importorskip("transformers.generation.logits_process")
    g = torch.Generator().manual_seed(0)
    logits = 3 * torch.randn(4, 50, generator=g)  # (B, V)
    previous = torch.randint(0, 50, (4, 7), generator=g)  # (B, n): the tokens written so far
    ours = process_logits(logits, temperature=temperature, top_k=top_k, top_p=top_p, repetition_penalty=penalty,
                          previous_ids=previous)
    chain = [processors.RepetitionPenaltyLogitsProcessor(penalty), processors.TemperatureLogitsWarper(temperature)]
    chain += [processors.TopKLogitsWarper(top_k)] if top_k else []
    chain += [processors.TopPLogitsWarper(top_p)] if top_p else []
    theirs = logits.clone()
    for processor in chain:
        theirs = processor(previous, theirs.clone())
    kept = torch.isfinite(ours)
    assert torch.equal(kept, torch.isfinite(theirs))
    assert 0 < int(kept.sum()) < kept.numel() or (top_k is None and top_p is None)
    torch.testing.assert_close(ours[kept], theirs[kept])


def test_repetition_penalty_divides_positive_and_multiplies_negative():
    logits = torch.tensor([[2.0, -2.0, 1.0, 0.5], [2.0, -2.0, 1.0, 0.5]])
    out = process_logits(logits, repetition_penalty=2.0, previous_ids=[0, 1, 1])
    assert out.tolist() == [[1.0, -4.0, 1.0, 0.5]] * 2  # repeats are penalised once, not per occurrence
    per_row = process_logits(logits, repetition_penalty=2.0, previous_ids=torch.tensor([[0, 0], [3, 1]]))
    assert per_row.tolist() == [[1.0, -2.0, 1.0, 0.5], [2.0, -4.0, 1.0, 0.25]]
    assert (per_row <= logits).all()  # a penalty > 1 never raises a logit
    assert torch.equal(process_logits(logits, repetition_penalty=2.0), logits)  # no history: no change


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(temperature=0.0), "temperature"),
        (dict(top_k=0), "top_k"),
        (dict(top_p=0.0), "top_p"),
        (dict(top_p=1.5), "top_p"),
        (dict(repetition_penalty=0.0), "repetition_penalty"),
    ],
)
def test_bad_settings_are_named(kwargs, name):
    with pytest.raises(ConfigError, match=name):
        process_logits(torch.randn(1, 5), **kwargs)


# ---- generate -----------------------------------------------------------------------------------


@pytest.mark.parametrize("position", POSITIONS)
def test_cached_greedy_equals_uncached_greedy(position):
    model = tiny_model(position=position)
    prompt = [3, 1, 4, 1, 5]
    # 5 + 30 tokens overflow block_size=16: covers the sliding-window fallback too
    cached = generate(model, prompt, 30, greedy=True, use_cache=True)
    uncached = generate(model, prompt, 30, greedy=True, use_cache=False)
    assert len(cached) == 30  # only the new tokens are returned
    assert cached == uncached


@pytest.mark.parametrize("position", ["learned", "rope"])
def test_cached_sampling_equals_uncached_sampling_with_same_seed(position):
    model = tiny_model(position=position)
    settings = dict(temperature=0.8, top_k=20, top_p=0.95, repetition_penalty=1.3)
    runs = [
        generate(model, [7, 8], 25, use_cache=use_cache, generator=torch.Generator().manual_seed(123), **settings)
        for use_cache in (True, False)
    ]
    assert runs[0] == runs[1]
    other_seed = generate(model, [7, 8], 25, generator=torch.Generator().manual_seed(124), **settings)
    assert other_seed != runs[0]


def test_generate_accepts_tensors_and_restores_training_mode():
    model = tiny_model().train()
    a = generate(model, torch.tensor([1, 2, 3]), 5, greedy=True)
    b = generate(model, torch.tensor([[1, 2, 3]]), 5, greedy=True)
    c = generate(model, [1, 2, 3], 5, temperature=0)  # temperature 0 means greedy
    assert a == b == c
    assert model.training
    assert generate(model, [1], 0) == []
    with pytest.raises(ConfigError, match="prompt_ids"):
        generate(model, [], 5)


def test_long_prompt_is_cropped_to_the_window():
    model = tiny_model()
    prompt = list(range(30))  # longer than block_size=16
    assert generate(model, prompt, 5, greedy=True) == generate(model, prompt[-16:], 5, greedy=True)


def test_stop_sequences_stop_generation():
    model = tiny_model()
    full = generate(model, [2, 9], 20, greedy=True)
    stop = full[6:8]
    first = next(i for i in range(len(full) - 1) if full[i : i + 2] == stop)
    out = generate(model, [2, 9], 20, greedy=True, stop_sequences=[[99, 98], stop])
    assert out == full[:first]  # stopped where the stop sequence first appeared, which is dropped
    single = generate(model, [2, 9], 20, greedy=True, stop_sequences=[[full[3]]])
    assert single == full[: full.index(full[3])]
    never = generate(model, [2, 9], 20, greedy=True, stop_sequences=[[39, 39, 39, 39]])
    assert never == full


# ---- beam search ------------------------------------------------------------------------------


@pytest.mark.parametrize("use_cache", [True, False])
def test_beam_width_one_is_greedy(use_cache):
    model = tiny_model(position="rope")
    greedy = generate(model, [5, 6, 7], 20, greedy=True)
    assert beam_search(model, [5, 6, 7], 20, beam_width=1, use_cache=use_cache) == greedy


def test_beam_search_cached_equals_uncached():
    model = tiny_model()
    cached = beam_search(model, [1, 2, 3], 20, beam_width=4, use_cache=True)  # 3 + 20 > block_size
    assert len(cached) == 20
    assert cached == beam_search(model, [1, 2, 3], 20, beam_width=4, use_cache=False)


def test_wide_beam_finds_the_most_likely_continuation():
    model = tiny_model(vocab_size=5, block_size=8)
    prompt = [1, 2]
    best = max(itertools.product(range(5), repeat=3), key=lambda c: sequence_log_prob(model, prompt + list(c), 2))
    # width 25 = 5^2 keeps every prefix, so beam search is exhaustive here
    assert beam_search(model, prompt, 3, beam_width=25) == list(best)
    narrow = beam_search(model, prompt, 3, beam_width=2)
    assert sequence_log_prob(model, prompt + narrow, 2) <= sequence_log_prob(model, prompt + list(best), 2)


@pytest.mark.parametrize("length_penalty", [0.0, 1.0, 2.0])
def test_beam_search_with_eos_and_length_penalty_matches_brute_force(length_penalty):
    model = tiny_model(vocab_size=4, block_size=8)
    prompt, eos, n = [1, 2], 0, 3
    candidates = set()
    for c in itertools.product(range(4), repeat=n):
        c = list(c)
        candidates.add(tuple(c[: c.index(eos) + 1] if eos in c else c))  # a sequence ends at its eos

    def score(c):
        return sequence_log_prob(model, prompt + list(c), len(prompt)) / len(c) ** length_penalty

    best = max(candidates, key=score)
    found = beam_search(model, prompt, n, beam_width=64, length_penalty=length_penalty, eos_id=eos)
    assert found == list(best)


# ---- sequence_log_prob --------------------------------------------------------------------------


def test_sequence_log_prob_is_the_sum_of_next_token_log_probs():
    model = tiny_model()
    ids = torch.randint(0, 40, (17,))  # block_size + 1: one window
    logits = model.eval()(ids[None, :-1]).logits
    logp = F.log_softmax(logits[0], dim=-1).gather(1, ids[1:, None])[:, 0]  # (16,)
    assert math.isclose(sequence_log_prob(model, ids, 1), logp.sum().item(), rel_tol=1e-5)
    assert math.isclose(sequence_log_prob(model, ids, 10), logp[9:].sum().item(), rel_tol=1e-5)
    assert sequence_log_prob(model, ids, 17) == 0.0


def test_sequence_log_prob_of_long_sequences_uses_sliding_windows():
    model = tiny_model().eval()
    ids = torch.randint(0, 40, (41,))
    total = sequence_log_prob(model, ids, 1)
    # by hand: first window scores targets 1..16, then windows of 16 inputs advance by 8
    expected, t = 0.0, 1
    for end in (17, 25, 33, 41):
        w0 = max(0, end - 1 - 16)
        logp = F.log_softmax(model(ids[None, w0 : end - 1]).logits[0], dim=-1)
        expected += logp[t - w0 - 1 :].gather(1, ids[t:end, None]).sum().item()
        t = end
    assert math.isclose(total, expected, rel_tol=1e-5)
    with pytest.raises(ConfigError, match="start"):
        sequence_log_prob(model, ids, 0)
