"""Exporting a course model and its tokenizer to the Hugging Face `transformers` format.

The folder written by ``export_model`` (or ``export_checkpoint``) loads offline with

    AutoModelForCausalLM.from_pretrained(folder)   # weights: model.safetensors, config.json
    AutoTokenizer.from_pretrained(folder)          # tokenizer.json (a `tokenizers` JSON) + tokenizer_config.json

and computes the same function as our GPT: the export is refused (ExportError) unless the reloaded
model's logits match ours and the reloaded tokenizer gives our ids on a probe of English, Chinese and
code. A checkpoint that cannot be expressed exactly is refused with a message naming what does not map,
never written approximately.

Which `transformers` architecture expresses which of our models
-------------------------------------------------------------
Ours is a pre-norm Transformer: LayerNorm (eps 1e-5, bias optional), one fused q/k/v projection,
attention scaled by 1/sqrt(D), an MLP C -> 4C -> GELU -> C with the *exact* (erf) GELU, a final
LayerNorm and a head that may share the embedding matrix.

* position="learned": **GPT-2** (``GPT2LMHeadModel``). Its blocks are the same pre-norm blocks. Three
  settings must be set, not left at GPT-2's defaults: ``activation_function="gelu"`` (GPT-2's default
  "gelu_new" is the tanh approximation, up to ~1e-3 away), no extra attention scaling by layer, and no
  token/pad ids from GPT-2's own vocabulary. GPT-2 stores its Linear layers as ``Conv1D`` with the
  weight transposed (in, out), and always has biases: a model trained with bias=False gets zero
  biases, which adds exactly nothing. Its q/k/v layout is ours: [all q | all k | all v], heads side
  by side inside each.
* position="sinusoidal" and "none": also **GPT-2**, exactly. GPT-2 adds a position table ``wpe`` to
  the token embeddings; we store our fixed sinusoidal table there (zeros for "none"). Our sinusoidal
  model multiplies the embeddings by sqrt(C) before adding the table, so ``wte`` holds the embedding
  matrix times sqrt(C) and the head keeps the unscaled matrix (``tie_word_embeddings=False``). The
  function is identical; the difference is in training: in `transformers` the table is an ordinary
  parameter, so fine-tuning there would change it, while ours stays fixed.
* position="rope": **GPT-NeoX** (``GPTNeoXForCausalLM``) with ``use_parallel_residual=False`` (then
  its block is x + attn(ln1(x)), then x + mlp(ln2(x)), our order), rotary on the whole head
  (``partial_rotary_factor=1.0``), base 10000, LayerNorm and an exact-GELU MLP. Its rotary layout is
  ours: dimension i pairs with i + D/2 ("rotate half"). Llama cannot express this model: it uses
  RMSNorm and a gated SiLU MLP (SwiGLU), and there is no exact rewrite of LayerNorm + GELU in those.
  Two differences are handled here: GPT-NeoX interleaves the fused projection by head
  ([q_h | k_h | v_h] for each head h) where we put all queries first, so the rows are permuted; and
  its MLP always has biases (zeros when ours has none). Past block_size tokens our model refuses
  while GPT-NeoX keeps rotating (untrained territory): keep prompts within block_size there too.

Tokenizers: "fast_bpe" is already a `tokenizers` object and is written as it is. The from-scratch
"bpe" is rewritten as the library's byte-level BPE (the same pre-tokenisation; each byte spelled with
its stand-in character, see ``tokenizer.byte_level_alphabet``; merges in learning order, which the
library applies by rank, as ``ByteBPETokenizer._encode_word`` does). The "char" tokenizer becomes a
word-level model over single characters whose unknown token decodes to U+FFFD as ours does.
"""

from __future__ import annotations

import copy
import inspect
import json
import math
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from roots_course.store import integrity
from roots_course.core.attention import rope_frequencies
from roots_course.errors import ExportError
from roots_course.core.model import GPT, GPTConfig
from roots_course.core.tokenizer import CharTokenizer, FastBPETokenizer, Tokenizer, byte_level_alphabet

