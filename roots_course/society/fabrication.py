"""Fabrication: when the model names things that do not exist, and how sure it is when it is wrong.

A language model writes the likely continuation, not the true one. Two checks make that concrete on
facts a computer can verify:

- **Fabricated APIs.** Prompt ``import json\\njson.`` or ``from json import `` and let the model name an
  attribute. Whether ``json`` has it is a fact the running Python settles (``importlib`` and
  ``hasattr``), so every name is either real or made up. A made-up name that never occurs in the
  training text was *invented*; a real-looking name that exists in another module was *misattributed*.
- **Confident wrong answers.** For questions with a known answer, the probability the model gives its
  own answer (the product of its tokens' probabilities) against whether the answer is right. A model is
  *calibrated* when answers given with probability p are right about a share p of the time; the
  expected calibration error (ECE) is the gap, averaged over bins of confidence. For a closed set of
  answers (labels), every label is scored and the softmax over them gives the confidence; temperature
  scaling (Guo et al. 2017) then fits one divisor of the scores on held-out items.

Only modules from a fixed list of the standard library are ever imported: a generated name is looked up,
never imported, so nothing the model writes is run.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from roots_course.errors import ConfigError
from roots_course.society.memorization import continue_batch
from roots_course.core.tokenizer import Tokenizer
from roots_course.core.modes import evaluating
from roots_course.tasks import classify

# Standard-library modules that import quickly and without side effects. Only these are imported.
SAFE_MODULES: tuple[str, ...] = (
    "json", "os", "re", "math", "random", "string", "time", "datetime", "collections", "itertools", "functools",
    "pathlib", "shutil", "textwrap", "statistics", "heapq", "bisect", "copy", "csv", "logging", "socket",
    "threading", "typing", "base64", "hashlib", "inspect", "io", "sys", "glob", "fnmatch", "tempfile", "calendar",
    "decimal", "fractions", "operator", "struct", "uuid", "argparse", "enum", "dataclasses", "contextlib",
    "weakref", "traceback", "warnings", "pprint", "difflib", "gzip", "zipfile", "tarfile", "subprocess",
    "unittest", "codecs", "locale", "platform", "array", "queue", "sched", "secrets", "shlex", "binascii",
)
# Prompts in the form of the doctest lines the docstrings are full of.
FORMS = {"attribute": ">>> import {m}\n>>> {m}.", "from-import": ">>> from {m} import "}
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def first_identifier(text: str) -> str:
    """The Python identifier ``text`` starts with ('' when it starts with anything else)."""
    match = _IDENTIFIER.match(text)
    return match.group(0) if match else ""


def attribute_exists(module: str, name: str) -> bool:
    """Whether standard-library ``module`` (one of SAFE_MODULES) has attribute ``name``."""
    if module not in SAFE_MODULES:
        raise ConfigError(f"only modules of SAFE_MODULES are imported; {module!r} is not one of them")
    return bool(name) and hasattr(importlib.import_module(module), name)


def _token_count_for(tokenizer: Tokenizer, ids: Sequence[int], n_chars: int) -> int:
    """The fewest leading tokens of ``ids`` whose text covers the first ``n_chars`` characters."""
    for k in range(1, len(ids) + 1):
        if len(tokenizer.decode(list(ids[:k]))) >= n_chars:
            return k
    return len(ids)


def name_start_tokens(tokenizer: Tokenizer) -> torch.Tensor:
    """(V,) bool: the tokens whose text starts with a letter or an underscore (can begin a name)."""
    return torch.tensor([bool(_IDENTIFIER.match(tokenizer.decode([i]))) for i in range(tokenizer.vocab_size)])


@torch.inference_mode()
def greedy_by_length(model, tokenizer: Tokenizer, prompts: Sequence[str], steps: int,
                     first_allowed: torch.Tensor | None = None) -> list[tuple[list[int], list[float]]]:
    """Greedy continuations of prompts of any lengths: prompts of equal token length go through
    ``continue_batch`` together (no padding). Returns (token ids, their probabilities) per prompt.

    A prompt longer than the window leaves room for keeps only its last tokens.
    ``first_allowed`` (V,) bool: the first token is the most likely *allowed* one (e.g. one that can
    begin a name); its reported probability is still the model's unconstrained one.
    """
    room = model.config.block_size - steps  # a prompt keeps its last `room` tokens
    if room < 1:
        raise ConfigError(f"{steps} new tokens leave no room for a prompt in a {model.config.block_size}-token window")
    encoded = [tokenizer.encode(p)[-room:] for p in prompts]
    out: list[tuple[list[int], list[float]]] = [([], [])] * len(prompts)
    groups: dict[int, list[int]] = {}
    for i, ids in enumerate(encoded):
        groups.setdefault(len(ids), []).append(i)
    device = model.tok_emb.weight.device
    for rows in groups.values():
        batch = torch.tensor([encoded[i] for i in rows])  # (b, length)
        head_ids = head_probs = None
        if first_allowed is not None:
            with evaluating(model):
                probs = model(batch.to(device)).logits[:, -1].float().softmax(dim=-1).cpu()  # (b, V)
            head_ids = probs.masked_fill(~first_allowed, -1.0).argmax(dim=-1)  # (b,)
            head_probs = probs.gather(1, head_ids[:, None])  # (b, 1)
            batch = torch.cat([batch, head_ids[:, None]], dim=1)
        written, probs = continue_batch(model, batch, steps - (first_allowed is not None))
        if head_ids is not None:
            written, probs = torch.cat([head_ids[:, None], written], 1), torch.cat([head_probs, probs], 1)
        for r, i in enumerate(rows):
            out[i] = (written[r].tolist(), probs[r].tolist())
    return out


@dataclass
class ApiCompletion:
    module: str
    form: str
    written: str  # the text the model wrote after the prompt
    name: str  # the identifier it starts with
    exists: bool  # the module has that attribute
    in_training_text: bool  # the name occurs as a word in the training text
    probability: float  # the model's probability of the tokens that spell the name

    @property
    def verdict(self) -> str:
        if not self.name:
            return "no name"
        if self.exists:
            return "real"
        return "misattributed (a word of the training text)" if self.in_training_text else "invented"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "verdict": self.verdict}


def complete_apis(model, tokenizer: Tokenizer, modules: Sequence[str], training_text: str,
                  max_new_tokens: int = 8) -> list[ApiCompletion]:
    """One greedy completion per module and prompt form (FORMS), each checked against the module.

    We ask for a name: the first token is the most likely of those that can begin one (otherwise a small
    model often answers with a newline). The name's probability is the model's own, unconstrained."""
    jobs = [(m, form, template.format(m=m)) for m in modules for form, template in FORMS.items()]
    results = greedy_by_length(model, tokenizer, [p for _, _, p in jobs], max_new_tokens,
                               first_allowed=name_start_tokens(tokenizer))
    vocabulary = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", training_text))
    out = []
    for (module, form, _), (ids, probs) in zip(jobs, results):
        written = tokenizer.decode(ids)
        name = first_identifier(written)
        k = _token_count_for(tokenizer, ids, len(name)) if name else 0
        probability = float(torch.tensor(probs[:k], dtype=torch.float64).prod()) if k else 0.0
        out.append(ApiCompletion(module, form, written, name, attribute_exists(module, name),
                                 name in vocabulary, probability))
    return out


# ---------------------------------------------------------------------------------------------
# Confidence against correctness
# ---------------------------------------------------------------------------------------------


def answers_with_confidence(model, tokenizer: Tokenizer, prompts: Sequence[str], max_new_tokens: int,
                            stop: str = "\n") -> list[tuple[str, float]]:
    """Greedy answer (text before ``stop``, trimmed) and its probability: the product of the
    probabilities of the tokens written up to and including the one that holds ``stop``."""
    out = []
    for ids, probs in greedy_by_length(model, tokenizer, prompts, max_new_tokens):
        cut = next((k + 1 for k, t in enumerate(ids) if stop in tokenizer.decode([t])), len(ids))
        text = tokenizer.decode(ids[:cut]).split(stop, 1)[0].strip()
        out.append((text, float(torch.tensor(probs[:cut], dtype=torch.float64).prod())))
    return out


def reliability(confidences: Sequence[float], correct: Sequence[bool], bins: int = 5) -> list[dict[str, float]]:
    """Answers grouped into ``bins`` equal-width bins of confidence: per bin the count, the mean
    confidence and the share right (NaN for an empty bin)."""
    if len(confidences) != len(correct):
        raise ConfigError(f"{len(confidences)} confidences for {len(correct)} answers")
    rows = []
    for b in range(bins):
        lo, hi = b / bins, (b + 1) / bins
        members = [(c, r) for c, r in zip(confidences, correct) if lo <= c < hi or (b == bins - 1 and c == 1.0)]
        n = len(members)
        rows.append({"from": lo, "to": hi, "answers": n,
                     "mean confidence": sum(c for c, _ in members) / n if n else float("nan"),
                     "share right": sum(r for _, r in members) / n if n else float("nan")})
    return rows


def expected_calibration_error(confidences: Sequence[float], correct: Sequence[bool], bins: int = 5) -> float:
    """Σ over bins of (answers in bin / all answers) × |share right − mean confidence| (Guo et al. 2017)."""
    total = len(confidences)
    if not total:
        raise ConfigError("no answers to calibrate")
    return sum(row["answers"] / total * abs(row["share right"] - row["mean confidence"])
               for row in reliability(confidences, correct, bins) if row["answers"])


# ---------------------------------------------------------------------------------------------
# Confidence over a closed set of labels, and temperature scaling
# ---------------------------------------------------------------------------------------------


@torch.inference_mode()
def label_logprobs(model, tokenizer: Tokenizer, prompts: Sequence[str], labels: Sequence[str],
                   suffix: str = "\n") -> Tensor:
    """(N, K) log P(label + suffix | prompt) in nats, for every prompt and every candidate label.

    A language model scored this way answers a closed question: its prediction is the most likely
    label and its confidence the softmax of these scores over the labels. The labels of one prompt go
    through the model as one right-padded batch (padding after a sequence cannot change it: the
    attention is causal)."""
    if not prompts or not labels:
        raise ConfigError(f"need prompts and labels, got {len(prompts)} prompts and {len(labels)} labels")
    device = model.tok_emb.weight.device
    block = model.config.block_size
    tails = [tokenizer.encode(label + suffix) for label in labels]
    out = torch.empty(len(prompts), len(labels), dtype=torch.float64)
    with evaluating(model):
        for i, prompt in enumerate(prompts):
            head = tokenizer.encode(prompt)
            rows = [(head + tail)[-(block + 1):] for tail in tails]
            width = max(len(r) for r in rows)
            x = torch.zeros(len(rows), width, dtype=torch.long)  # (K, width), right-padded
            for k, r in enumerate(rows):
                x[k, : len(r)] = torch.tensor(r)
            logp = F.log_softmax(model(x[:, :-1].to(device)).logits.float(), dim=-1).cpu()  # (K, width-1, V)
            for k, (r, tail) in enumerate(zip(rows, tails)):
                n = min(len(tail), len(r) - 1)
                targets = torch.tensor(r[-n:])  # (n,)
                out[i, k] = float(logp[k, len(r) - 1 - n : len(r) - 1].gather(1, targets[:, None]).sum())
    return out


@torch.inference_mode()
def classifier_logits(classifier: classify.GPTClassifier, tokenizer: Tokenizer, texts: Sequence[str]) -> Tensor:
    """(N, K) the logits of chapter 4's classification head for each text, in its label order."""
    x, lengths = classify.encode_texts(tokenizer, list(texts), classifier.backbone.config.block_size)
    device = classifier.head.weight.device
    with evaluating(classifier):
        return classifier(x[:, : int(lengths.max())].to(device), lengths).double().cpu()


