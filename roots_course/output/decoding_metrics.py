"""Numbers that describe generated text: how spread out the next-token distribution is, how
diverse and how repetitive a set of continuations is, whether code continuations are Python, and how
probable any text is under the model (perplexity, bits per character).

None of these is "quality". Each one catches one way decoding goes wrong:

- perplexity of the outputs under the model: low means the model finds its own text unsurprising,
  which is what greedy and beam search optimise -- and what makes them dull and loopy;
- distinct-n (Li et al. 2016): the share of n-grams in a set of continuations that are different;
  low means the outputs say the same things over and over, across prompts and samples;
- repetition rate: the share of a continuation's n-grams that already occurred earlier in the same
  continuation (the "seq-rep-n" of Welleck et al. 2020); high means loops;
- for code prompts, whether the text parses as Python (the standard library's own parser, ``ast``).

Every function works on token ids or plain strings; nothing here generates text or trains.
"""

from __future__ import annotations

import ast
import math
import random
import re
import warnings
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from roots_course.core.generate import sequence_log_prob
from roots_course.core.model import GPT
from roots_course.core.modes import evaluating
from roots_course.errors import ConfigError

LN2 = math.log(2.0)

# The flag the interactive interpreter uses to tell "not finished yet" from "wrong" (see codeop).
_ALLOW_INCOMPLETE = 0x4000  # codeop.PyCF_ALLOW_INCOMPLETE_INPUT on Python 3.11


# ---- the next-token distribution -----------------------------------------------------------------


def entropy_bits(logits: Tensor, temperature: float = 1.0) -> Tensor:
    """Entropy, in bits, of softmax(logits / temperature) over the last dimension.

    logits (..., V) -> (...,). 0 bits: all probability on one token; log2(V) bits: uniform over all V.
    Computed from log-probabilities, so tokens with probability 0 (logit -inf) add nothing instead of NaN.
    """
    if temperature <= 0:
        raise ConfigError(f"temperature must be > 0, got {temperature}")
    logp = F.log_softmax(logits.float() / temperature, dim=-1)  # (..., V)
    p = logp.exp()
    return -(p * logp.nan_to_num(neginf=0.0)).sum(dim=-1) / LN2


def entropy_by_temperature(logits: Tensor, temperatures: Sequence[float]) -> Tensor:
    """Entropy in bits of every row of logits (N, V) at every temperature: (len(temperatures), N).

    For fixed logits the entropy never falls as the temperature rises (it rises strictly unless all
    logits are equal): dividing by a larger T shrinks the gaps between logits, so the distribution
    flattens towards uniform.
    """
    return torch.stack([entropy_bits(logits, t) for t in temperatures])


def nucleus_size(logits: Tensor, top_p: float) -> Tensor:
    """How many tokens top-p (nucleus) sampling keeps for each row of logits (N, V): (N,) ints.

    The smallest number of most probable tokens whose probabilities add up to at least top_p.
    Unlike top-k, this number changes from one context to the next.
    """
    if not 0.0 < top_p <= 1.0:
        raise ConfigError(f"top_p must be in (0, 1], got {top_p}")
    probs = logits.float().softmax(dim=-1).sort(dim=-1, descending=True).values  # (N, V)
    before = probs.cumsum(dim=-1) - probs  # mass of the better-ranked tokens
    return (before < top_p).sum(dim=-1)


