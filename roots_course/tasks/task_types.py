"""An example, a task, and the four kinds of task: how each is posed (query, answer prefix), how an
answer is read out of a generation, scored, and labelled when it is wrong."""

from __future__ import annotations

import hashlib
import random
import re
from dataclasses import dataclass, field
from typing import Any

from roots_course.tasks.metrics import edit_distance, exact_match, normalize
from roots_course.tasks.numerals import parse_chinese_numeral
from roots_course.tasks.sandbox import run_expression

STOP = "\n"  # every answer is one line: a prompt's answer ends at the first newline


def seeded_rng(seed: int, name: str) -> random.Random:
    """A random source for one named use (a split, a shuffle, a draw of demonstrations): independent of
    every other name, the same for the same seed and name on every machine."""
    return random.Random(int.from_bytes(hashlib.sha256(f"{seed}:{name}".encode()).digest()[:8], "big"))


@dataclass(frozen=True)
class Example:
    """One input and its reference answer; ``group`` is the unit held out (a number, a name, a line)."""

    x: str
    y: str
    group: str


@dataclass
class Task:
    """A task family: its examples and how to pose and score them.

    A prompt is ``instruction`` + demonstrations + ``query(x)``; the model's answer should be
    ``answer_prefix + y`` followed by a newline. ``metrics`` are computed per example by ``score``;
    ``metric`` is the headline one.
    """

    name: str
    title: str
    instruction: str
    train: list[Example]
    test: list[Example]
    metrics: tuple[str, ...] = ("exact match",)
    answer_prefix: str = " "
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def metric(self) -> str:
        return self.metrics[0]

    def query(self, x: str) -> str:
        return x

    def target(self, y: str) -> str:
        """The text the model should write after the prompt (the stop newline not included)."""
        return self.answer_prefix + y

    def extract(self, generation: str) -> str:
        """The answer inside a generation: its first line, trimmed."""
        return generation.split(STOP, 1)[0].strip()

    def score(self, prediction: str, example: Example) -> dict[str, float]:
        return {"exact match": exact_match(prediction, example.y)}

    def error_kind(self, prediction: str, example: Example) -> str:
        """A short label for what went wrong (for the error analysis)."""
        return "empty answer" if not prediction else "wrong answer"


class TextTask(Task):
    """Next word of a held-out line: the task pretraining itself trains, posed as a prompt."""

    def extract(self, generation: str) -> str:
        match = re.match(r"\s*([A-Za-z]+)", generation.split(STOP, 1)[0])  # the first word, punctuation dropped
        return match.group(1) if match else ""

    def error_kind(self, prediction: str, example: Example) -> str:
        if not prediction:
            return "no word"
        if prediction.lower() == example.y.lower():
            return "right word, wrong case"
        return "another word"


class TranslationTask(Task):
    def query(self, x: str) -> str:
        return f"{x} ="

    def score(self, prediction: str, example: Example) -> dict[str, float]:
        edits = edit_distance(normalize(prediction), example.y)
        return {"exact match": exact_match(prediction, example.y), "CER": edits / len(example.y),
                "_edits": float(edits), "_chars": float(len(example.y))}

    def error_kind(self, prediction: str, example: Example) -> str:
        if not prediction:
            return "empty answer"
        value = parse_chinese_numeral(prediction)
        if value is None:
            return "not a well-formed numeral"
        return "a numeral, but of another number"


class QATask(Task):
    def query(self, x: str) -> str:
        return f"Q: {x}\nA:"

    def error_kind(self, prediction: str, example: Example) -> str:
        if not prediction:
            return "empty answer"
        if prediction in self.info.get("modules", ()):
            return "another module of the knowledge base"
        return "not a module of the knowledge base"


class CodeTask(Task):
    def query(self, x: str) -> str:
        return f"# {x}\n"

    def score(self, prediction: str, example: Example) -> dict[str, float]:
        ok, value = run_expression(prediction)
        _, expected = run_expression(example.y)
        runs_right = ok and type(value) is type(expected) and value == expected
        return {"execution accuracy": float(runs_right), "exact match": exact_match(prediction, example.y)}

    def error_kind(self, prediction: str, example: Example) -> str:
        if not prediction:
            return "empty answer"
        ok, value = run_expression(prediction)
        if not ok:
            return "does not parse" if value == "SyntaxError" else "not allowed or fails when run"
        return "runs, wrong value"