EXPORT_FILE = "roots_export.json"  # what was exported, from where, and how closely it was checked
ARCHITECTURES = {"learned": "gpt2", "sinusoidal": "gpt2", "none": "gpt2", "rope": "gpt_neox"}
# Every GPTConfig field the mapping below knows how to carry over. A field added to GPTConfig later
# is refused until this module learns what it means.
KNOWN_FIELDS = {"vocab_size", "block_size", "n_layer", "n_head", "n_embd", "dropout", "bias", "position",
                "tie_weights", "fused_attention"}
TOLERANCE = 1e-4  # largest |logit difference| accepted, times max(1, largest |logit|)
PROBE_TEXTS = (
    "The cat sat on the mat. It didn't move; we'll see.",
    "语言模型计算一个句子出现的概率。猫坐在垫子上。",
    "def area(r: float) -> float:\n\treturn 3.14159 * r ** 2  # πr²\n\n\n",
    "  spaces,\u00a0NBSP and emoji 🙂 at 10:45 ½",
)


@dataclass
class ExportReport:
    """What ``export_model`` wrote (also saved as roots_export.json in the folder)."""

    folder: str
    architecture: str               # "gpt2" or "gpt_neox"
    tokenizer: str                  # our tokenizer kind
    max_logit_difference: float     # max |logit difference|, reloaded model vs ours, on the probe batch
    max_abs_logit: float            # the largest |logit| of ours there, for scale
    notes: list[str] = field(default_factory=list)
    source: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------
# The model
# ---------------------------------------------------------------------------------------------


def architecture_for(config: GPTConfig) -> str:
    """The `transformers` model type that expresses `config` exactly, or ExportError naming why not."""
    unknown = sorted(set(config.to_dict()) - KNOWN_FIELDS)
    if unknown:
        raise ExportError(f"GPTConfig field(s) {unknown} have no known equivalent in `transformers`; "
                          "the export would silently drop them, so it is refused")
    if config.position not in ARCHITECTURES:
        raise ExportError(f"position={config.position!r} has no exact `transformers` equivalent "
                          f"(exportable: {sorted(ARCHITECTURES)})")
    return ARCHITECTURES[config.position]


def transformers_config(model: GPT) -> Any:
    """The `transformers` configuration (GPT2Config or GPTNeoXConfig) of an exact copy of `model`."""
    from transformers import GPT2Config, GPTNeoXConfig

    c = model.config
    eps = model.ln_f.eps
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.LayerNorm) and module.eps != eps:
            raise ExportError(f"LayerNorm {name!r} has eps={module.eps}, ln_f has {eps}: one value is needed")
    no_ids = dict(bos_token_id=None, eos_token_id=None, pad_token_id=None)  # our tokenizers have none
    if architecture_for(c) == "gpt2":
        return GPT2Config(
            vocab_size=c.vocab_size, n_positions=c.block_size, n_embd=c.n_embd, n_layer=c.n_layer,
            n_head=c.n_head, n_inner=4 * c.n_embd, activation_function="gelu",  # erf GELU, like F.gelu
            resid_pdrop=c.dropout, embd_pdrop=c.dropout, attn_pdrop=c.dropout, layer_norm_epsilon=eps,
            scale_attn_weights=True, scale_attn_by_inverse_layer_idx=False, reorder_and_upcast_attn=False,
            tie_word_embeddings=c.tie_weights and c.position != "sinusoidal", **no_ids)
    base = inspect.signature(rope_frequencies).parameters["base"].default  # the base our attention uses
    return GPTNeoXConfig(
        vocab_size=c.vocab_size, hidden_size=c.n_embd, num_hidden_layers=c.n_layer,
        num_attention_heads=c.n_head, intermediate_size=4 * c.n_embd, hidden_act="gelu",
        attention_dropout=c.dropout, hidden_dropout=c.dropout, max_position_embeddings=c.block_size,
        layer_norm_eps=eps, use_parallel_residual=False, attention_bias=c.bias,
        rope_parameters={"rope_type": "default", "rope_theta": float(base), "partial_rotary_factor": 1.0},
        tie_word_embeddings=c.tie_weights, **no_ids)


