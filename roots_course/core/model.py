"""The GPT: token embeddings (+ positions), a stack of pre-norm Transformer blocks, a linear head.

    idx (B, T) --tok_emb--> (B, T, C) --+positions--> [Block] x n_layer --ln_f--> --lm_head--> (B, T, V)

Block (pre-norm, as in GPT-2):   x = x + attention(LayerNorm(x));   x = x + MLP(LayerNorm(x))

The attention layer lives in roots_course/core/attention.py; decoding strategies in generate.py.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import MISSING, asdict, dataclass, fields
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from roots_course.core.attention import KVCache, MultiHeadAttention
from roots_course.errors import CheckpointError, ConfigError

POSITIONS = ("learned", "sinusoidal", "rope", "none")


class GPTOutput(NamedTuple):
    """What ``GPT.forward`` returns, always the same three fields (read them by name)."""

    logits: Tensor  # (B, T, V): a score for every token id at every position
    loss: Tensor | None  # scalar mean cross-entropy when targets were given, else None
    attention: list[Tensor] | None  # with return_attention=True: per layer (B, H, T, S), else None


@dataclass
class GPTConfig:
    vocab_size: int  # V: number of token ids
    block_size: int  # longest context the model accepts, in tokens
    n_layer: int  # L: number of Transformer blocks
    n_head: int  # H: attention heads per block
    n_embd: int  # C: model width; each head has C / H dimensions
    dropout: float = 0.0
    bias: bool = False  # biases in the Linear and LayerNorm layers
    position: str = "learned"  # how the model knows token order: one of POSITIONS
    tie_weights: bool = True  # the output head reuses the token-embedding matrix
    fused_attention: bool = True  # torch's attention kernel (True) or the written-out one (False)

    def validate(self) -> GPTConfig:
        """Return self, or raise ConfigError naming the offending field."""
        for name in ("vocab_size", "block_size", "n_layer", "n_head", "n_embd"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"GPTConfig.{name} must be a positive integer, got {value!r}")
        if self.n_embd % self.n_head:
            raise ConfigError(
                f"GPTConfig.n_embd={self.n_embd} is not divisible by n_head={self.n_head}"
                " (each head gets n_embd // n_head dimensions)"
            )
        if self.position not in POSITIONS:
            raise ConfigError(f"GPTConfig.position={self.position!r} is unknown; allowed: {list(POSITIONS)}")
        if self.position == "rope" and self.head_dim % 2:
            raise ConfigError(f"GPTConfig.position='rope' needs an even head size, got {self.head_dim}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"GPTConfig.dropout must be in [0, 1), got {self.dropout!r}")
        return self

    @property
    def head_dim(self) -> int:
        return self.n_embd // self.n_head

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> GPTConfig:
        names = [f.name for f in fields(cls)]
        unknown = sorted(set(d) - set(names))
        if unknown:
            raise ConfigError(f"unknown GPTConfig field(s) {unknown}; known fields: {names}")
        missing = [f.name for f in fields(cls) if f.default is MISSING and f.name not in d]
        if missing:
            raise ConfigError(f"GPTConfig is missing required field(s) {missing}")
        return cls(**d).validate()


# --- FLOPs: the one place the course counts them (roots_course.society.cost imports these) -------------
# Per token, for weight matrices holding N numbers used on every token, at context length T:
#     forward 2·N  +  backward through the inputs 2·N  +  backward into the trained weights 2·N_trained
#     +  attention 12·L·C·T (Q·Kᵀ and weights·V: 4·C·T per layer forward, times 3 with the backward).
# Full training (N_trained = N) gives 6·N + 12·L·C·T; LoRA freezes most weights and skips their gradients.


def training_flops_per_token(matmul_params: int, trained_params: int, n_layer: int, n_embd: int,
                             seq_len: int) -> int:
    """FLOPs per token of one training step, forward and backward (formula above)."""
    for name, value in (("matmul_params", matmul_params), ("trained_params", trained_params), ("n_layer", n_layer),
                        ("n_embd", n_embd), ("seq_len", seq_len)):
        if value < 0:
            raise ConfigError(f"{name} must be non-negative, got {value}")
    return 4 * matmul_params + 2 * trained_params + 12 * n_layer * n_embd * seq_len


def forward_flops_per_token(matmul_params: int, n_layer: int, n_embd: int, seq_len: int) -> int:
    """FLOPs per token of a forward pass alone (generation, scoring): 2·N + 4·L·C·T."""
    return 2 * matmul_params + 4 * n_layer * n_embd * seq_len


def sinusoidal_positions(T: int, C: int) -> Tensor:
    """The fixed table of Vaswani et al. (2017): (T, C), PE[p, 2i] = sin(p / 10000^(2i/C)),
    PE[p, 2i+1] = cos(p / 10000^(2i/C)). Nothing is learned; each row is a unique pattern."""
    position = torch.arange(T, dtype=torch.float32)[:, None]  # (T, 1)
    rate = 10000.0 ** (-torch.arange(0, C, 2, dtype=torch.float32) / C)  # (ceil(C/2),)
    angle = position * rate  # (T, ceil(C/2))
    table = torch.zeros(T, C)
    table[:, 0::2] = angle.sin()
    table[:, 1::2] = angle.cos()[:, : C // 2]
    return table  # (T, C)


class MLP(nn.Module):
    """Position-wise feed-forward network: C -> 4C -> GELU -> C, applied to each token alone."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=config.bias)
        self.proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=config.bias)
        self.drop = nn.Dropout(config.dropout)

    def forward(self, x: Tensor) -> Tensor:  # (B, T, C) -> (B, T, C)
        return self.drop(self.proj(F.gelu(self.fc(x))))


