"""Our GPT as a Hugging Face `transformers` model: which architecture expresses which of our models,
the configuration, and the weights rearranged into its layout.

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
"""

from __future__ import annotations

import copy
import inspect
import math
from typing import Any

import torch
from torch import Tensor

from roots_course.core.attention import rope_frequencies
from roots_course.core.model import GPT, GPTConfig
from roots_course.errors import ExportError

ARCHITECTURES = {"learned": "gpt2", "sinusoidal": "gpt2", "none": "gpt2", "rope": "gpt_neox"}
# Every GPTConfig field the mapping below knows how to carry over. A field added to GPTConfig later
# is refused until this module learns what it means.
KNOWN_FIELDS = {"vocab_size", "block_size", "n_layer", "n_head", "n_embd", "dropout", "bias", "position",
                "tie_weights", "fused_attention"}


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
        a = ours(ids.cpu()).logits  # (B, T, V)
        b = hf_model.to("cpu").eval()(input_ids=ids.cpu()).logits.float()  # (B, T, V)
    return float((a - b).abs().max()), float(a.abs().max())


def probe_ids(config: GPTConfig, batch: int = 2, seed: int = 0) -> Tensor:
    """A fixed batch (batch, min(block_size, 48)) of random token ids for checking an export."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, config.vocab_size, (batch, min(config.block_size, 48)), generator=g)
