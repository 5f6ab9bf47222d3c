"""Turning a GPT into text: logit processing, sampling, greedy decoding, beam search, and the
log-probability of a given continuation.

This is the teaching version, written out to be read. The library version is Hugging Face
`transformers`' ``generate`` and its logits processors. Checked against it: greedy decoding, on a model
exported to `transformers` (tests/test_export.py::test_greedy_generation_gives_the_same_tokens), and
``process_logits`` against the library's repetition-penalty, temperature, top-k and top-p processors
(tests/test_generate.py::test_process_logits_matches_the_transformers_logits_processors). Beam search and
seeded sampling are checked by this course's own tests only, not against the library.

Every function here puts the model in eval mode under torch.inference_mode and gives it back in
the mode it was in. Token ids go in as a list of ints (or a 1-D tensor) and come out as a list.

The context window: a GPT sees at most block_size tokens. When prompt + generated tokens no longer
fit, the model sees only the last block_size of them. With a KV cache, the cache holds exactly the
positions fed so far; once it holds block_size positions it cannot take another (positions are
baked into every cached key), so from then on each step recomputes the last block_size tokens
without the cache -- the same computation as use_cache=False, hence the same tokens.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from roots_course.core.attention import KVCache
from roots_course.errors import ConfigError
from roots_course.core.model import GPT
from roots_course.core.modes import evaluating


def _as_ids(ids: Sequence[int] | Tensor, what: str = "prompt_ids", vocab_size: int | None = None) -> list[int]:
    if isinstance(ids, Tensor):
        if ids.dim() == 2 and ids.size(0) == 1:
            ids = ids[0]
        if ids.dim() != 1:
            raise ConfigError(f"{what} must be one sequence (T,) or (1, T), got shape {tuple(ids.shape)}")
        ids = ids.tolist()
    ids = [int(i) for i in ids]
    if not ids:
        raise ConfigError(f"{what} is empty; the model needs at least one token to condition on")
    if vocab_size is not None:
        bad = next((i for i in ids if not 0 <= i < vocab_size), None)
        if bad is not None:   # e.g. the ids of another tokenizer than the model's
            raise ConfigError(f"{what} holds token id {bad}, outside the model's vocabulary 0..{vocab_size - 1}; "
                              f"encode the text with the tokenizer the model was trained with")
    return ids


# ---------------------------------------------------------------------------------------------
# Logit processing
# ---------------------------------------------------------------------------------------------


def process_logits(
    logits: Tensor,
    *,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    repetition_penalty: float = 1.0,
    previous_ids: Tensor | Sequence[int] | None = None,
) -> Tensor:
    """Reshape next-token scores before sampling; returns a new tensor, the input is untouched.

    logits (B, V) or (V,). Steps, in this order (the order of Hugging Face's generate):
    1. repetition_penalty (Keskar et al. 2019, CTRL): for each token id in previous_ids ((B, n),
       or (n,) for every row), a positive logit is divided by the penalty and a negative one
       multiplied by it, so a penalty > 1 always makes a repeat less likely.
    2. temperature: logits / temperature; < 1 sharpens the distribution, > 1 flattens it.
    3. top_k: keep exactly the k highest logits (ties broken by index order of torch.topk).
    4. top_p (nucleus; Holtzman et al. 2020): keep the smallest set of most probable tokens whose
       total probability is >= top_p.
    Removed tokens get -inf, so softmax gives them probability 0.
    """
    if temperature <= 0:
        raise ConfigError(f"temperature must be > 0, got {temperature} (use greedy decoding instead)")
    if top_k is not None and top_k < 1:
        raise ConfigError(f"top_k must be >= 1 or None, got {top_k}")
    if top_p is not None and not 0.0 < top_p <= 1.0:
        raise ConfigError(f"top_p must be in (0, 1] or None, got {top_p}")
    if repetition_penalty <= 0:
        raise ConfigError(f"repetition_penalty must be > 0, got {repetition_penalty}")
    if logits.dim() == 1:
        return process_logits(
            logits[None],
            temperature=temperature,
            top_k=top_k,
            top_p=top_p,
            repetition_penalty=repetition_penalty,
            previous_ids=previous_ids,
        )[0]

    out = logits.clone()  # (B, V)
    if repetition_penalty != 1.0 and previous_ids is not None:
        prev = torch.as_tensor(previous_ids, dtype=torch.long, device=out.device)
        if prev.numel() > 0:
            prev = prev.expand(out.size(0), -1) if prev.dim() == 1 else prev  # (B, n)
            seen = out.gather(1, prev)  # (B, n); a repeated id appears twice, with the same value
            seen = torch.where(seen > 0, seen / repetition_penalty, seen * repetition_penalty)
            out.scatter_(1, prev, seen)
    if temperature != 1.0:
        out = out / temperature
    if top_k is not None and top_k < out.size(-1):
        keep_idx = out.topk(top_k, dim=-1).indices  # (B, k)
        keep = torch.zeros_like(out, dtype=torch.bool).scatter_(1, keep_idx, True)
        out = out.masked_fill(~keep, float("-inf"))
    if top_p is not None and top_p < 1.0:
        probs, order = out.softmax(dim=-1).sort(dim=-1, descending=True)  # (B, V) each
        mass_before = probs.cumsum(dim=-1) - probs  # mass of the strictly better-ranked tokens
        drop_sorted = mass_before >= top_p  # the better tokens already reach p without this one
        drop = torch.zeros_like(drop_sorted).scatter_(1, order, drop_sorted)  # back to vocab order
        out = out.masked_fill(drop, float("-inf"))
    return out


# ---------------------------------------------------------------------------------------------
# One decoding step
# ---------------------------------------------------------------------------------------------


def _next_logits(model: GPT, ids: Tensor, cache: KVCache | None) -> Tensor:
    """Scores (B, V) of the token that follows ids (B, n).

    The cache, if any, holds the keys/values of every token of ids but the last (or nothing yet).
    """
    block = model.config.block_size
    if cache is not None and cache.length == 0:  # first call: fill the cache with the prompt
        return model(ids[:, -block:], cache=cache).logits[:, -1]
    if cache is not None and cache.length < block:  # room left: feed only the newest token
        return model(ids[:, -1:], cache=cache).logits[:, -1]
    return model(ids[:, -block:]).logits[:, -1]  # no cache, or a full one: recompute the window


def _ends_with_any(tokens: list[int], sequences: list[list[int]]) -> list[int] | None:
    for seq in sequences:
        if len(tokens) >= len(seq) and tokens[-len(seq) :] == seq:
            return seq
    return None


def generate(
    model: GPT,
    prompt_ids: Sequence[int] | Tensor,
    max_new_tokens: int,
    *,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    repetition_penalty: float = 1.0,
    greedy: bool = False,
    stop_sequences: list[list[int]] | None = None,
    use_cache: bool = True,
    generator: torch.Generator | None = None,
) -> list[int]:
    """Continue prompt_ids by up to max_new_tokens tokens; return ONLY the new tokens.

    greedy=True (or temperature=0) takes the most likely token at each step (after the repetition
    penalty); otherwise the next token is sampled from process_logits(...) with `generator`.
    stop_sequences: generation stops as soon as the new tokens end with one of them; that stop
    sequence is not included in the result (as in most text-generation APIs). Only new tokens
    are matched, never the prompt. use_cache=False recomputes the whole context every step (slow;
    for comparison). See the module docstring for what happens when the context window is full.
    """
    prompt = _as_ids(prompt_ids, vocab_size=model.config.vocab_size)
    if max_new_tokens < 0:
        raise ConfigError(f"max_new_tokens must be >= 0, got {max_new_tokens}")
    greedy = greedy or temperature == 0
    stops = [list(s) for s in (stop_sequences or []) if len(s) > 0]
    device = model.tok_emb.weight.device
    # Every token so far, allocated once: (1, prompt + max_new_tokens), filled up to n.
    ids = torch.zeros(1, len(prompt) + max_new_tokens, dtype=torch.long, device=device)
    ids[0, : len(prompt)] = torch.tensor(prompt, dtype=torch.long)
    n = len(prompt)
    new: list[int] = []
    with evaluating(model):
        cache = model.make_cache(1) if use_cache else None
        for _ in range(max_new_tokens):
            logits = _next_logits(model, ids[:, :n], cache)  # (1, V)
            logits = process_logits(
                logits.float(),
                temperature=1.0 if greedy else temperature,
                top_k=None if greedy else top_k,
                top_p=None if greedy else top_p,
                repetition_penalty=repetition_penalty,
                previous_ids=ids[:, :n],
            )
            if greedy:
                next_id = logits.argmax(dim=-1)  # (1,)
            else:
                probs = logits.softmax(dim=-1)  # (1, V)
                if generator is not None and generator.device != probs.device:
                    probs = probs.cpu()  # a CPU generator (the usual seeded one) samples on the CPU
                next_id = torch.multinomial(probs, 1, generator=generator)[:, 0].to(ids.device)  # (1,)
            ids[:, n] = next_id
            n += 1
            new.append(int(next_id))
            stop = _ends_with_any(new, stops)
            if stop is not None:
                del new[-len(stop) :]
                break
    return new


# ---------------------------------------------------------------------------------------------
# Beam search
# ---------------------------------------------------------------------------------------------


def beam_search(
    model: GPT,
    prompt_ids: Sequence[int] | Tensor,
    max_new_tokens: int,
    beam_width: int = 4,
    length_penalty: float = 1.0,
    use_cache: bool = True,
    eos_id: int | None = None,
) -> list[int]:
    """The continuation with the highest (length-normalised) log-probability among those beam
    search keeps; returns only the new tokens.

    At each step every beam is extended by every token, and the beam_width best totals of
    log-probabilities survive; their KV-cache rows are reordered to follow them. A beam that
    produces eos_id is finished (eos included). Search stops at max_new_tokens or once beam_width
    beams have finished. The winner maximises  sum of log p / (new tokens) ** length_penalty;
    without eos_id every beam has the same length, so length_penalty has no effect.
    """
    prompt = _as_ids(prompt_ids, vocab_size=model.config.vocab_size)
    if beam_width < 1:
        raise ConfigError(f"beam_width must be >= 1, got {beam_width}")
    if max_new_tokens < 1:
        return []
    P = len(prompt)
    device = model.tok_emb.weight.device
    seqs = torch.zeros(1, P + max_new_tokens, dtype=torch.long, device=device)  # (beams, P + max_new)
    seqs[0, :P] = torch.tensor(prompt, dtype=torch.long)
    scores = torch.zeros(1, device=device)  # (beams,) total log-prob of each beam's new tokens
    finished: list[tuple[float, list[int]]] = []  # (normalised score, new tokens)

    def normalised(score: float, length: int) -> float:
        return score / length**length_penalty

    with evaluating(model):
        cache = model.make_cache(1) if use_cache else None
        for step in range(max_new_tokens):
            logp = F.log_softmax(_next_logits(model, seqs[:, : P + step], cache).float(), dim=-1)  # (W, V)
            V = logp.size(-1)
            totals = (scores[:, None] + logp).view(-1)  # (W * V,) every one-token extension
            # 2W candidates: even if W of them end in eos, W unfinished ones remain.
            top_scores, top_idx = totals.topk(min(2 * beam_width, totals.numel()))
            rows, tokens, kept = [], [], []
            for s, flat in zip(top_scores.tolist(), top_idx.tolist(), strict=True):
                row, token = divmod(flat, V)
                if eos_id is not None and token == eos_id:
                    finished.append((normalised(s, step + 1), seqs[row, P : P + step].tolist() + [token]))
                else:
                    rows.append(row)
                    tokens.append(token)
                    kept.append(s)
                if len(kept) == beam_width:
                    break
            if len(finished) >= beam_width or not kept:
                break  # done: enough finished beams (the unfinished ones no longer compete)
            index = torch.tensor(rows, device=device)
            seqs = seqs[index]  # (W', P + max_new): copies; each new beam continues an old one
            seqs[:, P + step] = torch.tensor(tokens, device=device)
            scores = torch.tensor(kept, device=device)
            if cache is not None:
                cache.reorder(index)
        else:  # reached max_new_tokens: the live beams compete with the finished ones
            for row, s in enumerate(scores.tolist()):
                finished.append((normalised(s, max_new_tokens), seqs[row, P:].tolist()))
    return max(finished, key=lambda f: f[0])[1] if finished else []


# ---------------------------------------------------------------------------------------------
# Scoring a given sequence
# ---------------------------------------------------------------------------------------------


def sequence_log_prob(model: GPT, ids: Sequence[int] | Tensor, start: int = 1) -> float:
    """Sum of log p(ids[t] | ids[:t]) over t >= start, in nats (natural log).

    Perplexity of the tokens from `start` on = exp(-sequence_log_prob / (len(ids) - start)).
    A sequence longer than block_size + 1 is scored in windows of block_size tokens that advance
    by block_size // 2, so every token after the first window sees at least half a window of
    context (not its whole history: the model cannot see more).
    """
    ids = _as_ids(ids, "ids", vocab_size=model.config.vocab_size)
    L = len(ids)
    if not 1 <= start <= L:
        raise ConfigError(f"start must be in [1, len(ids)={L}], got {start} (token 0 has no context)")
    block = model.config.block_size
    stride = max(1, block // 2)
    x = torch.tensor(ids, dtype=torch.long, device=model.tok_emb.weight.device)  # (L,)
    total = 0.0
    with evaluating(model):
        t = start  # next target to score
        while t < L:
            end = min(L, max(block + 1, t + stride))  # score targets t .. end-1
            w0 = max(0, end - 1 - block)  # window of inputs x[w0 : end-1] predicts x[w0+1 : end]
            logits = model(x[None, w0 : end - 1]).logits[0]  # (end-1-w0, V)
            logp = F.log_softmax(logits.float(), dim=-1)[t - w0 - 1 :]  # rows predicting x[t:end]
            total += logp.gather(1, x[t:end, None]).sum().item()
            t = end
    return total