def transformers_state_dict(model: GPT) -> dict[str, Tensor]:
    """Our weights under `transformers`' names and layouts (float32, CPU).

    Raises ExportError naming any tensor of ours that the mapping does not use (for instance an
    adapter added to the model), since dropping it would change the function.
    """
    c = model.config
    arch = architecture_for(c)
    ours = {k: v.detach().to("cpu", torch.float32) for k, v in model.state_dict().items()}
    with torch.device("meta"):  # the tensor names of a plain GPT of this configuration, at no cost
        plain = set(GPT(c).state_dict())
    extra, missing = sorted(set(ours) - plain), sorted(plain - set(ours))
    if extra or missing:
        hint = (" (LoRA adapters? merge them into the weights first: roots_course.lora.merge_lora)"
                if any(k.endswith((".A", ".B", ".base.weight")) for k in extra) else "")
        raise ExportError(f"the model is not a plain GPT of its configuration: extra tensor(s) {extra[:6]}, "
                          f"missing {missing[:6]}{hint}; the {arch} architecture has no place for them, "
                          "so the export is refused")
    used: set[str] = set()

    def take(name: str) -> Tensor:
        used.add(name)
        return ours[name]

    def bias(name: str, size: int) -> Tensor:  # a missing bias is a zero bias: exactly the same output
        return take(name) if name in ours else torch.zeros(size)

    C, H, D = c.n_embd, c.n_head, c.head_dim
    emb = take("tok_emb.weight")
    head = take("lm_head.weight")
    out: dict[str, Tensor] = {}
    if arch == "gpt2":
        norm_f = "transformer.ln_f"
        if c.position == "learned":
            out["transformer.wpe.weight"] = take("pos_emb.weight")
        elif c.position == "sinusoidal":
            out["transformer.wpe.weight"] = model.pos_table.detach().to("cpu", torch.float32)
            emb = emb * math.sqrt(C)  # ours scales the looked-up rows by sqrt(C); the head does not
        else:  # "none": a table of zeros adds nothing
            out["transformer.wpe.weight"] = torch.zeros(c.block_size, C)
        out["transformer.wte.weight"] = emb
        for i in range(c.n_layer):
            p, h = f"blocks.{i}.", f"transformer.h.{i}."
            for ln_ours, ln_hf in (("ln1", "ln_1"), ("ln2", "ln_2")):
                out[h + ln_hf + ".weight"] = take(p + ln_ours + ".weight")
                out[h + ln_hf + ".bias"] = bias(p + ln_ours + ".bias", C)
            # Conv1D computes x @ W + b with W of shape (in, out): the transpose of nn.Linear's weight.
            for ours_name, hf_name, width in (("attn.qkv", "attn.c_attn", 3 * C), ("attn.proj", "attn.c_proj", C),
                                              ("mlp.fc", "mlp.c_fc", 4 * C), ("mlp.proj", "mlp.c_proj", C)):
                out[h + hf_name + ".weight"] = take(p + ours_name + ".weight").t().contiguous()
                out[h + hf_name + ".bias"] = bias(p + ours_name + ".bias", width)
    else:  # gpt_neox
        norm_f = "gpt_neox.final_layer_norm"
        out["gpt_neox.embed_in.weight"] = emb

        def by_head(t: Tensor) -> Tensor:  # rows [q | k | v] (3, H, D, ...) -> [q_h | k_h | v_h] per head
            return t.reshape(3, H, D, *t.shape[1:]).transpose(0, 1).reshape(3 * C, *t.shape[1:]).contiguous()

        for i in range(c.n_layer):
            p, h = f"blocks.{i}.", f"gpt_neox.layers.{i}."
            for ln_ours, ln_hf in (("ln1", "input_layernorm"), ("ln2", "post_attention_layernorm")):
                out[h + ln_hf + ".weight"] = take(p + ln_ours + ".weight")
                out[h + ln_hf + ".bias"] = bias(p + ln_ours + ".bias", C)
            out[h + "attention.query_key_value.weight"] = by_head(take(p + "attn.qkv.weight"))
            out[h + "attention.dense.weight"] = take(p + "attn.proj.weight")
            if c.bias:  # attention_bias=False gives GPT-NeoX no attention biases at all
                out[h + "attention.query_key_value.bias"] = by_head(take(p + "attn.qkv.bias"))
                out[h + "attention.dense.bias"] = take(p + "attn.proj.bias")
            for ours_name, hf_name, width in (("mlp.fc", "mlp.dense_h_to_4h", 4 * C),
                                              ("mlp.proj", "mlp.dense_4h_to_h", C)):
                out[h + hf_name + ".weight"] = take(p + ours_name + ".weight")
                out[h + hf_name + ".bias"] = bias(p + ours_name + ".bias", width)
    out[norm_f + ".weight"] = take("ln_f.weight")
    out[norm_f + ".bias"] = bias("ln_f.bias", C)
    out["lm_head.weight"] = head
    left = sorted(set(ours) - used)
    if left:
        raise ExportError(f"tensor(s) {left} of the model have no place in the {arch} architecture; "
                          "exporting without them would change the model, so the export is refused")
    return out


