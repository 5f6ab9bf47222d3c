"""Asking the model: greedy continuation of many prompts at once, each cut at its first stop newline."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from roots_course.core.model import GPT
from roots_course.core.modes import evaluating
from roots_course.core.tokenizer import Tokenizer
from roots_course.errors import ConfigError
from roots_course.tasks.task_types import STOP


def stop_token_ids(tokenizer: Tokenizer, stop: str = STOP) -> torch.Tensor:
    """Every token id whose bytes contain the stop string (a byte-level BPE may fold a newline into
    tokens such as "\\n    "): generation of a row ends as soon as it writes one of them."""
    marker = stop.encode("utf-8")
    return torch.tensor([i for i in range(tokenizer.vocab_size) if marker in tokenizer.token_bytes(i)])


def generate_answers(model: GPT, tokenizer: Tokenizer, prompts: Sequence[str], max_new_tokens: int,
                     batch_size: int = 64, stop: str = STOP) -> list[str]:
    """Greedy continuation of each prompt, cut at the first ``stop``; the prompt is not included.

    Prompts of different lengths are decoded together, one position at a time, with one KV cache:

        position t:   row still inside its prompt  -> fed its own prompt token t
                      row past its prompt          -> fed the token it generated last
        logits at t:  rows with t >= len(prompt) - 1 take the most likely token as their next one

    Every row thus sees exactly its own prompt followed by its own answer, at the same positions as when
    decoded alone, so the result equals one-at-a-time greedy decoding
    (``roots_course.core.generate.generate(..., greedy=True)``) with no padding and no attention mask. Prompts
    are sorted by length and cut into batches of ``batch_size``, so rows of a batch have similar lengths.
    A prompt longer than block_size − max_new_tokens keeps only its last tokens.
    """
    if max_new_tokens < 1:
        raise ConfigError(f"max_new_tokens must be positive, got {max_new_tokens}")
    block = model.config.block_size
    if max_new_tokens >= block:
        raise ConfigError(f"max_new_tokens={max_new_tokens} leaves no room for a prompt in a {block}-token window")
    device = model.tok_emb.weight.device
    stops = stop_token_ids(tokenizer, stop).to(device)
    encoded = [tokenizer.encode(p)[-(block - max_new_tokens):] for p in prompts]
    if any(not ids for ids in encoded):
        raise ConfigError("an empty prompt gives the model nothing to continue")
    order = sorted(range(len(prompts)), key=lambda i: len(encoded[i]))
    outputs: list[list[int]] = [[] for _ in prompts]
    with evaluating(model):
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            lengths = torch.tensor([len(encoded[i]) for i in rows], device=device)  # (B,)
            first, last = int(lengths.min()), int(lengths.max())
            total = last + max_new_tokens  # positions 0 .. total-1 at most
            seq = torch.zeros(len(rows), total, dtype=torch.long, device=device)  # (B, total) prompt, then answer
            for r, i in enumerate(rows):
                seq[r, : len(encoded[i])] = torch.tensor(encoded[i], device=device)
            cache = model.make_cache(len(rows), max_len=total)
            logits = model(seq[:, :first], cache=cache).logits[:, -1]  # (B, V): the prediction for position `first`
            done = torch.zeros(len(rows), dtype=torch.bool, device=device)
            for t in range(first, total):  # choose the token at position t, then feed it
                generating = t >= lengths  # (B,) rows whose prompt has ended
                token = torch.where(generating, logits.float().argmax(dim=-1), seq[:, t])  # (B,)
                seq[:, t] = token
                done |= generating & (torch.isin(token, stops) | (t - lengths + 1 >= max_new_tokens))
                if bool(done.all()) or t == total - 1:
                    break
                logits = model(token[:, None], cache=cache).logits[:, -1]  # (B, V)
            for r, i in enumerate(rows):
                n = len(encoded[i])
                outputs[i] = seq[r, n : n + max_new_tokens].tolist()
    texts = []
    for ids in outputs:
        cut = next((k for k, t in enumerate(ids) if stop.encode() in tokenizer.token_bytes(t)), None)
        text = tokenizer.decode(ids if cut is None else ids[: cut + 1])
        texts.append(text.split(stop, 1)[0])
    return texts


def first_token_stop_probability(model: GPT, tokenizer: Tokenizer, prompts: Sequence[str],
                                 max_new_tokens: int, batch_size: int = 64, stop: str = STOP) -> torch.Tensor:
    """(N,) probability the model gives, at the first answer position, to the tokens that contain
    ``stop`` (all of ``stop_token_ids``): the chance that its answer ends before it starts.

    Prompts are cut exactly as ``generate_answers`` cuts them (the last block_size − max_new_tokens
    tokens), so this is the distribution greedy decoding picks its first token from.
    """
    block = model.config.block_size
    if not 0 < max_new_tokens < block:
        raise ConfigError(f"max_new_tokens must be between 1 and {block - 1}, got {max_new_tokens}")
    device = model.tok_emb.weight.device
    stops = stop_token_ids(tokenizer, stop).to(device)
    encoded = [tokenizer.encode(p)[-(block - max_new_tokens):] for p in prompts]
    if any(not ids for ids in encoded):
        raise ConfigError("an empty prompt gives the model nothing to continue")
    out = torch.zeros(len(prompts), dtype=torch.float64)
    with evaluating(model), torch.no_grad():
        for start in range(0, len(prompts), batch_size):
            rows = encoded[start : start + batch_size]
            lengths = torch.tensor([len(r) for r in rows], device=device)  # (B,)
            x = torch.zeros(len(rows), int(lengths.max()), dtype=torch.long, device=device)  # (B, T) right-padded
            for r, ids in enumerate(rows):
                x[r, : len(ids)] = torch.tensor(ids, device=device)
            logits = model(x).logits  # (B, T, V); causal, so padding after a row's end changes nothing in it
            last = logits[torch.arange(len(rows), device=device), lengths - 1].float()  # (B, V)
            out[start : start + len(rows)] = last.softmax(dim=-1)[:, stops].sum(dim=-1).double().cpu()
    return out
