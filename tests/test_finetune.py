"""Tests of roots_course.tasks.finetune: answer-only targets, the training loop, losses, saving."""

import copy

import pytest
import torch
import tiny_models

from roots_course.core.checkpoint import load_checkpoint
from roots_course.errors import DataError
from roots_course.tasks.finetune import (
    IGNORE,
    answer_losses,
    encode_pairs,
    finetune,
    finetune_config,
    mean_answer_loss,
    random_init_like,
    save_finetuned,
)
from roots_course.core.lora import apply_lora
from roots_course.core.model import GPT, GPTConfig

TOK = tiny_models.char_tokenizer()


def test_targets_mask_the_prompt():
    pairs = encode_pairs(TOK, ["ab =", "abcdef ="], [" 1", " 22"], block_size=32)
    # "ab =" + " 1\n": 7 tokens -> 6 positions; the prompt's last position predicts the first answer token
    assert pairs.lengths.tolist() == [6, 11]
    assert pairs.y[0].tolist()[:6] == [IGNORE, IGNORE, IGNORE] + TOK.encode(" 1\n")
    assert pairs.x[0, :6].tolist() == TOK.encode("ab = 1")
    assert (pairs.y[0, 6:] == IGNORE).all() and pairs.answer_tokens == 3 + 4
    x, _ = pairs.rows(torch.tensor([0]))
    assert x.shape == (1, 6)  # cut to the longest row of the batch


def test_long_prompts_lose_their_start_and_huge_answers_fail():
    pairs = encode_pairs(TOK, ["abcdefghijklmnop ="], [" 1"], block_size=8)
    assert pairs.lengths.tolist() == [8]
    assert TOK.decode(pairs.x[0, :8].tolist()) == "mnop = 1"  # 9 tokens fit: the prompt's start is gone
    with pytest.raises(DataError):
        encode_pairs(TOK, ["a"], [" 123456789"], block_size=8)
    with pytest.raises(DataError):
        encode_pairs(TOK, ["a", "b"], [" 1"], block_size=8)


def _model() -> GPT:
    return GPT(GPTConfig(vocab_size=TOK.vocab_size, block_size=24, n_layer=2, n_head=2, n_embd=32))


def test_answer_loss_matches_the_model_loss():
    model = _model()
    pairs = encode_pairs(TOK, ["ab =", "cd =", "efg ="], [" 1", " 22", " 3"], block_size=24)
    rows = answer_losses(model, pairs)
    x, y = pairs.rows(torch.arange(3))
    loss = model(x, y).loss
    assert rows[:, 1].tolist() == [3, 4, 3]
    assert mean_answer_loss(model, pairs) == pytest.approx(loss.item(), rel=1e-5)


def test_finetune_learns_a_mapping_and_only_trains_what_requires_grad(tmp_path):
    prompts = [f"{a}{b} =" for a in "abcd" for b in "efgh"]
    answers = [f" {len(p) % 3}{'abcd'.index(p[0])}" for p in prompts]
    pairs = encode_pairs(TOK, prompts, answers, block_size=24)
    model = _model()
    before = mean_answer_loss(model, pairs)
    result = finetune(model, pairs, finetune_config(80, 8, 3e-3, seed=0))
    assert mean_answer_loss(model, pairs) < before / 3
    assert result.trainable_parameters == result.total_parameters == model.num_parameters()
    assert len(result.history) == 10 and result.history[-1]["loss"] < result.history[0]["loss"]

    lora_model = _model()
    reference = copy.deepcopy(lora_model)
    apply_lora(lora_model, 2, 4.0)
    lora = finetune(lora_model, pairs, finetune_config(10, 8, 1e-2, seed=0))
    assert lora.trainable_parameters < lora.total_parameters / 5
    torch.testing.assert_close(lora_model.tok_emb.weight, reference.tok_emb.weight)  # frozen

    saved = save_finetuned(tmp_path / "finetuned_demo", model, result, task="demo")
    loaded, _, state = load_checkpoint(saved)
    assert state["task"] == "demo" and state["step"] == 80
    assert mean_answer_loss(loaded, pairs) == pytest.approx(mean_answer_loss(model, pairs), rel=1e-6)


def test_finetune_is_reproducible():
    pairs = encode_pairs(TOK, ["ab =", "cd ="], [" 1", " 2"], block_size=24)
    a, b = _model(), _model()
    b.load_state_dict(a.state_dict())
    finetune(a, pairs, finetune_config(5, 4, 1e-3, seed=7))
    finetune(b, pairs, finetune_config(5, 4, 1e-3, seed=7))
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))


def test_random_init_like_has_the_shape_but_not_the_weights():
    trained = _model()
    with torch.no_grad():
        trained.tok_emb.weight.add_(1.0)
    state = torch.random.get_rng_state()
    fresh, again = random_init_like(trained, seed=3), random_init_like(trained, seed=3)
    assert torch.equal(torch.random.get_rng_state(), state)  # the global random state is untouched
    assert fresh.config == trained.config and fresh.num_parameters() == trained.num_parameters()
    assert not torch.equal(fresh.tok_emb.weight, trained.tok_emb.weight)
    assert all(torch.equal(a, b) for a, b in zip(fresh.state_dict().values(), again.state_dict().values()))
