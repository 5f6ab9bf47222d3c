"""A non-neural baseline for question answering: character n-grams of the name, logistic regression.

The question "Which module defines `b32hexdecode`?" may give its answer away by the *form* of the name
alone: `b32…` looks like base64, `getLevelName` like logging. A classifier that sees only the name's
spelling measures how much of a score needs no knowledge at all. Features: the counts of every character
n-gram (n = 1 … max_n) of the name between backticks, with "^" and "$" marking its start and end, over
the n-grams seen in training (others are dropped); each row scaled to unit length. Model: multinomial
logistic regression (one weight vector per module), fitted by full-batch gradient descent (Adam) on the
cross-entropy plus an L2 penalty, written in torch. No pretrained anything.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from roots_course.errors import ConfigError, DataError

NAME = re.compile(r"`([^`]+)`")


def question_name(question: str) -> str:
    """The name between backticks in a question ("Which module defines `dumps`?" -> "dumps")."""
    match = NAME.search(question)
    if match is None:
        raise DataError(f"no `name` in backticks in the question {question!r}")
    return match.group(1)


def char_ngrams(text: str, max_n: int = 4) -> list[str]:
    """Every character n-gram of "^text$" for n = 1 … max_n, with repeats."""
    if max_n < 1:
        raise ConfigError(f"max_n must be at least 1, got {max_n}")
    marked = f"^{text}$"
    return [marked[i : i + n] for n in range(1, max_n + 1) for i in range(len(marked) - n + 1)]


@dataclass
class NgramClassifier:
    """The fitted baseline: the n-gram vocabulary, the weights, and the labels they score."""

    vocabulary: dict[str, int]
    weight: Tensor  # (F, K)
    bias: Tensor  # (K,)
    labels: list[str]
    max_n: int
    losses: list[float]  # training loss, first and every 50th step, and last

    def features(self, texts: Sequence[str]) -> Tensor:
        """(N, F) unit-length n-gram count vectors of the names in ``texts`` (questions)."""
        return ngram_features([question_name(t) for t in texts], self.vocabulary, self.max_n)

    def predict(self, texts: Sequence[str]) -> list[str]:
        scores = self.features(texts) @ self.weight + self.bias  # (N, K)
        return [self.labels[i] for i in scores.argmax(dim=1).tolist()]


def ngram_features(names: Sequence[str], vocabulary: dict[str, int], max_n: int) -> Tensor:
    """(N, F) counts of the vocabulary's n-grams in each name, each row divided by its length."""
    x = torch.zeros(len(names), len(vocabulary))
    for row, name in enumerate(names):
        for gram in char_ngrams(name, max_n):
            column = vocabulary.get(gram)
            if column is not None:
                x[row, column] += 1
    return F.normalize(x, dim=1)


def fit_ngram_classifier(questions: Sequence[str], answers: Sequence[str], max_n: int = 4, steps: int = 300,
                         lr: float = 0.1, l2: float = 1e-3, seed: int = 0) -> NgramClassifier:
    """Fit the baseline on training questions and their answers (module names)."""
    if len(questions) != len(answers) or not questions:
        raise DataError(f"need as many questions as answers, at least one; got {len(questions)} and {len(answers)}")
    names = [question_name(q) for q in questions]
    vocabulary: dict[str, int] = {}
    for name in names:
        for gram in char_ngrams(name, max_n):
            vocabulary.setdefault(gram, len(vocabulary))
    labels = sorted(set(answers))
    y = torch.tensor([labels.index(a) for a in answers])  # (N,)
    x = ngram_features(names, vocabulary, max_n)  # (N, F)
    generator = torch.Generator().manual_seed(seed)
    weight = (0.01 * torch.randn(len(vocabulary), len(labels), generator=generator)).requires_grad_()
    bias = torch.zeros(len(labels), requires_grad=True)
    optimizer = torch.optim.Adam([weight, bias], lr=lr)
    losses = []
    for step in range(steps):
        loss = F.cross_entropy(x @ weight + bias, y) + l2 * weight.pow(2).sum()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % 50 == 0 or step == steps - 1:
            losses.append(loss.item())
    return NgramClassifier(vocabulary, weight.detach(), bias.detach(), labels, max_n, losses)
