"""Scoring a way of using a model on a task's test split: the answers, per-example metrics, intervals
over the split, and the error analysis (which kinds of wrong answer, and examples of each)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from roots_course.core.model import GPT
from roots_course.core.tokenizer import Tokenizer
from roots_course.errors import ConfigError
from roots_course.tasks.answering import generate_answers
from roots_course.tasks.metrics import Interval, bootstrap_ci, paired_difference_ci, rate_ci, ratio_statistic
from roots_course.tasks.prompting import answer_budget
from roots_course.tasks.task_types import Task


@dataclass
class TaskEval:
    """One way of using a model (e.g. few-shot, LoRA) on one task's test split, example by example."""

    task: Task
    method: str
    prompts: list[str]
    generations: list[str]
    predictions: list[str]
    scores: dict[str, list[float]]
    shots: float = 0.0  # mean demonstrations per prompt (few-shot only)

    def interval(self, metric: str, n_resamples: int = 1000, seed: int = 0) -> Interval:
        """The metric on the whole test split with its 95% interval. A rate (exact match, execution
        accuracy: 0 or 1 per example) gets the exact Clopper–Pearson interval, which stays honest at
        0/n and n/n; CER is pooled (total edits ÷ total reference characters) and gets the bootstrap,
        resampled as (edits, characters) pairs (n_resamples and seed serve the bootstrap only)."""
        if metric == "CER":
            records = torch.tensor(list(zip(self.scores["_edits"], self.scores["_chars"])))  # (N, 2)
            return bootstrap_ci(records, statistic=ratio_statistic, n_resamples=n_resamples, seed=seed)
        return rate_ci(self.scores[metric])

    def failures(self, limit: int = 5) -> list[dict[str, str]]:
        """The first ``limit`` test examples the headline metric marks wrong, with what went wrong."""
        rows = []
        for example, prediction, ok in zip(self.task.test, self.predictions, self.scores[self.task.metric]):
            if ok < 1 and len(rows) < limit:
                rows.append({"input": example.x, "reference": example.y, "prediction": prediction,
                             "error": self.task.error_kind(prediction, example)})
        return rows

    def error_counts(self) -> Counter:
        """How many wrong answers of each kind (see Task.error_kind)."""
        return Counter(self.task.error_kind(p, e) for e, p, ok in
                       zip(self.task.test, self.predictions, self.scores[self.task.metric]) if ok < 1)


def evaluate(model: GPT, tokenizer: Tokenizer, task: Task, prompts: Sequence[str], method: str,
             max_new_tokens: int | None = None, shots: float = 0.0) -> TaskEval:
    """Generate an answer for every test prompt, extract it, and score it against the reference."""
    if len(prompts) != len(task.test):
        raise ConfigError(f"need one prompt per test example: {len(prompts)} prompts, {len(task.test)} examples")
    max_new_tokens = max_new_tokens or answer_budget(task, tokenizer)
    generations = generate_answers(model, tokenizer, prompts, max_new_tokens)
    predictions = [task.extract(g) for g in generations]
    scores: dict[str, list[float]] = {}
    for prediction, example in zip(predictions, task.test):
        for key, value in task.score(prediction, example).items():
            scores.setdefault(key, []).append(value)
    return TaskEval(task, method, list(prompts), generations, predictions, scores, shots)


def majority_baseline(task: Task) -> float:
    """Exact match of always answering the commonest training answer: the score to beat."""
    commonest = Counter(e.y for e in task.train).most_common(1)[0][0]
    return sum(e.y == commonest for e in task.test) / len(task.test)


def paired_comparison(a: TaskEval, b: TaskEval, metric: str | None = None, n_resamples: int = 1000,
                      seed: int = 0) -> dict[str, float | int | str]:
    """Compare two ways of answering the *same* test examples: the paired bootstrap interval of
    score(a) − score(b), and how many examples only a, or only b, gets right.

    Two methods scored on the same items share the easy and the hard ones; the paired difference keeps
    that, so it can show a difference that two overlapping separate intervals hide (and the reverse).
    When the two agree on every example the difference is exactly 0 and so is its interval.
    """
    if a.task is not b.task and a.task.name != b.task.name:
        raise ConfigError(f"a paired comparison needs one task, got {a.task.name!r} and {b.task.name!r}")
    metric = metric or a.task.metric
    x, y = torch.tensor(a.scores[metric]), torch.tensor(b.scores[metric])  # (N,) each
    diff = paired_difference_ci(x, y, n_resamples=n_resamples, seed=seed)
    return {"a": a.method, "b": b.method, "metric": metric, "difference": diff.value, "low": diff.low,
            "high": diff.high, "only a right": int(((x >= 1) & (y < 1)).sum()),
            "only b right": int(((y >= 1) & (x < 1)).sum()), "n": diff.n,
            "verdict": ("a better" if diff.low > 0 else "b better" if diff.high < 0 else "not shown to differ")}