def to_transformers(model: GPT) -> Any:
    """An in-memory `transformers` model (eval mode, CPU, float32) holding `model`'s weights.

    Use ``export_model`` to write a folder; this function does not check the logits.
    """
    from transformers import AutoModelForCausalLM

    if not isinstance(model, GPT):
        raise ExportError(f"only roots_course.core.model.GPT can be exported, got {type(model).__name__}")
    hf_config = transformers_config(model)
    weights = transformers_state_dict(model)
    with torch.random.fork_rng(devices=[]):  # its random initialisation must not move the caller's seed
        hf = AutoModelForCausalLM.from_config(hf_config, dtype=torch.float32)
    missing, unexpected = hf.load_state_dict(weights, strict=False)  # copies into hf's own tensors
    if hf_config.tie_word_embeddings:  # one shared matrix: lm_head.weight is wte/embed_in
        missing = [k for k in missing if k != "lm_head.weight"]
    if missing or unexpected:
        raise ExportError(f"the {hf_config.model_type} model expects other tensors: missing {sorted(missing)}, "
                          f"unexpected {sorted(unexpected)}")
    return hf.eval()


def compare_logits(model: GPT, hf_model: Any, ids: Tensor) -> tuple[float, float]:
    """(max |our logits - `transformers` logits|, max |our logits|) on ids (B, T).

    Both run in eval mode on the CPU in float32; ours is a copy, so `model` stays where it is.
    """
    ours = copy.deepcopy(model).to("cpu", torch.float32).eval()
    with torch.inference_mode():
        a = ours(ids.cpu())[0]  # (B, T, V)
        b = hf_model.to("cpu").eval()(input_ids=ids.cpu()).logits.float()  # (B, T, V)
    return float((a - b).abs().max()), float(a.abs().max())


