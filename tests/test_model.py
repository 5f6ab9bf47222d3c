"""Tests of roots_course.core.model: configuration, causality, counting, initialisation, saving."""

import math

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, load_model, save_file, save_model

from roots_course.core.model import (
    GPT,
    POSITIONS,
    GPTConfig,
    GPTOutput,
    forward_flops_per_token,
    sinusoidal_positions,
    training_flops_per_token,
)
from roots_course.errors import CheckpointError, ConfigError
from roots_course.society import cost


def tiny(**overrides) -> GPTConfig:
    fields = dict(vocab_size=50, block_size=16, n_layer=2, n_head=2, n_embd=16)
    fields.update(overrides)
    return GPTConfig(**fields)


# ---- configuration ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "overrides, field",
    [
        (dict(n_embd=18, n_head=4), "n_embd"),
        (dict(position="alibi"), "position"),
        (dict(vocab_size=0), "vocab_size"),
        (dict(block_size=2.5), "block_size"),
        (dict(dropout=1.0), "dropout"),
        (dict(n_embd=12, n_head=4, position="rope"), "rope"),
    ],
)
def test_validate_names_the_bad_field(overrides, field):
    with pytest.raises(ConfigError, match=field):
        tiny(**overrides).validate()
    with pytest.raises(ConfigError, match=field):
        GPT(tiny(**overrides))


def test_unknown_position_error_lists_allowed_values():
    with pytest.raises(ConfigError) as info:
        tiny(position="alibi").validate()
    assert all(p in str(info.value) for p in POSITIONS)


def test_config_dict_round_trip_and_bad_keys():
    cfg = tiny(position="rope", dropout=0.1, tie_weights=False)
    assert GPTConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ConfigError, match="n_embed"):
        GPTConfig.from_dict({**cfg.to_dict(), "n_embed": 3})
    d = cfg.to_dict()
    del d["n_layer"]
    with pytest.raises(ConfigError, match="n_layer"):
        GPTConfig.from_dict(d)


def test_sinusoidal_table():
    table = sinusoidal_positions(10, 6)
    assert table.shape == (10, 6)
    assert torch.equal(table[0], torch.tensor([0.0, 1.0, 0.0, 1.0, 0.0, 1.0]))
    torch.testing.assert_close(table[3, 2], torch.tensor(math.sin(3 / 10000 ** (2 / 6))))
    torch.testing.assert_close(table[3, 3], torch.tensor(math.cos(3 / 10000 ** (2 / 6))))
    assert sinusoidal_positions(4, 5).shape == (4, 5)  # odd widths work too


# ---- the forward pass -------------------------------------------------------------------------


def test_shapes_and_loss_is_mean_cross_entropy():
    model = GPT(tiny())
    idx = torch.randint(0, 50, (3, 10))
    targets = torch.randint(0, 50, (3, 10))
    logits, loss, _ = model(idx, targets)
    assert logits.shape == (3, 10, 50)
    torch.testing.assert_close(loss, F.cross_entropy(logits.view(-1, 50), targets.view(-1)))
    assert model(idx).loss is None and model(idx).attention is None
    targets[:, :5] = -100  # ignored positions
    loss = model(idx, targets).loss
    torch.testing.assert_close(loss, F.cross_entropy(logits[:, 5:].reshape(-1, 50), targets[:, 5:].reshape(-1)))


def test_untrained_model_loss_is_about_ln_vocab():
    model = GPT(tiny(vocab_size=1000, n_embd=32, n_head=4))
    idx = torch.randint(0, 1000, (4, 16))
    loss = model(idx, torch.randint(0, 1000, (4, 16))).loss
    assert abs(loss.item() - math.log(1000)) < 0.05  # uniform guess: -ln(1/V)


def test_too_long_input_names_block_size():
    model = GPT(tiny())
    with pytest.raises(ConfigError, match="block_size=16"):
        model(torch.zeros(1, 17, dtype=torch.long))
    cache = model.make_cache(1)
    model(torch.zeros(1, 16, dtype=torch.long), cache=cache)
    with pytest.raises(ConfigError, match="block_size=16"):
        model(torch.zeros(1, 1, dtype=torch.long), cache=cache)


@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("position", POSITIONS)
def test_causal_mask_hides_the_future(position, fused):
    model = GPT(tiny(position=position, fused_attention=fused)).eval()
    idx = torch.randint(0, 50, (2, 12))
    t = 6
    changed = idx.clone()
    changed[:, t + 1] = (idx[:, t + 1] + 1) % 50  # perturb token t+1
    a = model(idx).logits
    b = model(changed).logits
    torch.testing.assert_close(a[:, : t + 1], b[:, : t + 1], atol=1e-6, rtol=0)  # outputs <= t unchanged
    assert not torch.allclose(a[:, t + 1 :], b[:, t + 1 :])  # later ones do see it


