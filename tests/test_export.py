"""Tests of roots_course.interop (export, model_mapping, tokenizer_mapping): the exported folder loads with
transformers' Auto classes and computes what our model computes (logits, greedy tokens, tokenizer ids), and what
cannot be exported is refused."""

from __future__ import annotations

import json
import os
import pydoc_data.topics
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from roots_course.core.bpe import ByteBPETokenizer
from roots_course.core.checkpoint import save_checkpoint
from roots_course.course.config import load_profile
from roots_course.errors import ExportError
from roots_course.interop.export import EXPORT_FILE, export_checkpoint, export_model
from roots_course.interop.model_mapping import architecture_for
from roots_course.core.generate import generate
from roots_course.core.lora import apply_lora, merge_lora
from roots_course.core.model import GPT, MLP, GPTConfig
from roots_course.core.tokenizer_kinds import train_tokenizer

transformers = pytest.importorskip("transformers")
from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: E402

DOCS = "\n\n".join(pydoc_data.topics.topics[k] for k in sorted(pydoc_data.topics.topics))
CHINESE = "语言模型是指计算一个句子概率的模型。猫坐在垫子上。我们今天学习语言模型的表示方法。\n"
CODE = "def area(r: float) -> float:\n    return 3.14159 * r ** 2  # circle\n\nfor i in range(10):\n\tprint(i)\n"
TRAIN_TEXT = DOCS[:30_000] + CHINESE * 20 + CODE * 20
REAL_TEXT = DOCS[60_000:66_000]  # text the tokenizers did not train on
SAMPLES = {"english": "The cat sat on the mat. It didn't move; we'll see what they're doing.",
           "chinese": "猫坐在垫子上。语言模型计算句子的概率，例如“我爱你”。",
           "code": CODE + "x = {'a': [1, 2.5e-3], \"b\": None}  # 注释\n"}


@pytest.fixture(scope="module")
def tokenizers():
    return {kind: train_tokenizer(kind, TRAIN_TEXT, 320) for kind in ("char", "bpe", "fast_bpe")}


def build(config: GPTConfig, seed: int = 0) -> GPT:
    """A random GPT whose logits are far from zero (a fresh init gives logits of about 0.1, where a
    tolerance of 1e-4 would prove little): every weight gets noise of standard deviation 0.3."""
    torch.manual_seed(seed)
    model = GPT(config)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return model.eval()


def profile_config(profile: str, vocab_size: int, **overrides) -> GPTConfig:
    """The profile's model settings (layers, heads, block size, dropout, positions...) with a tiny width."""
    settings = dict(load_profile(profile).model)
    settings["n_embd"] = 8 * settings["n_head"]
    settings.update(overrides)
    return GPTConfig(vocab_size=vocab_size, **settings).validate()


def text_batch(tokenizer, block_size: int, rows: int = 2) -> torch.Tensor:
    ids = tokenizer.encode(REAL_TEXT)
    assert len(ids) >= rows * block_size
    return torch.tensor(ids[: rows * block_size]).view(rows, block_size)  # (rows, block_size)


@dataclass
class Case:
    profile: str
    overrides: dict
    expected: str  # the transformers class