def next_token_logits(model: GPT, ids: Sequence[int] | Tensor, n_positions: int) -> tuple[Tensor, Tensor]:
    """The model's next-token scores at the first `n_positions` positions of a text, and the tokens that
    really came next: (logits (n, V), targets (n,)).

    The text is cut into consecutive windows of block_size + 1 tokens, run as one batch; position i of a
    window sees the i + 1 tokens before it (so some positions have little context, as at the start of a
    document).
    """
    x = torch.as_tensor(list(ids) if not isinstance(ids, Tensor) else ids, dtype=torch.long).flatten()
    block = model.config.block_size
    n_windows = min(-(-n_positions // block), (x.numel() - 1) // block)
    if n_windows < 1:
        raise ConfigError(f"the text has {x.numel()} tokens; need more than block_size={block}")
    windows = x[: n_windows * block + 1]
    inputs = windows[:-1].view(n_windows, block)  # (W, block)
    targets = windows[1:].view(n_windows, block)  # (W, block)
    with evaluating(model):
        logits = model(inputs.to(model.tok_emb.weight.device)).logits.float().cpu()  # (W, block, V)
    return logits.reshape(-1, logits.size(-1))[:n_positions], targets.reshape(-1)[:n_positions]


# ---- diversity and repetition --------------------------------------------------------------------


def ngrams(tokens: Sequence[Hashable], n: int) -> list[tuple]:
    """The n-grams of one sequence, in order (overlapping): len(tokens) - n + 1 of them (or none)."""
    if n < 1:
        raise ConfigError(f"n must be >= 1, got {n}")
    return [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]


def distinct_n(sequences: Iterable[Sequence[Hashable]], n: int) -> float:
    """Distinct-n of a set of sequences: different n-grams / all n-grams, pooled over the set.

    n-grams never cross from one sequence into the next. 1.0: no n-gram occurs twice anywhere in the
    set. It falls as the set grows (more text, more chances to repeat), so compare sets of equal size.
    A set with no n-gram at all (every sequence shorter than n) gives 0.0.
    """
    total, seen = 0, set()
    for seq in sequences:
        grams = ngrams(list(seq), n)
        total += len(grams)
        seen.update(grams)
    return len(seen) / total if total else 0.0


def repeated_ngrams(tokens: Sequence[Hashable], n: int) -> tuple[int, int]:
    """(how many n-grams of `tokens` already occurred earlier in it, how many n-grams it has)."""
    seen: set[tuple] = set()
    repeats = 0
    grams = ngrams(list(tokens), n)
    for gram in grams:
        repeats += gram in seen
        seen.add(gram)
    return repeats, len(grams)


def repetition_rate(sequences: Iterable[Sequence[Hashable]], n: int = 4) -> float:
    """Share of n-grams that repeat an n-gram from earlier in the *same* sequence, pooled over the set.

    0.0: no sequence repeats itself; close to 1.0: the text is stuck in a loop. Unlike distinct-n this
    does not look across sequences, so two different prompts giving the same text do not count.
    """
    repeats = total = 0
    for seq in sequences:
        r, t = repeated_ngrams(seq, n)
        repeats += r
        total += t
    return repeats / total if total else 0.0


# ---- is it Python? --------------------------------------------------------------------------------


def complete_lines(text: str) -> str:
    """`text` without its last, unfinished line (the one a token budget cut off mid-way).

    Text with no line break is returned whole: it is all the evidence there is.
    """
    cut = text.rfind("\n")
    return text if cut < 0 else text[: cut + 1]


def python_status(source: str) -> str:
    """'complete' if `source` parses as a Python module, 'incomplete' if it is a valid beginning
    that needs more lines (an open bracket, a block with no body yet), 'invalid' otherwise.

    Uses the parser only (``ast``), like ``ast.parse``: it checks syntax, not whether names exist,
    and accepts what only the compiler rejects (a ``return`` outside a function). The 'incomplete'
    test is the one Python's interactive prompt uses to decide whether to print "...".
    """
    with warnings.catch_warnings():  # e.g. invalid escape sequences warn; they are not our concern
        warnings.simplefilter("ignore")
        try:
            compile(source, "<generated>", "exec", flags=ast.PyCF_ONLY_AST | _ALLOW_INCOMPLETE)
            return "complete"
        except SyntaxError as exc:
            return "incomplete" if "incomplete input" in str(exc) else "invalid"
        except (ValueError, MemoryError, RecursionError):  # e.g. a NUL byte in the text
            return "invalid"


def parses_as_python(source: str) -> bool:
    """True when `source` is a complete, syntactically valid Python module (ast.parse succeeds)."""
    return python_status(source) == "complete"


def code_status(prompt: str, continuation: str) -> str:
    """python_status of prompt + continuation, cut to complete lines; 'empty' when what is left of the
    continuation is blank. A model that answers `return` with nothing but line breaks has written
    valid Python, but it has written nothing: that must not count as success."""
    text = complete_lines(prompt + continuation)
    if not text[len(prompt):].strip():
        return "empty"
    return python_status(text)


def python_rates(pairs: Sequence[tuple[str, str]]) -> tuple[float, float]:
    """For (prompt, continuation) pairs: (share that parse as a whole, share that parse or are a valid
    unfinished beginning), by code_status; 'empty' continuations count as neither. (0.0, 0.0) for none."""
    if not pairs:
        return 0.0, 0.0
    status = [code_status(prompt, continuation) for prompt, continuation in pairs]
    parses = sum(s == "complete" for s in status)
    valid = sum(s in ("complete", "incomplete") for s in status)
    return parses / len(pairs), valid / len(pairs)


# ---- probability of a text under the model ---------------------------------------------------------


def continuation_log_prob(model: GPT, prompt_ids: Sequence[int], new_ids: Sequence[int]) -> float:
    """log p(new_ids | prompt_ids) under the model, in nats (the raw model: temperature 1, no filter)."""
    if not new_ids:
        return 0.0
    return sequence_log_prob(model, list(prompt_ids) + list(new_ids), start=len(prompt_ids))


def perplexity(total_log_prob: float, n_tokens: int) -> float:
    """exp(-average log-probability per token): the number of equally likely choices that would be
    as surprising. 1 is certainty; V (the vocabulary size) is a uniform guess."""
    if n_tokens <= 0:
        raise ConfigError(f"perplexity needs at least one token, got {n_tokens}")
    return math.exp(-total_log_prob / n_tokens)


def token_log_probs(model: GPT, ids: Sequence[int] | Tensor, batch_size: int = 32) -> Tensor:
    """log p(ids[t] | ids[:t]) for t = 1 .. len(ids) - 1, in nats: a (len(ids) - 1,) tensor.

    The same windows as generate.sequence_log_prob (block_size tokens of input, advancing by
    block_size // 2, so every token after the first window sees at least half a window of context),
    but many windows go through the model at once: scoring a long text is a batch job.
    """
    x = torch.as_tensor(list(ids) if not isinstance(ids, Tensor) else ids, dtype=torch.long).flatten()
    L = x.numel()
    if L < 2:
        raise ConfigError(f"need at least 2 tokens to score, got {L}")
    block = model.config.block_size
    stride = max(1, block // 2)
    # Window k scores targets [t_k, end_k) from inputs x[w0_k : end_k - 1]; the same rule as
    # sequence_log_prob (start=1), listed first, run in batches after.
    windows: list[tuple[int, int, int]] = []  # (w0, t, end)
    t = 1
    while t < L:
        end = min(L, max(block + 1, t + stride))
        windows.append((max(0, end - 1 - block), t, end))
        t = end
    out = torch.empty(L - 1)
    with evaluating(model):
        _score_windows(model, x, windows, batch_size, out)
    return out


@torch.inference_mode()
def _score_windows(model: GPT, x: Tensor, windows: list[tuple[int, int, int]], batch_size: int, out: Tensor) -> None:
    """Fill out[t - 1] with log p(x[t] | window) for every window (w0, t0, end), batch_size at a time."""
    device = model.tok_emb.weight.device
    for i in range(0, len(windows), batch_size):
        chunk = windows[i : i + batch_size]
        width = max(end - 1 - w0 for w0, _, end in chunk)  # block_size, except for a text shorter than that
        inputs = torch.zeros(len(chunk), width, dtype=torch.long)  # (b, width)
        for row, (w0, _, end) in enumerate(chunk):
            inputs[row, : end - 1 - w0] = x[w0 : end - 1]  # padding goes on the right: causal, never seen
        logp = F.log_softmax(model(inputs.to(device)).logits.float(), dim=-1).cpu()  # (b, width, V)
        for row, (w0, t0, end) in enumerate(chunk):
            rows = logp[row, t0 - w0 - 1 : end - 1 - w0]  # the positions predicting x[t0:end]
            out[t0 - 1 : end - 1] = rows.gather(1, x[t0:end, None])[:, 0]


@dataclass(frozen=True)
class TextScore:
    """How well the model predicts one text, in the units that can and cannot be compared."""

    name: str
    characters: int
    tokens: int
    nats_per_token: float  # the cross-entropy loss
    perplexity: float  # exp(nats_per_token): per TOKEN, so it depends on the tokenizer
    bits_per_token: float
    tokens_per_character: float
    bits_per_character: float  # per CHARACTER: comparable across texts and tokenizers

    def as_row(self) -> dict[str, float | int | str]:
        return asdict(self)


# A line of a lookup table: a literal (string, hex or decimal number) and an optional comma, then
# a comment, as in the generated codec modules ("'\\x00'     #  0x00 -> NULL").
_TABLE_LINE = re.compile(r"""^\s*(?:[rbu]?'[^']*'|[rbu]?"[^"]*"|0x[0-9A-Fa-f]+|\d+)\s*,?\s*(?:#.*)?$""")


def looks_generated(text: str, table_share: float = 0.5) -> bool:
    """True for source that a program wrote rather than a person: the opening says "generated" (the
    codec modules of the standard library say "generated from ..."), or more than `table_share` of
    the non-blank lines are lines of a lookup table (a literal, a comma, a comment)."""
    if "generated" in text[:1000].lower():
        return True
    lines = [line for line in text.split("\n") if line.strip()]
    if not lines:
        return False
    return sum(bool(_TABLE_LINE.match(line)) for line in lines) > table_share * len(lines)


def random_windows(text: str, n_chars: int, window_chars: int = 2000, seed: int = 0) -> str:
    """About `n_chars` characters of `text` as windows of `window_chars` taken from random places.

    The opening of a corpus is not a fair sample of it (a split's first documents are a few modules,
    alphabetically first). The text is cut into consecutive slots of `window_chars`; a seeded draw
    picks enough of them, without repeats, and keeps them in their original order. Each window is
    moved to start at a line (its first partial line dropped) and they are joined by blank lines.
    A text no longer than `n_chars` comes back whole.
    """
    if n_chars < 1 or window_chars < 1:
        raise ConfigError(f"n_chars and window_chars must be >= 1, got {n_chars}, {window_chars}")
    if len(text) <= n_chars:
        return text
    slots = len(text) // window_chars
    wanted = min(slots, math.ceil(1.25 * n_chars / window_chars))  # spare: first lines are dropped
    chosen = sorted(random.Random(seed).sample(range(slots), wanted))
    pieces = []
    for slot in chosen:
        window = text[slot * window_chars: (slot + 1) * window_chars]
        newline = window.find("\n")
        pieces.append(window[newline + 1:] if 0 <= newline < window_chars // 2 else window)
    return "\n\n".join(pieces)[:n_chars]


def score_text(model: GPT, tokenizer, text: str, name: str = "text", batch_size: int = 32) -> TextScore:
    """Cross-entropy of `text` under the model, as perplexity per token and bits per character.

    Bits per character = bits per token x tokens per character. A tokenizer that cuts a kind of text
    into more, smaller pieces makes each piece easier to predict (lower perplexity per token) while
    the text as a whole is no easier; per character, that bookkeeping cancels out.
    """
    ids = tokenizer.encode(text)
    logp = token_log_probs(model, ids, batch_size)  # (len(ids) - 1,): the first token has no context
    nats = float(-logp.mean())
    n_chars = len(text)
    bits = nats / LN2
    total_bits = bits * logp.numel()
    return TextScore(name, n_chars, len(ids), nats, math.exp(nats), bits, len(ids) / n_chars, total_bits / n_chars)