def probe_ids(config: GPTConfig, batch: int = 2, seed: int = 0) -> Tensor:
    """A fixed batch (batch, min(block_size, 48)) of random token ids for checking an export."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, config.vocab_size, (batch, min(config.block_size, 48)), generator=g)


# ---------------------------------------------------------------------------------------------
# The tokenizer
# ---------------------------------------------------------------------------------------------


def library_tokenizer(tokenizer: Tokenizer) -> Any:
    """Our tokenizer as a `tokenizers.Tokenizer` that gives the same ids (checked by export_model)."""
    from tokenizers import Regex, decoders, models, pre_tokenizers
    from tokenizers import Tokenizer as LibTokenizer

    if isinstance(tokenizer, FastBPETokenizer):
        return LibTokenizer.from_str(tokenizer._tok.to_str())  # already one: a copy of it
    if isinstance(tokenizer, CharTokenizer):
        vocab = {ch: i for i, ch in enumerate(tokenizer.chars)}
        vocab[tokenizer.UNK_TOKEN] = tokenizer.unk_id
        tok = LibTokenizer(models.WordLevel(vocab=vocab, unk_token=tokenizer.UNK_TOKEN))
        tok.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")  # every character alone
        # Decoding: the unknown token reads as U+FFFD (as ours), and the pieces join without spaces.
        tok.decoder = decoders.Sequence([decoders.Replace(tokenizer.UNK_TOKEN, tokenizer.UNK_TEXT), decoders.Fuse()])
        return tok
    from roots_course.core.bpe import ByteBPETokenizer

    if isinstance(tokenizer, ByteBPETokenizer):
        alphabet = byte_level_alphabet()

        def spell(b: bytes) -> str:
            return "".join(alphabet[x] for x in b)

        strings = [spell(tokenizer.token_bytes(i)) for i in range(tokenizer.vocab_size)]
        vocab: dict[str, int] = {}
        for i, s in enumerate(strings):
            if s in vocab:
                raise ExportError(f"the bpe tokenizer has two ids ({vocab[s]} and {i}) for the bytes "
                                  f"{tokenizer.token_bytes(i)!r}; a `tokenizers` vocabulary holds each string once")
            vocab[s] = i
        merges = [(strings[a], strings[b]) for a, b in tokenizer.merges]
        tok = LibTokenizer(models.BPE(vocab=vocab, merges=merges))
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
        tok.decoder = decoders.ByteLevel()
        return tok
    raise ExportError(f"no `tokenizers` equivalent is known for a {type(tokenizer).__name__}")


def to_transformers_tokenizer(tokenizer: Tokenizer, model_max_length: int) -> Any:
    """A PreTrainedTokenizerFast around ``library_tokenizer(tokenizer)``: no special tokens, no
    clean-up of spaces when decoding (ours has none), `model_max_length` = the model's block_size."""
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(tokenizer_object=library_tokenizer(tokenizer), model_max_length=model_max_length,
                                   clean_up_tokenization_spaces=False)


def tokenizer_mismatches(tokenizer: Tokenizer, hf_tokenizer: Any, texts: tuple[str, ...] = PROBE_TEXTS) -> list[str]:
    """The probe texts on which the two tokenizers give different ids or decode differently."""
    problems = []
    for text in texts:
        ours, theirs = tokenizer.encode(text), hf_tokenizer(text)["input_ids"]
        if ours != theirs:
            problems.append(f"{text!r}: ids {ours[:12]}... vs {theirs[:12]}...")
        elif tokenizer.decode(ours) != hf_tokenizer.decode(theirs):
            problems.append(f"{text!r}: decodes to {tokenizer.decode(ours)!r} vs {hf_tokenizer.decode(theirs)!r}")
    return problems


# ---------------------------------------------------------------------------------------------
# Writing and checking a folder
# ---------------------------------------------------------------------------------------------


@contextmanager
def quiet_transformers() -> Iterator[None]:
    """No progress bars and only errors from `transformers` inside the block (restored after):
    the export's own save-and-reload check would otherwise print bars and length warnings."""
    from transformers.utils import logging as hf_logging

    level, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        if bars:
            hf_logging.enable_progress_bar()