@pytest.mark.parametrize("position", POSITIONS)
def test_cached_forward_equals_full_forward(position):
    model = GPT(tiny(position=position)).eval()
    idx = torch.randint(0, 50, (2, 14))
    full = model(idx).logits
    cache = model.make_cache(2)
    parts = [model(idx[:, :6], cache=cache).logits]
    for t in range(6, 11):
        parts.append(model(idx[:, t : t + 1], cache=cache).logits)
    parts.append(model(idx[:, 11:], cache=cache).logits)  # a chunk after a cached prefix
    assert cache.length == 14
    torch.testing.assert_close(torch.cat(parts, dim=1), full, atol=1e-5, rtol=0)


def test_fused_and_written_out_models_agree():
    a = GPT(tiny(position="rope", fused_attention=True)).eval()
    b = GPT(tiny(position="rope", fused_attention=False)).eval()
    b.load_state_dict(a.state_dict())
    idx = torch.randint(0, 50, (2, 16))
    torch.testing.assert_close(a(idx).logits, b(idx).logits, atol=1e-5, rtol=0)


def test_attention_maps():
    model = GPT(tiny(n_layer=3)).train()
    maps = model.attention_maps(torch.randint(0, 50, (2, 9)))
    assert model.training  # mode restored
    assert len(maps) == 3 and all(m.shape == (2, 2, 9, 9) for m in maps)
    torch.testing.assert_close(maps[1].sum(-1), torch.ones(2, 2, 9))
    assert (maps[2].triu(diagonal=1) == 0).all()


# ---- positions: what attention can and cannot tell --------------------------------------------


def test_without_positions_one_layer_sees_its_past_as_an_unordered_set():
    # With position="none", the last position's output cannot depend on the order of earlier
    # tokens in a one-layer model: attention sums over them as a set.
    idx = torch.randint(0, 50, (1, 10))
    shuffled = torch.cat([idx[:, :-1][:, torch.randperm(9)], idx[:, -1:]], dim=1)
    assert not torch.equal(shuffled, idx)
    none = GPT(tiny(n_layer=1, position="none")).eval()
    torch.testing.assert_close(none(shuffled).logits[:, -1], none(idx).logits[:, -1], atol=1e-5, rtol=0)
    # With learned positions, the order matters.
    learned = GPT(tiny(n_layer=1, position="learned")).eval()
    assert not torch.allclose(learned(shuffled).logits[:, -1], learned(idx).logits[:, -1], atol=1e-4)
    # Stacked causal layers leak order even without positions: in layer 2 the last token sees
    # earlier tokens' layer-1 states, and each of those saw a different prefix.
    deep = GPT(tiny(n_layer=2, position="none")).eval()
    assert not torch.allclose(deep(shuffled).logits[:, -1], deep(idx).logits[:, -1], atol=1e-4)


# ---- counting ---------------------------------------------------------------------------------


def expected_parameters(c: GPTConfig) -> int:
    C, V = c.n_embd, c.vocab_size
    per_block = 12 * C * C + (13 * C if c.bias else 2 * C)  # qkv 3C^2, proj C^2, MLP 8C^2, 2 LayerNorms
    n = c.n_layer * per_block + (2 * C if c.bias else C)  # + final LayerNorm
    n += V * C  # token embedding
    n += c.block_size * C if c.position == "learned" else 0
    n += 0 if c.tie_weights else V * C  # separate output head
    return n


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("tie", [True, False])
@pytest.mark.parametrize("position", ["learned", "rope"])
def test_parameter_count_formula(bias, tie, position):
    cfg = tiny(bias=bias, tie_weights=tie, position=position)
    model = GPT(cfg)
    unique = {p.data_ptr(): p.numel() for p in model.state_dict().values() if p.is_floating_point()}
    assert model.num_parameters() == expected_parameters(cfg) == sum(unique.values())
    embeddings = cfg.vocab_size * cfg.n_embd + (cfg.block_size * cfg.n_embd if position == "learned" else 0)
    assert model.num_parameters(non_embedding=True) == expected_parameters(cfg) - embeddings


def test_flops_per_token_formula():
    cfg = tiny()
    tied, untied = GPT(cfg), GPT(tiny(tie_weights=False))
    N = 12 * cfg.n_embd**2 * cfg.n_layer + 2 * cfg.n_embd * cfg.n_layer + cfg.n_embd + cfg.vocab_size * cfg.n_embd
    assert tied.flops_per_token() == 6 * N + 12 * cfg.n_layer * cfg.n_embd * cfg.block_size
    assert untied.flops_per_token(seq_len=8) == tied.flops_per_token(seq_len=8)  # same compute
    assert tied.flops_per_token(8) < tied.flops_per_token(16)


