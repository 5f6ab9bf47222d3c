"""Chapter 3's experiments: every decoding strategy of roots_course.core.generate run on the same prompts
and measured the same way, and the KV cache timed and sized.

    prompts (held-out prose, code starts) --Strategy.decode--> continuations --summarize--> one row each

A comparison of decoding strategies is only fair when the strategies see the same prompts, write
the same number of tokens, and are measured on sets of the same size (distinct-n falls as a set
grows). So every strategy writes exactly ``max_new_tokens`` tokens per prompt (no stop sequence),
and a sampling strategy, which gives a different text each time, is run for several *rounds* of
one continuation per prompt; set-level numbers are computed per round and averaged.
"""

from __future__ import annotations

import math
import random
import re
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from roots_course.core.generate import beam_search, generate
from roots_course.core.model import GPT
from roots_course.errors import ConfigError
from roots_course.output.decoding_metrics import (
    continuation_log_prob,
    distinct_n,
    looks_generated,
    perplexity,
    python_rates,
    repetition_rate,
)

REFERENCE = "held-out text"  # the name of the rows that hold what really followed a prompt

# ---- strategies -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Strategy:
    """One way of choosing tokens, with its settings; ``decode`` runs it."""

    name: str
    method: str  # "greedy" | "sample" | "beam"
    temperature: float = 1.0
    top_k: int | None = None
    top_p: float | None = None
    repetition_penalty: float = 1.0
    beam_width: int = 4

    def __post_init__(self) -> None:
        if self.method not in ("greedy", "sample", "beam"):
            raise ConfigError(f"Strategy.method must be 'greedy', 'sample' or 'beam', got {self.method!r}")

    @property
    def stochastic(self) -> bool:
        """True when two runs can give different texts (only sampling draws random numbers)."""
        return self.method == "sample"

    def settings(self) -> str:
        """The settings in words, e.g. 'T=0.7, top-p 0.9'."""
        if self.method == "beam":
            return f"width {self.beam_width}"
        parts = [] if self.method == "greedy" else [f"T={self.temperature:g}"]
        if self.method == "sample" and self.top_k is not None:
            parts.append(f"top-k {self.top_k}")
        if self.method == "sample" and self.top_p is not None:
            parts.append(f"top-p {self.top_p:g}")
        if self.repetition_penalty != 1.0:
            parts.append(f"repetition penalty {self.repetition_penalty:g}")
        return ", ".join(parts) or "argmax"

    def decode(self, model: GPT, prompt_ids: Sequence[int], max_new_tokens: int, *,
               generator: torch.Generator | None = None, use_cache: bool = True) -> list[int]:
        """The new token ids (exactly max_new_tokens of them: no stop sequence is used)."""
        if self.method == "beam":
            return beam_search(model, prompt_ids, max_new_tokens, beam_width=self.beam_width, use_cache=use_cache)
        return generate(model, prompt_ids, max_new_tokens, temperature=self.temperature, top_k=self.top_k,
                        top_p=self.top_p, repetition_penalty=self.repetition_penalty,
                        greedy=self.method == "greedy", use_cache=use_cache, generator=generator)


def standard_strategies(top_k: int = 40, top_p: float = 0.9, beam_width: int = 4,
                        repetition_penalty: float = 1.3) -> list[Strategy]:
    """The chapter's line-up, from the most conservative to the most adventurous."""
    return [
        Strategy("beam search", "beam", beam_width=beam_width),
        Strategy("greedy", "greedy"),
        Strategy("greedy + repetition penalty", "greedy", repetition_penalty=repetition_penalty),
        Strategy("temperature 0.7", "sample", temperature=0.7),
        Strategy(f"top-k {top_k}", "sample", top_k=top_k),
        Strategy(f"top-p {top_p:g}", "sample", top_p=top_p),
        Strategy("temperature 1.0 (pure sampling)", "sample", temperature=1.0),
        Strategy("temperature 1.5", "sample", temperature=1.5),
    ]


# ---- prompts --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Prompt:
    """A prompt and, when known, the tokens that really followed it in unseen text."""

    kind: str  # "prose" | "code"
    text: str
    ids: tuple[int, ...]
    reference: tuple[int, ...] = ()  # what followed it in held-out text; () when unknown
    source: str = ""  # where the prompt and its reference come from


_WORD = re.compile(r"\S+")