def export_model(model: GPT, tokenizer: Tokenizer, out: str | os.PathLike, *,
                 source: dict[str, Any] | None = None) -> ExportReport:
    """Write `model` and `tokenizer` to folder `out` in the `transformers` format, then reload the
    folder with AutoModelForCausalLM / AutoTokenizer and check it: logits within TOLERANCE of ours on a
    probe batch, the same ids on PROBE_TEXTS. Any failure raises ExportError and leaves `out` as it
    was. The folder is written beside `out` and renamed into place (a folder of an earlier export is
    replaced; any other non-empty folder is refused)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = Path(out)
    if tokenizer.vocab_size > model.config.vocab_size:
        raise ExportError(f"the tokenizer has {tokenizer.vocab_size} ids but the model only "
                          f"{model.config.vocab_size} embeddings: they do not belong together")
    if out.exists() and any(out.iterdir()) and not (out / EXPORT_FILE).is_file():
        raise ExportError(f"{out} exists and is not an earlier export; refusing to replace it")
    hf = to_transformers(model)
    hf_tokenizer = to_transformers_tokenizer(tokenizer, model.config.block_size)

    tmp = out.with_name(f".{out.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        with quiet_transformers():
            hf.save_pretrained(tmp)
            hf_tokenizer.save_pretrained(tmp)
            # The check that matters: what a user will load, not what we hold in memory.
            reloaded = AutoModelForCausalLM.from_pretrained(tmp, dtype=torch.float32)
            hf_reloaded_tokenizer = AutoTokenizer.from_pretrained(tmp)
        diff, largest = compare_logits(model, reloaded, probe_ids(model.config))
        scale = max(1.0, largest)
        if not diff <= TOLERANCE * scale:  # also catches NaN
            raise ExportError(f"the exported {hf.config.model_type} model's logits differ from ours by up to "
                              f"{diff:.3g} (allowed {TOLERANCE * scale:.3g}): the model does not map exactly")
        with quiet_transformers():
            problems = tokenizer_mismatches(tokenizer, hf_reloaded_tokenizer)
        if problems:
            raise ExportError("the exported tokenizer does not reproduce ours: " + "; ".join(problems))
        report = ExportReport(str(out), hf.config.model_type, tokenizer.name, diff, largest,
                              _notes(model.config), dict(source or {}))
        (tmp / EXPORT_FILE).write_text(json.dumps(asdict(report), indent=2, ensure_ascii=False) + "\n",
                                       encoding="utf-8")
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = out.with_name(f".{out.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    with integrity.writing(out):          # inside a profile's artifacts, the manifest's checksums follow
        if out.exists():
            out.rename(old)
        tmp.rename(out)
    shutil.rmtree(old, ignore_errors=True)
    return report


def _notes(c: GPTConfig) -> list[str]:
    notes = []
    if c.position == "sinusoidal":
        notes.append("the fixed sinusoidal table is GPT-2's wpe and the embeddings are pre-scaled by "
                     "sqrt(n_embd); the head is untied. Identical outputs; fine-tuning in transformers "
                     "would train the table")
    if c.position == "none":
        notes.append("GPT-2's position table wpe is all zeros; fine-tuning in transformers would train it")
    if c.position == "rope":
        notes.append("past block_size tokens GPT-NeoX keeps rotating where ours refuses")
    if not c.bias:
        notes.append("the model has no biases; the exported ones are zeros")
    return notes


def export_checkpoint(checkpoint: str | os.PathLike, out: str | os.PathLike,
                      tokenizer_path: str | os.PathLike | None = None) -> ExportReport:
    """Export a checkpoint folder written by training. The tokenizer defaults to the run's
    tokenizer.json two folders above the checkpoint (artifacts/<profile>/checkpoints/<name>)."""
    from roots_course.core.checkpoint import load_checkpoint
    from roots_course.core.tokenizer import load_tokenizer

    checkpoint = Path(checkpoint)
    model, _, state = load_checkpoint(checkpoint, "cpu")
    tokenizer_path = Path(tokenizer_path) if tokenizer_path else checkpoint.parent.parent / "tokenizer.json"
    tokenizer = load_tokenizer(tokenizer_path)
    return export_model(model, tokenizer, out, source={"checkpoint": str(checkpoint.resolve()),
                                                       "tokenizer": str(tokenizer_path.resolve()),
                                                       "step": state.get("step")})
