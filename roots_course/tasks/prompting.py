"""Prompts that pose a task to a model: an instruction line, optional demonstrations from the training
split fitted into a token budget, then the query; and how many new tokens an answer may need."""

from __future__ import annotations

from collections.abc import Sequence

from roots_course.core.tokenizer import Tokenizer
from roots_course.tasks.task_types import STOP, Example, Task, seeded_rng


def demonstration(task: Task, example: Example) -> str:
    """One solved example, as it appears in a few-shot prompt: query, answer, newline."""
    return task.query(example.x) + task.target(example.y) + STOP


def zero_shot_prompt(task: Task, x: str, instruction: bool = True) -> str:
    """The instruction line (a task description, as in Brown et al. 2020) and the query."""
    return (task.instruction + STOP if instruction else "") + task.query(x)


def few_shot_prompt(task: Task, x: str, demos: Sequence[Example], tokenizer: Tokenizer | None = None,
                    budget: int | None = None) -> tuple[str, int]:
    """Instruction, then as many of ``demos`` as fit in ``budget`` tokens, then the query.

    Returns (prompt, number of demonstrations used). Without a tokenizer and budget every demo is used.
    Demonstrations are added in order and the first that would overflow the budget ends the list, so
    a small context window silently turns few-shot into one-shot or zero-shot: the count says so.
    """
    prompt, used = zero_shot_prompt(task, x), 0
    head = task.instruction + STOP
    for k in range(1, len(demos) + 1):
        candidate = head + "".join(demonstration(task, d) for d in demos[:k]) + task.query(x)
        if tokenizer is not None and budget is not None and len(tokenizer.encode(candidate)) > budget:
            break
        prompt, used = candidate, k
    return prompt, used


def zero_shot_prompts(task: Task) -> list[str]:
    """The zero-shot prompt of every test example (also the prompt the fine-tuned models are trained on)."""
    return [zero_shot_prompt(task, e.x) for e in task.test]


def few_shot_prompts(task: Task, tokenizer: Tokenizer, shots: int, budget: int,
                     seed: int = 0) -> tuple[list[str], list[int]]:
    """A few-shot prompt for every test example, each with its own ``shots`` demonstrations drawn at
    random (seeded) from the *training* split and fitted into ``budget`` tokens. Returns the prompts and
    how many demonstrations each one kept."""
    rng = seeded_rng(seed, f"shots:{task.name}")
    prompts, used = [], []
    for example in task.test:
        demos = rng.sample(task.train, min(shots, len(task.train)))
        prompt, k = few_shot_prompt(task, example.x, demos, tokenizer, budget)
        prompts.append(prompt)
        used.append(k)
    return prompts, used


def answer_budget(task: Task, tokenizer: Tokenizer, margin: int = 2) -> int:
    """New tokens to allow when generating: the longest reference answer (with its newline) + margin."""
    return max(len(tokenizer.encode(task.target(e.y) + STOP)) for e in task.train + task.test) + margin