class Block(nn.Module):
    """Pre-norm Transformer block: tokens talk (attention), then each thinks alone (MLP)."""

    def __init__(self, config: GPTConfig, layer_idx: int) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.attn = MultiHeadAttention(
            config.n_embd,
            config.n_head,
            bias=config.bias,
            dropout=config.dropout,
            fused=config.fused_attention,
            rope=config.position == "rope",
            max_len=config.block_size,
            layer_idx=layer_idx,
        )
        self.ln2 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.mlp = MLP(config)

    def forward(
        self, x: Tensor, cache: KVCache | None = None, return_weights: bool = False
    ) -> tuple[Tensor, Tensor | None]:
        a, weights = self.attn(self.ln1(x), cache, return_weights)  # (B, T, C), (B, H, T, S) | None
        x = x + a  # residual: the block adds to the stream instead of replacing it
        x = x + self.mlp(self.ln2(x))
        return x, weights


class GPT(nn.Module):
    """A decoder-only Transformer language model."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.config = c = config.validate()
        self.tok_emb = nn.Embedding(c.vocab_size, c.n_embd)
        if c.position == "learned":
            self.pos_emb = nn.Embedding(c.block_size, c.n_embd)
        elif c.position == "sinusoidal":  # a fixed table: kept out of the state dict
            self.register_buffer("pos_table", sinusoidal_positions(c.block_size, c.n_embd), persistent=False)
        # "rope" rotates q and k inside every attention layer; "none" gives no position at all.
        self.drop = nn.Dropout(c.dropout)
        self.blocks = nn.ModuleList(Block(c, i) for i in range(c.n_layer))
        self.ln_f = nn.LayerNorm(c.n_embd, bias=c.bias)
        self.lm_head = nn.Linear(c.n_embd, c.vocab_size, bias=False)

        # GPT-2 initialisation: every weight ~ N(0, 0.02), biases 0. The two projections that write
        # into the residual stream are scaled by 1/sqrt(2 * n_layer): the stream sums 2 * n_layer of
        # them, so this keeps its variance from growing with depth.
        self.apply(self._init_weights)
        for name, p in self.named_parameters():
            if name.endswith(("attn.proj.weight", "mlp.proj.weight")):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * c.n_layer))
        if c.tie_weights:  # one matrix both reads tokens in and scores them out (Press & Wolf 2017)
            self.lm_head.weight = self.tok_emb.weight

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def forward(
        self,
        idx: Tensor,
        targets: Tensor | None = None,
        cache: KVCache | None = None,
        return_attention: bool = False,
    ) -> GPTOutput:
        """idx (B, T) token ids -> GPTOutput(logits (B, T, V), loss or None, attention or None).

        targets (B, T): the next token at every position; loss is the mean cross-entropy over
        positions whose target is not -100 (that value marks positions to ignore).
        cache: while decoding, holds the keys/values of earlier positions; idx then holds only the
        new tokens, and their positions start at cache.length.
        return_attention=True fills ``attention``: per layer, the weights (B, H, T, S).
        """
        B, T = idx.shape
        x, maps = self._trunk(idx, cache, return_attention)  # (B, T, C)
        logits = self.lm_head(x)  # (B, T, V)

        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.reshape(B * T, -1), targets.reshape(B * T), ignore_index=-100)
        return GPTOutput(logits, loss, maps if return_attention else None)

    def _trunk(self, idx: Tensor, cache: KVCache | None, return_attention: bool) -> tuple[Tensor, list]:
        """Embeddings, positions, every block and the final LayerNorm: idx (B, T) -> (B, T, C)."""
        c = self.config
        T = idx.size(1)
        start = 0 if cache is None else cache.length  # position of idx[:, 0]
        if start + T > c.block_size:
            raise ConfigError(
                f"sequence of {start + T} tokens ({start} cached + {T} new) exceeds "
                f"GPTConfig.block_size={c.block_size}; keep only the last block_size tokens"
            )
        x = self.tok_emb(idx)  # (B, T, C)
        if c.position == "learned":
            x = x + self.pos_emb(torch.arange(start, start + T, device=idx.device))  # + (T, C)
        elif c.position == "sinusoidal":
            # Vaswani et al. scale the embeddings by sqrt(C) so the fixed +-1 table does not drown them.
            x = x * math.sqrt(c.n_embd) + self.pos_table[start : start + T]  # + (T, C)
        x = self.drop(x)

        maps = []
        for block in self.blocks:
            x, weights = block(x, cache, return_attention)  # (B, T, C)
            maps.append(weights)
        return self.ln_f(x), maps  # (B, T, C)

    def hidden_states(self, idx: Tensor) -> Tensor:
        """The last layer's vectors, idx (B, T) -> (B, T, C): what lm_head turns into logits.

        A classification head reads these instead of the next-token scores (roots_course.tasks.classify).
        """
        return self._trunk(idx, None, False)[0]

    # ---- counting ------------------------------------------------------------------------------

    def num_parameters(self, non_embedding: bool = False) -> int:
        """Number of parameters (a tied matrix counts once).

        non_embedding=True leaves out the token and position embedding tables, the N of
        Kaplan et al. (2020). An untied output head is not an embedding and stays counted; a tied
        head *is* the token-embedding matrix and so is left out with it.
        """
        n = sum(p.numel() for p in self.parameters())  # parameters() yields a shared tensor once
        if non_embedding:
            n -= self.tok_emb.weight.numel()
            if self.config.position == "learned":
                n -= self.pos_emb.weight.numel()
        return n

    def flops_per_token(self, seq_len: int | None = None) -> int:
        """Training FLOPs (forward + backward) per token at context length T = seq_len (default
        block_size):

            6 * N  +  12 * n_layer * n_embd * T

        N = parameters used in a matrix multiply for every token: the non-embedding parameters
        plus the output head's V * C, counted whether tied or not (the head multiply happens
        either way; embedding lookups are free). Each such weight costs 2 FLOPs (multiply, add)
        forward and 4 backward: 6 per token. The second term is attention itself: per layer,
        Q Kᵀ and weights @ V each take 2 * n_embd * T FLOPs per token forward; times 3 for the
        backward pass gives 12 * n_embd * T. Kaplan et al. (2020, Table 1) count only the Q Kᵀ
        part (2 * n_layer * n_ctx * d_attn forward); the 12 * L * C * T form is the one of PaLM
        (Chowdhery et al. 2022, App. B). The causal mask could skip half of that work; by
        convention it is counted in full. A forward pass alone costs about a third.
        """
        c = self.config
        T = c.block_size if seq_len is None else seq_len
        N = self.matmul_parameters()
        return training_flops_per_token(N, N, c.n_layer, c.n_embd, T)

    def matmul_parameters(self) -> int:
        """N of ``flops_per_token``: the non-embedding parameters plus the output head's V·C, tied or not."""
        c = self.config
        n = self.num_parameters(non_embedding=True)
        return n + c.vocab_size * c.n_embd if c.tie_weights else n

    # ---- decoding and inspection ---------------------------------------------------------------

    def make_cache(self, batch_size: int, max_len: int | None = None) -> KVCache:
        """An empty KVCache for this model (max_len defaults to block_size)."""
        c = self.config
        p = self.tok_emb.weight
        max_len = c.block_size if max_len is None else max_len
        return KVCache(c.n_layer, batch_size, c.n_head, c.head_dim, max_len, device=p.device, dtype=p.dtype)

    def attention_maps(self, idx: Tensor) -> list[Tensor]:
        """Attention weights of every layer for idx (B, T): a list of n_layer tensors (B, H, T, T)."""
        was_training = self.training
        self.eval()  # no dropout on the weights we show
        try:
            with torch.inference_mode():
                maps = self(idx, return_attention=True).attention
        finally:
            self.train(was_training)
        return maps

    # ---- saving with tied weights ----------------------------------------------------------------
    # With tie_weights, state_dict() holds the same tensor under "tok_emb.weight" and
    # "lm_head.weight"; safetensors' save_file refuses shared tensors. The canonical key is
    # "tok_emb.weight": the helpers below drop "lm_head.weight" when saving and re-tie on loading.
    # (safetensors.torch.save_model/load_model also work; they choose which duplicate to drop.)

    def state_dict_for_saving(self) -> dict[str, Tensor]:
        """state_dict() without duplicate (tied) tensors, ready for safetensors.torch.save_file."""
        sd = self.state_dict()
        if self.config.tie_weights:
            sd.pop("lm_head.weight")
        return sd

    def load_state_for_saving(self, sd: Mapping[str, Tensor], strict: bool = True) -> None:
        """Load a dict made by state_dict_for_saving (or a full state_dict) into this model.

        With tied weights either key of the shared matrix is accepted, and the tie is kept.
        strict=True raises CheckpointError naming any missing or unexpected keys.
        """
        sd = dict(sd)
        if self.config.tie_weights:
            head = sd.pop("lm_head.weight", None)
            if head is not None and "tok_emb.weight" not in sd:
                sd["tok_emb.weight"] = head  # saved under the other name (e.g. by save_model)
        missing, unexpected = self.load_state_dict(sd, strict=False)  # copies in place: ties survive
        if self.config.tie_weights:
            missing = [k for k in missing if k != "lm_head.weight"]
        if strict and (missing or unexpected):
            raise CheckpointError(f"state dict does not match the model: missing {missing}, unexpected {unexpected}")
