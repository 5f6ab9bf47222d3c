"""Automatic checks for the chapters' exercises.

A chapter's exercise cell holds a function for the learner to write; its body starts as
``raise NotImplementedError``. The check cell then calls ``check(exercise, attempt)``:

- if the learner's function runs, it is compared with the reference solution on every test case,
  and the result says which case failed and how;
- if it still raises NotImplementedError, the reference solution is checked instead and the result
  says so, so that the chapter runs green from top to bottom before anyone has tried.

Reference solutions live in one module per chapter (e.g. ``roots_course.representation.exercises``),
out of sight of the notebook; ``show_solution=True`` prints the reference source after the check.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch


def close(rtol: float = 1e-5, atol: float = 1e-6) -> Callable[[Any, Any], None]:
    """A comparison for `Exercise.compare`: equal, with tensors allowed to differ by rounding."""

    def compare(got: Any, expected: Any) -> None:
        if isinstance(expected, torch.Tensor):
            if not isinstance(got, torch.Tensor):
                raise AssertionError(f"expected a tensor, got {type(got).__name__}")  # noqa: TRY004
            torch.testing.assert_close(got.to(expected.dtype), expected, rtol=rtol, atol=atol)
        elif isinstance(expected, (tuple, list)) and isinstance(got, (tuple, list)):
            if len(got) != len(expected):
                raise AssertionError(f"expected {len(expected)} items, got {len(got)}: {_short(got)}")
            for g, e in zip(got, expected):
                compare(g, e)
        elif got != expected:
            raise AssertionError(f"expected {_short(expected)}, got {_short(got)}")

    return compare


same = close()


@dataclass
class Exercise:
    """A reference solution and the cases (tuples of arguments) it is checked on."""

    name: str
    reference: Callable[..., Any]
    cases: Callable[[], Sequence[tuple[Any, ...]]]
    compare: Callable[[Any, Any], None] = same
    hint: str = ""


@dataclass
class CheckResult:
    exercise: str
    passed: bool
    used_reference: bool
    cases: int
    message: str
    details: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return self.message


def _short(value: Any, limit: int = 120) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def check(exercise: Exercise, attempt: Callable[..., Any] | None, show_solution: bool = False) -> CheckResult:
    """Check `attempt` against `exercise`'s reference on every case; print and return the result."""
    cases = list(exercise.cases())
    fn, used_reference = attempt, attempt is None
    if attempt is not None:
        try:
            attempt(*_copy(cases[0]))
        except NotImplementedError:
            used_reference = True
        except Exception:  # noqa: BLE001, S110 - a real error in the attempt is reported case by case below
            pass
    if used_reference:
        fn = exercise.reference
    failures = []
    for i, args in enumerate(cases):
        expected = exercise.reference(*_copy(args))
        try:
            got = fn(*_copy(args))
            exercise.compare(got, expected)
        except NotImplementedError:
            failures.append(f"case {i}: your function raised NotImplementedError")
        except Exception as exc:  # noqa: BLE001 - AssertionError from compare, or the attempt crashed
            failures.append(f"case {i} with arguments {_short(args)}: {type(exc).__name__}: {exc}")
    name = f"exercise {exercise.name!r}"
    if failures:
        message = (f"✗ {name}: {len(failures)} of {len(cases)} cases fail. First: {failures[0]}"
                   + (f"\n  hint: {exercise.hint}" if exercise.hint else ""))
    elif used_reference:
        message = (f"· {name}: not attempted yet (the function raises NotImplementedError), so the reference "
                   f"solution was checked instead ({len(cases)} cases pass). Write your own and run this again.")
    else:
        message = f"✓ {name}: your function passes all {len(cases)} cases."
    print(message)
    if show_solution:
        print(f"\nreference solution ({inspect.getsourcefile(exercise.reference)}):\n")
        print(inspect.getsource(exercise.reference))
    return CheckResult(exercise.name, not failures, used_reference, len(cases), message, failures)


def _copy(args: tuple[Any, ...]) -> tuple[Any, ...]:
    """Fresh copies of mutable arguments, so an attempt that edits its input cannot spoil the check."""
    out = []
    for a in args:
        if isinstance(a, torch.Tensor):
            out.append(a.clone())
        elif isinstance(a, list):
            out.append(list(a))
        else:
            out.append(a)
    return tuple(out)
