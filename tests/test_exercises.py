"""Tests of roots_course.course.exercises (the checker) and chapter 1's reference solutions."""

from __future__ import annotations

import pytest
import torch

from roots_course.core.attention import scaled_dot_product_attention
from roots_course.core.bpe import merge_pair
from roots_course.course.exercises import Exercise, check, close
from roots_course.core.model import sinusoidal_positions
from roots_course.representation.exercises import EXERCISES


def square(x):
    return x * x


SQUARE = Exercise("square", square, lambda: [(2,), (3,), (-1,)], hint="multiply")


def test_unattempted_exercise_checks_the_reference(capsys):
    def attempt(x):
        raise NotImplementedError

    result = check(SQUARE, attempt)
    assert result.passed and result.used_reference
    assert "not attempted" in capsys.readouterr().out


def test_right_and_wrong_attempts():
    assert check(SQUARE, lambda x: x**2).passed
    wrong = check(SQUARE, lambda x: 2 * x)
    assert not wrong.passed and not wrong.used_reference
    assert len(wrong.details) == 2 and "hint: multiply" in wrong.message  # 2*2 == 2**2 passes
    crash = check(SQUARE, lambda x: 1 / 0)
    assert not crash.passed and "ZeroDivisionError" in crash.message


def test_show_solution_prints_the_reference(capsys):
    check(SQUARE, None, show_solution=True)
    assert "def square" in capsys.readouterr().out


def test_close_compares_tensors_and_nested_results():
    compare = close(atol=1e-3)
    compare((1, [torch.tensor([1.0])]), [1, [torch.tensor([1.0005])]])
    with pytest.raises(AssertionError):
        compare(torch.tensor([1.0]), torch.tensor([1.1]))
    with pytest.raises(AssertionError):
        compare([1, 2], [1, 2, 3])


def test_every_reference_solution_passes_its_own_check():
    for exercise in EXERCISES.values():
        result = check(exercise, exercise.reference)
        assert result.passed and not result.used_reference, result.message


def test_reference_solutions_agree_with_the_library():
    for ids, new_id in EXERCISES["bpe_step"].cases():
        pair, merged = EXERCISES["bpe_step"].reference(list(ids), new_id)
        assert merged == merge_pair(list(ids), pair, new_id)
    assert EXERCISES["bpe_step"].reference(list(b"aaaa"), 256) == ((97, 97), [256, 256])
    for T, C in EXERCISES["sinusoidal_table"].cases():
        torch.testing.assert_close(EXERCISES["sinusoidal_table"].reference(T, C), sinusoidal_positions(T, C),
                                   atol=1e-4, rtol=0)
    for (scores,) in EXERCISES["causal_weights"].cases():
        T = scores.size(0)
        expected = torch.softmax(scores.masked_fill(torch.ones(T, T).triu(1).bool(), float("-inf")), -1)
        torch.testing.assert_close(EXERCISES["causal_weights"].reference(scores), expected)
    for q, k, v in EXERCISES["attention_row"].cases():
        expected = scaled_dot_product_attention(q[None], k, v, causal=False)[0]
        torch.testing.assert_close(EXERCISES["attention_row"].reference(q, k, v), expected)


def test_a_typical_mistake_is_caught():
    def no_scaling(query, keys, values):
        return torch.softmax(keys @ query, dim=0) @ values

    assert not check(EXERCISES["attention_row"], no_scaling).passed

    def merges_overlaps_twice(ids, new_id):
        pair, _ = EXERCISES["bpe_step"].reference(ids, new_id)
        out = [new_id if (a, b) == pair else a for a, b in zip(ids, ids[1:] + [None])]
        return pair, out

    assert not check(EXERCISES["bpe_step"], merges_overlaps_twice).passed
