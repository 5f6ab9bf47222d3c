"""The training objective of a language model and the units its value is quoted in.

A language model outputs, at every position, a probability for each of the V tokens that could come
next. Training minimises the **cross-entropy**: the average over positions of -ln p(the token that
really came next). It is measured in nats per token (natural logarithm); the same number reads as

- **perplexity** = exp(loss): the model is as unsure as if it chose uniformly among that many tokens;
- **bits per token** = loss / ln 2: the length of the code the model would compress the text to;
- **bits per character** = loss / ln 2 × tokens / characters: the only one of the three that does not
  depend on the tokenizer, so models with different vocabularies can be compared with it.

Two reference points need no training: a model that spreads its probability evenly scores ln V
(``uniform_loss``); one that knows only how often each token occurs scores the unigram entropy (see
``roots_course.optimization.ngram``).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from roots_course.errors import ConfigError, DataError
from roots_course.core.modes import evaluating

LN2 = math.log(2)


def cross_entropy(logits: Tensor, targets: Tensor) -> Tensor:
    """The objective written out: mean over positions of -ln softmax(logits)[target].

    logits (N, V) and targets (N,); equals ``F.cross_entropy(logits, targets)``. log_softmax computes
    logits - logsumexp(logits) in one stable step (no exp of a large number is ever formed).
    """
    if logits.dim() != 2 or targets.shape != logits.shape[:1]:
        raise DataError(f"expected logits (N, V) and targets (N,), got {tuple(logits.shape)} and "
                        f"{tuple(targets.shape)}")
    log_probs = logits.log_softmax(dim=-1)                              # (N, V)
    return -log_probs.gather(1, targets[:, None].long()).squeeze(1).mean()   # ()


def perplexity(loss: float) -> float:
    """exp(loss): the number of equally likely choices that would be as surprising (loss in nats)."""
    return math.exp(loss)


def bits(loss: float) -> float:
    """Nats to bits: divide by ln 2."""
    return loss / LN2


def bits_per_char(loss: float, n_tokens: int, n_chars: int) -> float:
    """A loss in nats per token, as bits per character of the same text (n_tokens tokens for n_chars
    characters): the text's total code length in bits divided by its length in characters."""
    if n_tokens <= 0 or n_chars <= 0:
        raise ConfigError(f"n_tokens and n_chars must be positive, got {n_tokens} and {n_chars}")
    return loss / LN2 * n_tokens / n_chars


def uniform_loss(vocab_size: int) -> float:
    """ln V: the loss of a model that gives every token probability 1 / V, whatever the text."""
    if vocab_size < 1:
        raise ConfigError(f"vocab_size must be positive, got {vocab_size}")
    return math.log(vocab_size)


def dataset_loss(model: torch.nn.Module, ids: Tensor, batch_size: int = 32, max_tokens: int | None = None) -> float:
    """Mean loss over every token of ``ids`` (up to ``max_tokens``), cut into consecutive windows of
    block_size tokens: each token is predicted from the tokens before it in its window (0 to
    block_size - 1 of them), as in training. In nats per token; no gradient, eval mode."""
    block = model.config.block_size
    ids = torch.as_tensor(ids).long()
    if max_tokens is not None:
        ids = ids[: max_tokens + 1]
    n_windows = (ids.numel() - 1) // block
    if n_windows < 1:
        raise DataError(f"need at least block_size + 1 = {block + 1} tokens, got {ids.numel()}")
    device = next(model.parameters()).device
    x_all = ids[: n_windows * block].view(n_windows, block)                 # (W, T)
    y_all = ids[1: n_windows * block + 1].view(n_windows, block)            # (W, T)
    total = 0.0
    with evaluating(model):
        for i in range(0, n_windows, batch_size):
            x, y = x_all[i: i + batch_size].to(device), y_all[i: i + batch_size].to(device)
            logits = model(x).logits                                        # (B, T, V)
            total += F.cross_entropy(logits.float().flatten(0, 1), y.flatten(), reduction="sum").item()
    return total / (n_windows * block)