def prose_prompts(texts: Sequence[str], sources: Sequence[str], tokenizer, n: int, words: int = 4,
                  reference_tokens: int = 32) -> list[Prompt]:
    """The first `words` words of held-out documents as prompts (every len(texts) // n-th document, so
    they come from all over the split); the tokens that follow them in the document are the reference. Documents too short to give a prompt and a full
    reference, and prompts already taken (many codec modules open with the same words), are skipped.
    The prompt ends at the end of a word: the space before the next word belongs to the next token.
    """
    if n < 1 or words < 1:
        raise ConfigError(f"n and words must be >= 1, got n={n}, words={words}")
    prompts: list[Prompt] = []
    seen: set[str] = set()
    step = max(1, len(texts) // n)  # spread the prompts over the whole split, then fill in if needed
    order = list(range(0, len(texts), step)) + [i for i in range(len(texts)) if i % step]
    for text, source in ((texts[i], sources[i]) for i in order):
        found = list(_WORD.finditer(text[:2000], 0))
        if len(found) <= words:
            continue
        end = found[words - 1].end()
        prompt_text = text[:end]
        reference = tokenizer.encode(text[end:])[:reference_tokens]
        if prompt_text in seen or len(reference) < reference_tokens:
            continue
        seen.add(prompt_text)
        prompts.append(Prompt("prose", prompt_text, tuple(tokenizer.encode(prompt_text)), tuple(reference), source))
        if len(prompts) == n:
            break
    return prompts


def code_prompts(starts: Sequence[str], tokenizer, code_texts: Sequence[str] = (),
                 code_sources: Sequence[str] = (), reference_tokens: int = 32, *,
                 seed: int | None = None, preferred: int = 0,
                 skip_generated: bool = True) -> list[Prompt]:
    """Prompts that begin a line of Python, each with a reference from a different module.

    The reference of a prompt is the code that follows an occurrence of the prompt at the start of a
    line (after any indentation, and not as part of a longer name) whose block yields at least
    `reference_tokens` tokens; none if no occurrence does. See indented_block for how the block is cut
    out. So that the references show several kinds of code:

    - each module serves at most one prompt;
    - generated, table-like modules (looks_generated: codec tables and the like) are skipped when
      `skip_generated`;
    - with a `seed`, the modules are visited in a seeded random order; the first `preferred` of them
      (held-out modules, say) are still all visited before the others.
    """
    if not 0 <= preferred <= len(code_texts):
        raise ConfigError(f"preferred must lie in 0..{len(code_texts)}, got {preferred}")
    names = list(code_sources) or [""] * len(code_texts)
    order = list(range(len(code_texts)))
    if seed is not None:
        rng = random.Random(seed)
        first, rest = order[:preferred], order[preferred:]
        rng.shuffle(first)
        rng.shuffle(rest)
        order = first + rest
    if skip_generated:
        order = [i for i in order if not looks_generated(code_texts[i])]
    used: set[int] = set()
    prompts = []
    for start in starts:
        if start != start.rstrip():
            raise ConfigError(f"code prompt {start!r} ends with whitespace: with a BPE tokenizer the space "
                              "belongs to the next word's token, so the model would rarely have seen it alone")
        pattern = re.compile(r"^([ \t]*)" + re.escape(start) + r"(?![A-Za-z0-9_])", re.MULTILINE)
        reference: tuple[int, ...] = ()
        source = ""
        for i in (i for i in order if i not in used):
            text = code_texts[i]
            for match in pattern.finditer(text):
                following = tokenizer.encode(indented_block(text, match.end(), match.group(1)))
                if len(following) >= reference_tokens:
                    reference, source = tuple(following[:reference_tokens]), names[i]
                    used.add(i)
                    break
            if reference:
                break
        prompts.append(Prompt("code", start, tuple(tokenizer.encode(start)), reference, source))
    return prompts


def indented_block(text: str, position: int, indent: str, max_lines: int = 40) -> str:
    """The rest of the line at `position`, then the following lines as long as they are blank or start
    with `indent`, with that indentation removed: what follows a statement indented by `indent`,
    moved to the left margin like the prompt (which has no indentation). It stops at the first line
    indented less, where the statement's block ends."""
    lines = text[position:].split("\n")
    out = [lines[0]]
    for line in lines[1:max_lines]:
        if line.strip() and not line.startswith(indent):
            break
        out.append(line[len(indent):] if line.strip() else "")
    return "\n".join(out)


# ---- running the comparison -----------------------------------------------------------------------


@dataclass(frozen=True)
class Continuation:
    """One text a strategy wrote for one prompt (or, for REFERENCE, the text that really followed)."""

    strategy: str
    prompt: Prompt
    round: int
    ids: tuple[int, ...]
    text: str
    log_prob: float  # log p(ids | prompt) under the raw model (T = 1, no filter), nats
    seconds: float = 0.0  # time the strategy took to write it


def run_strategies(model: GPT, tokenizer, prompts: Sequence[Prompt], strategies: Sequence[Strategy],
                   max_new_tokens: int, rounds: int = 2, seed: int = 0,
                   say: Callable[[str], None] | None = None) -> list[Continuation]:
    """Every strategy on every prompt: one round for a deterministic strategy, `rounds` for a sampling one.

    Round r of every sampling strategy draws from a generator seeded with seed + r and used for the
    prompts in order, so strategies are compared on the same random numbers (less noise in the
    comparison) and each prompt gets fresh ones.
    """
    if rounds < 1 or max_new_tokens < 1:
        raise ConfigError(f"rounds and max_new_tokens must be >= 1, got {rounds}, {max_new_tokens}")
    device = model.tok_emb.weight.device
    out: list[Continuation] = []
    for strategy in strategies:
        started = time.perf_counter()
        for r in range(rounds if strategy.stochastic else 1):
            generator = torch.Generator(device=device).manual_seed(seed + r)
            for prompt in prompts:
                t0 = time.perf_counter()
                ids = strategy.decode(model, prompt.ids, max_new_tokens, generator=generator)
                seconds = time.perf_counter() - t0
                out.append(Continuation(strategy.name, prompt, r, tuple(ids), tokenizer.decode(ids),
                                        continuation_log_prob(model, prompt.ids, ids), seconds))
        if say is not None:
            say(f"{strategy.name}: {time.perf_counter() - started:.1f} s")
    return out


def reference_continuations(model: GPT, tokenizer, prompts: Sequence[Prompt],
                            max_new_tokens: int) -> list[Continuation]:
    """The held-out text after each prompt that has one, cut to max_new_tokens, scored like the rest."""
    out = []
    for prompt in prompts:
        ids = prompt.reference[:max_new_tokens]
        if ids:
            out.append(Continuation(REFERENCE, prompt, 0, ids, tokenizer.decode(ids),
                                    continuation_log_prob(model, prompt.ids, ids)))
    return out


def summarize(continuations: Sequence[Continuation], repetition_n: int = 4) -> list[dict]:
    """One row per strategy (in order of first appearance) with the chapter's measures:

    - perplexity: exp(-total log-prob / total tokens) of all its continuations under the model;
    - distinct-1, distinct-2: per round (one continuation per prompt), then averaged over rounds;
    - repetition: share of repeated `repetition_n`-grams within each continuation, pooled;
    - parses / valid so far (code prompts only): the prompt plus continuation, cut to complete lines,
      is a complete Python module / at least a valid beginning of one, and the continuation is not
      blank (decoding_metrics.code_status);
    - ms per token: the time it took to write them (the held-out text took none).
    """
    names = list(dict.fromkeys(c.strategy for c in continuations))
    rows = []
    for name in names:
        mine = [c for c in continuations if c.strategy == name]
        rounds = sorted({c.round for c in mine})
        by_round = [[c.ids for c in mine if c.round == r] for r in rounds]
        tokens = sum(len(c.ids) for c in mine)
        code = [(c.prompt.text, c.text) for c in mine if c.prompt.kind == "code"]
        parses, valid = python_rates(code) if code else (float("nan"), float("nan"))
        seconds = sum(c.seconds for c in mine)
        rows.append({
            "strategy": name,
            "continuations": len(mine),
            "tokens": tokens,
            "perplexity": perplexity(sum(c.log_prob for c in mine), tokens),
            "log-prob per token": sum(c.log_prob for c in mine) / tokens,
            "distinct-1": statistics.fmean(distinct_n(ids, 1) for ids in by_round),
            "distinct-2": statistics.fmean(distinct_n(ids, 2) for ids in by_round),
            f"repetition ({repetition_n}-grams)": repetition_rate([c.ids for c in mine], repetition_n),
            "parses": parses,
            "valid so far": valid,
            "ms per token": 1000 * seconds / tokens if seconds else float("nan"),
        })
    return rows


def best(rows: Sequence[dict], column: str, highest: bool, exclude: Sequence[str] = (REFERENCE,)) -> dict:
    """The row that wins on `column` (rows named in `exclude`, and NaN values, do not compete)."""
    contenders = [r for r in rows if r["strategy"] not in exclude and r[column] == r[column]]
    if not contenders:
        raise ConfigError(f"no row has a value for {column!r}")
    return (max if highest else min)(contenders, key=lambda r: r[column])


def closest(rows: Sequence[dict], column: str, target: float, log: bool = False,
            exclude: Sequence[str] = (REFERENCE,)) -> dict:
    """The row whose `column` is nearest to `target` (on a log scale with log=True, for perplexities)."""

    def gap(r: dict) -> float:
        return abs(math.log(r[column] / target)) if log else abs(r[column] - target)

    return min((r for r in rows if r["strategy"] not in exclude), key=gap)


# ---- the KV cache ---------------------------------------------------------------------------------


def kv_bytes_per_token(n_layer: int, n_embd: int, bytes_per_value: int, n_kv_heads: int | None = None,
                       head_dim: int | None = None) -> int:
    """Memory the KV cache needs for one more token of context (one sequence):

        2 (a key and a value) x n_layer x n_embd x bytes per value

    Every layer keeps one key and one value vector of n_embd numbers for every token. Models with
    grouped-query attention share keys and values between query heads: pass n_kv_heads and
    head_dim, and the width n_kv_heads x head_dim replaces n_embd.
    """
    width = n_embd if n_kv_heads is None else n_kv_heads * (head_dim or 0)
    if min(n_layer, width, bytes_per_value) < 1:
        raise ConfigError("n_layer, the key/value width and bytes_per_value must be positive")
    return 2 * n_layer * width * bytes_per_value


def measured_kv_bytes_per_token(model: GPT, tokens: int | None = None) -> float:
    """What the library's KVCache allocates for one sequence of `tokens` positions (default: the whole
    context window), divided by `tokens`."""
    tokens = tokens or model.config.block_size
    return model.make_cache(1, max_len=tokens).memory_bytes() / tokens


def timing_lengths(block_size: int, prompt_tokens: int, points: int) -> list[int]:
    """`points` generation lengths spread evenly up to what fits in the window after the prompt."""
    room = block_size - prompt_tokens
    if room < 1 or points < 1:
        raise ConfigError(f"no room to generate: block_size={block_size}, prompt of {prompt_tokens} tokens")
    return sorted({max(1, round(room * (k + 1) / points)) for k in range(points)})


def _synchronize(model: GPT) -> None:
    device = model.tok_emb.weight.device
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def time_kv_cache(model: GPT, prompt_ids: Sequence[int], lengths: Sequence[int], repeats: int = 3) -> list[dict]:
    """Greedy decoding with and without the cache, for each number of new tokens in `lengths`.

    Each point is timed `repeats` times and the fastest run kept: on a shared machine the slow runs
    measure the neighbours, not the code. Greedy decoding makes the two runs comparable token for
    token: `same tokens` says whether they wrote exactly the same text.
    """
    if repeats < 1:
        raise ConfigError(f"repeats must be >= 1, got {repeats}")
    generate(model, prompt_ids, 2, greedy=True)  # warm-up: first calls pay one-off costs
    generate(model, prompt_ids, 2, greedy=True, use_cache=False)
    rows = []
    for n in lengths:
        best_s = {True: float("inf"), False: float("inf")}
        outputs = {}
        for _ in range(repeats):
            for use_cache in (True, False):
                _synchronize(model)
                t0 = time.perf_counter()
                outputs[use_cache] = generate(model, prompt_ids, n, greedy=True, use_cache=use_cache)
                _synchronize(model)
                best_s[use_cache] = min(best_s[use_cache], time.perf_counter() - t0)
        rows.append({
            "new tokens": n,
            "context at the end": len(prompt_ids) + n,
            "tokens/s with cache": n / best_s[True],
            "tokens/s without cache": n / best_s[False],
            "speed-up": best_s[False] / best_s[True],
            "same tokens": outputs[True] == outputs[False],
        })
    return rows