def test_gpt2_initialisation():
    model = GPT(GPTConfig(vocab_size=512, block_size=8, n_layer=4, n_head=4, n_embd=256))
    assert abs(model.blocks[0].mlp.fc.weight.std().item() - 0.02) < 0.001
    assert abs(model.tok_emb.weight.std().item() - 0.02) < 0.001
    scaled = 0.02 / math.sqrt(2 * 4)
    for block in model.blocks:
        assert abs(block.attn.proj.weight.std().item() - scaled) < 0.0005
        assert abs(block.mlp.proj.weight.std().item() - scaled) < 0.0005


# ---- saving with tied weights -----------------------------------------------------------------


def test_tied_weights_survive_safetensors_round_trip(tmp_path):
    model = GPT(tiny(position="sinusoidal")).eval()
    assert model.lm_head.weight is model.tok_emb.weight
    with pytest.raises(RuntimeError, match="share memory"):
        save_file(model.state_dict(), tmp_path / "naive.safetensors")  # why the helper exists

    sd = model.state_dict_for_saving()
    assert "lm_head.weight" not in sd and "tok_emb.weight" in sd  # canonical key
    save_file(sd, tmp_path / "model.safetensors")
    torch.manual_seed(1)
    loaded = GPT(tiny(position="sinusoidal")).eval()
    loaded.load_state_for_saving(load_file(tmp_path / "model.safetensors"))
    assert loaded.lm_head.weight is loaded.tok_emb.weight  # still one matrix
    idx = torch.randint(0, 50, (2, 8))
    torch.testing.assert_close(loaded(idx).logits, model(idx).logits, atol=0, rtol=0)
    # training the loaded model moves both ends of the tie together
    with torch.no_grad():
        loaded.tok_emb.weight[0] += 1
    assert torch.equal(loaded.lm_head.weight[0], loaded.tok_emb.weight[0])

    # safetensors' own save_model/load_model also handle the tie
    save_model(model, str(tmp_path / "other.safetensors"))
    torch.manual_seed(2)
    other = GPT(tiny(position="sinusoidal")).eval()
    load_model(other, str(tmp_path / "other.safetensors"))
    assert other.lm_head.weight is other.tok_emb.weight
    torch.testing.assert_close(other(idx).logits, model(idx).logits, atol=0, rtol=0)
    # and a file that kept the other name of the tied matrix loads through our helper too
    renamed = {("lm_head.weight" if k == "tok_emb.weight" else k): v for k, v in sd.items()}
    other.load_state_for_saving(renamed)
    assert other.lm_head.weight is other.tok_emb.weight


def test_untied_model_saves_both_matrices(tmp_path):
    model = GPT(tiny(tie_weights=False)).eval()
    sd = model.state_dict_for_saving()
    assert "lm_head.weight" in sd
    save_file(sd, tmp_path / "m.safetensors")
    loaded = GPT(tiny(tie_weights=False)).eval()
    loaded.load_state_for_saving(load_file(tmp_path / "m.safetensors"))
    idx = torch.randint(0, 50, (1, 5))
    torch.testing.assert_close(loaded(idx).logits, model(idx).logits, atol=0, rtol=0)


def test_strict_loading_names_missing_and_unexpected_keys():
    model = GPT(tiny())
    sd = model.state_dict_for_saving()
    sd.pop("blocks.1.mlp.fc.weight")
    sd["extra.weight"] = torch.zeros(1)
    with pytest.raises(CheckpointError, match=r"blocks\.1\.mlp\.fc\.weight.*extra\.weight"):
        model.load_state_for_saving(sd)
    model.load_state_for_saving(sd, strict=False)  # allowed when asked


def test_forward_returns_one_named_type():
    model = GPT(tiny()).eval()
    idx = torch.randint(0, 50, (2, 6))
    plain, scored, inspected = model(idx), model(idx, idx), model(idx, return_attention=True)
    for out in (plain, scored, inspected):
        assert isinstance(out, GPTOutput) and out.logits.shape == (2, 6, 50)
    assert plain.loss is None and plain.attention is None and scored.attention is None
    assert scored.loss.dim() == 0
    assert len(inspected.attention) == model.config.n_layer and inspected.attention[0].shape == (2, 2, 6, 6)
    torch.testing.assert_close(inspected.logits, plain.logits)


def test_the_flops_formulas_have_one_home():
    assert cost.training_flops_per_token is training_flops_per_token
    assert cost.forward_flops_per_token is forward_flops_per_token
    model = GPT(tiny())
    assert cost.matmul_params(model.config) == model.matmul_parameters()
    assert training_flops_per_token(10, 0, 1, 2, 3) == 40 + 12 * 2 * 3       # frozen weights: no weight gradients
    assert 3 * forward_flops_per_token(10, 1, 2, 3) == training_flops_per_token(10, 10, 1, 2, 3)