def label_confidence(logits: Tensor, temperature: float = 1.0) -> tuple[Tensor, Tensor]:
    """(prediction (N,), confidence (N,)): the argmax label and its probability under
    softmax(logits / temperature). A temperature never changes the prediction, only the confidence."""
    if temperature <= 0:
        raise ConfigError(f"temperature must be positive, got {temperature}")
    probs = (logits.double() / temperature).softmax(dim=-1)  # (N, K)
    confidence, prediction = probs.max(dim=-1)
    return prediction, confidence


def fit_temperature(logits: Tensor, labels: Tensor, low: float = 0.05, high: float = 100.0,
                    points: int = 400) -> float:
    """Temperature scaling (Guo et al. 2017): the T that minimises the negative log-likelihood of
    softmax(logits / T) on labelled items, found on a logarithmic grid from ``low`` to ``high``.
    T = 1 (the scores as they are) is always a candidate, so the fit is never worse than no scaling
    on the items it was fitted on. Fit it on held-out items that are not the test items, then apply it
    to the test items."""
    if logits.dim() != 2 or labels.shape != logits.shape[:1]:
        raise ConfigError(f"logits (N, K) and labels (N,) expected, got {tuple(logits.shape)}, {tuple(labels.shape)}")
    grid = torch.logspace(float(torch.log10(torch.tensor(low))), float(torch.log10(torch.tensor(high))), points,
                          dtype=torch.float64)
    grid = torch.cat([grid, torch.ones(1, dtype=torch.float64)])  # (points + 1,): T = 1 is a candidate
    nll = torch.stack([F.cross_entropy(logits.double() / t, labels) for t in grid])  # (points + 1,)
    return float(grid[int(nll.argmin())])