CASES = {
    "smoke": Case("smoke", {}, "GPT2LMHeadModel"),
    "cpu": Case("cpu", {}, "GPT2LMHeadModel"),
    "gpu": Case("gpu", {}, "GPT2LMHeadModel"),
    "smoke-rope": Case("smoke", {"position": "rope"}, "GPTNeoXForCausalLM"),
    "rope-bias-untied": Case("smoke", {"position": "rope", "bias": True, "tie_weights": False}, "GPTNeoXForCausalLM"),
    "learned-bias-untied": Case("smoke", {"bias": True, "tie_weights": False}, "GPT2LMHeadModel"),
    "sinusoidal": Case("smoke", {"position": "sinusoidal"}, "GPT2LMHeadModel"),
    "none": Case("smoke", {"position": "none"}, "GPT2LMHeadModel"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_exported_model_gives_our_logits_on_real_text(name, tokenizers, tmp_path):
    case = CASES[name]
    tok = tokenizers["fast_bpe"]
    model = build(profile_config(case.profile, tok.vocab_size, **case.overrides))
    report = export_model(model, tok, tmp_path / "hf")
    assert (tmp_path / "hf" / "model.safetensors").is_file() and (tmp_path / "hf" / "tokenizer.json").is_file()

    hf = AutoModelForCausalLM.from_pretrained(tmp_path / "hf")
    assert type(hf).__name__ == case.expected
    assert hf.config.model_type == report.architecture
    ids = text_batch(tok, model.config.block_size)  # (2, block_size): the whole context window
    with torch.inference_mode():
        ours = model(ids).logits
        theirs = hf(input_ids=ids).logits
    assert ours.abs().max() > 2.0  # logits large enough for the comparison to mean something
    assert (ours - theirs).abs().max() < 1e-4
    assert report.max_logit_difference < 1e-4
    if model.config.dropout:  # the gpu profile trains with dropout: it travels with the model
        assert hf.config.resid_pdrop == hf.config.attn_pdrop == model.config.dropout


def test_the_logit_check_can_fail(tokenizers, tmp_path, monkeypatch):
    """GPT-2's default tanh-approximate GELU is close to ours but not equal: with it, the export's own
    check must refuse, and leave no folder behind."""
    import roots_course.interop.model_mapping as model_mapping

    original = model_mapping.transformers_config

    def with_tanh_gelu(model):
        config = original(model)
        config.activation_function = "gelu_new"
        return config

    monkeypatch.setattr(model_mapping, "transformers_config", with_tanh_gelu)
    tok = tokenizers["fast_bpe"]
    with pytest.raises(ExportError, match="logits differ"):
        export_model(build(profile_config("smoke", tok.vocab_size)), tok, tmp_path / "hf")
    assert not (tmp_path / "hf").exists() and not (tmp_path / ".hf.tmp").exists()


@pytest.mark.parametrize("position, kind", [("learned", "fast_bpe"), ("rope", "fast_bpe"), ("learned", "char"),
                                            ("rope", "bpe")])
def test_greedy_generation_gives_the_same_tokens(position, kind, tokenizers, tmp_path):
    tok = tokenizers[kind]
    model = build(profile_config("smoke", tok.vocab_size, position=position), seed=1)
    export_model(model, tok, tmp_path / "hf")
    hf = AutoModelForCausalLM.from_pretrained(tmp_path / "hf")
    prompt = tok.encode("The cat sat on the")
    ours = generate(model, prompt, max_new_tokens=30, greedy=True)
    out = hf.generate(torch.tensor([prompt]), attention_mask=torch.ones(1, len(prompt), dtype=torch.long),
                      do_sample=False, max_new_tokens=30)
    assert out[0, len(prompt):].tolist() == ours
    assert len(set(ours)) > 3  # not a degenerate repetition of one token


@pytest.mark.parametrize("kind", ["fast_bpe", "bpe", "char"])
def test_exported_tokenizer_gives_our_ids(kind, tokenizers, tmp_path):
    tok = tokenizers[kind]
    export_model(build(profile_config("smoke", tok.vocab_size)), tok, tmp_path / "hf")
    hf_tok = AutoTokenizer.from_pretrained(tmp_path / "hf")
    assert len(hf_tok) == tok.vocab_size
    for name, text in {**SAMPLES, "unseen": "emoji 🙂 and ☃, \u00a0NBSP", "empty": ""}.items():
        ids = tok.encode(text)
        assert hf_tok(text)["input_ids"] == ids, name
        assert hf_tok.decode(ids) == tok.decode(ids), name
    assert hf_tok.model_max_length == 64  # the smoke block size


def test_unmerged_lora_is_refused_and_merged_lora_exported(tokenizers, tmp_path):
    tok = tokenizers["fast_bpe"]
    model = build(profile_config("smoke", tok.vocab_size))
    apply_lora(model, r=2, alpha=4.0)
    with pytest.raises(ExportError, match="merge_lora"):
        export_model(model, tok, tmp_path / "hf")
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(".B"):
                p.normal_(0.0, 0.5)  # a trained adapter: the merged weights differ from the base ones
    before = model(text_batch(tok, 64)).logits
    merge_lora(model)
    report = export_model(model, tok, tmp_path / "hf")
    hf = AutoModelForCausalLM.from_pretrained(tmp_path / "hf")
    assert report.max_logit_difference < 1e-4
    assert (hf(input_ids=text_batch(tok, 64)).logits - before).abs().max() < 1e-4


class TanhMLP(MLP):
    def forward(self, x):
        return self.drop(self.proj(F.gelu(self.fc(x), approximate="tanh")))


def test_a_model_changed_beyond_its_configuration_is_refused(tokenizers, tmp_path):
    """Same tensors, different function: the configuration says "GELU" but the code is another one."""
    tok = tokenizers["fast_bpe"]
    model = build(profile_config("smoke", tok.vocab_size, position="rope"))
    model.blocks[1].mlp.__class__ = TanhMLP
    with pytest.raises(ExportError, match="does not map exactly"):
        export_model(model, tok, tmp_path / "hf")
    assert not (tmp_path / "hf").exists()


def test_an_unknown_configuration_field_is_refused():
    @dataclass
    class RMSConfig(GPTConfig):
        norm: str = "rms"

    with pytest.raises(ExportError, match="norm"):
        architecture_for(RMSConfig(vocab_size=10, block_size=8, n_layer=1, n_head=1, n_embd=8))
    for position, arch in (("learned", "gpt2"), ("sinusoidal", "gpt2"), ("none", "gpt2"), ("rope", "gpt_neox")):
        assert architecture_for(GPTConfig(10, 8, 1, 1, 8, position=position)) == arch


def test_tokenizers_that_do_not_fit_are_refused(tokenizers, tmp_path):
    tok = tokenizers["fast_bpe"]
    small = build(profile_config("smoke", 300))
    with pytest.raises(ExportError, match="320 ids but the model only 300"):
        export_model(small, tok, tmp_path / "a")
    twice = ByteBPETokenizer([(97, 97), (97, 97)])  # two ids for b"aa": no `tokenizers` vocabulary can say that
    with pytest.raises(ExportError, match="two ids"):
        export_model(build(profile_config("smoke", 258)), twice, tmp_path / "b")


def test_a_folder_that_is_not_an_export_is_not_replaced(tokenizers, tmp_path):
    tok = tokenizers["fast_bpe"]
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(ExportError, match="not an earlier export"):
        export_model(build(profile_config("smoke", tok.vocab_size)), tok, tmp_path / "mine")
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"
    export_model(build(profile_config("smoke", tok.vocab_size)), tok, tmp_path / "new")
    report = export_model(build(profile_config("smoke", tok.vocab_size), seed=3), tok, tmp_path / "new")  # again
    assert json.loads((tmp_path / "new" / EXPORT_FILE).read_text())["max_logit_difference"] == \
        report.max_logit_difference


def _write_checkpoint(tokenizers, tmp_path, vocab_size: int | None = None) -> Path:
    """A run folder as training writes it: run/tokenizer.json and run/checkpoints/pretrained/."""
    tok = tokenizers["fast_bpe"]
    model = build(profile_config("smoke", vocab_size or tok.vocab_size))
    tok.save(tmp_path / "run" / "tokenizer.json")
    optimizer = torch.optim.AdamW(model.parameters())
    return save_checkpoint(tmp_path / "run" / "checkpoints" / "pretrained", model, optimizer,
                           {"step": 7, "history": []})


def test_export_checkpoint_finds_the_runs_tokenizer(tokenizers, tmp_path):
    checkpoint = _write_checkpoint(tokenizers, tmp_path)
    report = export_checkpoint(checkpoint, tmp_path / "hf")
    assert report.source["step"] == 7 and report.tokenizer == "fast_bpe"
    assert os.environ.get("HF_HUB_OFFLINE") == "1"  # set by roots_course: loading never asks a hub
    assert AutoTokenizer.from_pretrained(tmp_path / "hf")("The cat")["input_ids"] == \
        tokenizers["fast_bpe"].encode("The cat")


def test_cli_export(tokenizers, tmp_path, capsys):
    from roots_course.__main__ import main

    checkpoint = _write_checkpoint(tokenizers, tmp_path)
    assert main(["export", "--checkpoint", str(checkpoint), "--out", str(tmp_path / "hf")]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["architecture"] == "gpt2" and report["max_logit_difference"] < 1e-4
    assert AutoModelForCausalLM.from_pretrained(tmp_path / "hf").config.n_positions == 64


def test_cli_export_refusal_names_the_problem(tokenizers, tmp_path, capsys):
    from roots_course.__main__ import main

    checkpoint = _write_checkpoint(tokenizers, tmp_path, vocab_size=300)  # tokenizer has 320 ids
    assert main(["export", "--checkpoint", str(checkpoint), "--out", str(tmp_path / "hf")]) == 2
    assert "320 ids but the model only 300" in capsys.readouterr().err
    assert not (tmp_path / "hf").exists()


# ---- the appendix's exercises ----------------------------------------------------------------------


def test_exercise_references_agree_with_the_library(tokenizers):
    from roots_course.course.exercises import check
    from roots_course.interop.model_mapping import transformers_state_dict
    from roots_course.interop.exercises import EXERCISES, gpt2_mlp, log_prob_from_logits, neox_qkv_rows
    from roots_course.core.generate import sequence_log_prob

    for exercise in EXERCISES.values():
        assert check(exercise, exercise.reference).passed
    tok = tokenizers["fast_bpe"]
    model = build(profile_config("smoke", tok.vocab_size, position="rope", bias=True))
    weights = transformers_state_dict(model)
    assert torch.equal(neox_qkv_rows(model.blocks[0].attn.qkv.weight.detach(), model.config.n_head),
                       weights["gpt_neox.layers.0.attention.query_key_value.weight"])
    gpt2 = build(profile_config("smoke", tok.vocab_size, bias=True))
    w = transformers_state_dict(gpt2)
    x = torch.randn(5, gpt2.config.n_embd)
    p = "transformer.h.1.mlp."
    with torch.inference_mode():
        expected = gpt2.blocks[1].mlp(x)
    got = gpt2_mlp(x, w[p + "c_fc.weight"], w[p + "c_fc.bias"], w[p + "c_proj.weight"], w[p + "c_proj.bias"])
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    ids = torch.tensor(tok.encode("\nThe cat sat on the mat"))
    with torch.inference_mode():
        logits = gpt2(ids[None])[0][0]
    assert abs(log_prob_from_logits(logits, ids) - sequence_log_prob(gpt2, ids)) < 1e-3


def test_exercise_checks_catch_typical_mistakes():
    from roots_course.course.exercises import check
    from roots_course.interop.exercises import EXERCISES

    def tanh_mlp(x, fc_w, fc_b, proj_w, proj_b):
        return F.gelu(x @ fc_w + fc_b, approximate="tanh") @ proj_w + proj_b

    def heads_first(weight, n_head):  # reads the rows per head, not per q/k/v: the wrong axis order
        return weight.reshape(n_head, 3, -1, *weight.shape[1:]).transpose(0, 1).reshape(weight.shape)

    def off_by_one(logits, ids, start=1):
        logp = torch.log_softmax(logits, dim=-1)
        return float(logp[start:].gather(1, ids[start:, None]).sum())

    assert not check(EXERCISES["gpt2_mlp"], tanh_mlp).passed
    assert not check(EXERCISES["neox_qkv_rows"], heads_first).passed
    assert not check(EXERCISES["log_prob_from_logits"], off_by_one).passed


def test_export_leaves_the_global_random_state_alone(tokenizers, tmp_path):
    tok = tokenizers["fast_bpe"]
    model = build(profile_config("smoke", tok.vocab_size))
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    export_model(model, tok, tmp_path / "hf")
    assert torch.equal(torch.rand(3), expected)
