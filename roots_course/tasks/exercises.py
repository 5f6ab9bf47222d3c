"""Chapter 4's exercises: reference solutions and the cases they are checked on.

Try the exercises in the notebook before reading on: the check cell compares your function with the
reference below on every case (``roots_course.exercises.check``). Each reference is written
independently of the library function the notebook also compares it with, so the two check each other.
"""

from __future__ import annotations

import math

import torch

from roots_course.course.exercises import Exercise, close

# --- 1. character error rate ---------------------------------------------------------------------


def character_error_rate(prediction: str, reference: str) -> float:
    """Levenshtein distance between the trimmed strings ÷ the trimmed reference's length (an empty
    reference: 0.0 for an empty prediction, else 1.0)."""
    p, r = prediction.strip(), reference.strip()
    if not r:
        return float(bool(p))
    # d[i][j]: edits turning p[:i] into r[:j]
    d = [[i + j if i * j == 0 else 0 for j in range(len(r) + 1)] for i in range(len(p) + 1)]
    for i in range(1, len(p) + 1):
        for j in range(1, len(r) + 1):
            d[i][j] = min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (p[i - 1] != r[j - 1]))
    return d[len(p)][len(r)] / len(r)


def _cer_cases() -> list[tuple]:
    return [("三百零五", "三百零五"), ("三百五", "三百零五"), ("", "十二"), ("十二", ""), ("", ""),
            (" 一百一十 ", "一百一十"), ("kitten", "sitting"), ("两百", "二百"), ("九百九十九九九", "九百九十九"),
            ("abc", "xyz")]


# --- 2. Chinese numerals ---------------------------------------------------------------------------

_D = "零一二三四五六七八九"


def chinese_numeral(n: int) -> str:
    """1–999 as a Chinese numeral: 10–19 alone drop the leading 一 (十二); after 百 the tens digit is
    always written (一百一十); a zero tens digit before a unit is 零 (一百零五); trailing zeros vanish."""
    h, t, u = n // 100, n // 10 % 10, n % 10
    tail = ("" if (t == 1 and not h) else _D[t]) + "十" + (_D[u] if u else "") if t else (_D[u] if u else "")
    if not h:
        return tail
    return _D[h] + "百" + ("零" + tail if not t and u else tail)


def _numeral_cases() -> list[tuple]:
    return [(n,) for n in (1, 7, 10, 11, 19, 20, 21, 99, 100, 101, 105, 110, 111, 115, 120, 200, 305, 340, 999)]


# --- 3. a few-shot prompt --------------------------------------------------------------------------


def few_shot_prompt(instruction: str, demos: list[tuple[str, str]], query: str) -> str:
    """The instruction line, then each demonstration as "<input> = <answer>" on its own line, then the
    query as "<input> =" (no newline after it: the model writes the answer next)."""
    lines = [instruction] + [f"{x} = {y}" for x, y in demos]
    return "\n".join(lines) + "\n" + f"{query} ="


def _prompt_cases() -> list[tuple]:
    return [("Write the number in Chinese.", [("twelve", "十二"), ("one hundred five", "一百零五")], "forty"),
            ("Write the number in Chinese.", [], "seven"),
            ("Translate.", [("one", "一")], "two hundred")]


# --- 4. the LoRA forward pass ----------------------------------------------------------------------


def lora_forward(x: torch.Tensor, weight: torch.Tensor, A: torch.Tensor, B: torch.Tensor, alpha: float) -> torch.Tensor:
    """y = x Wᵀ + (alpha / r) · x Aᵀ Bᵀ for x (..., in), W (out, in), A (r, in), B (out, r)."""
    r = A.size(0)
    return x @ weight.T + (alpha / r) * (x @ A.T) @ B.T


def _lora_cases() -> list[tuple]:
    g = torch.Generator().manual_seed(0)
    cases = []
    for shape, out, r, alpha in (((3, 8), 6, 2, 4.0), ((2, 5, 8), 12, 4, 8.0), ((1, 8), 8, 1, 1.0)):
        inp = shape[-1]
        cases.append((torch.randn(*shape, generator=g), torch.randn(out, inp, generator=g),
                      torch.randn(r, inp, generator=g), torch.randn(out, r, generator=g), alpha))
    inp = 8
    cases.append((torch.randn(4, inp, generator=g), torch.randn(5, inp, generator=g),
                  torch.randn(2, inp, generator=g), torch.zeros(5, 2), 16.0))  # B = 0: exactly the base layer
    return cases


def approx(rel: float = 1e-9):
    def compare(got, expected) -> None:
        if not isinstance(got, (int, float)) or isinstance(got, bool) or not math.isclose(got, expected, rel_tol=rel,
                                                                                          abs_tol=1e-12):
            raise AssertionError(f"expected {expected!r}, got {got!r}")
    return compare


EXERCISES = {
    "character_error_rate": Exercise(
        "character_error_rate", character_error_rate, _cer_cases, approx(),
        hint="fill a (len(p)+1) × (len(r)+1) table: d[i][j] = min(delete, insert, substitute); divide by len(r)"),
    "chinese_numeral": Exercise(
        "chinese_numeral", chinese_numeral, _numeral_cases,
        hint="split n into hundreds, tens, units; 10–19 alone start with 十; 105 needs 零; 110 keeps 一十"),
    "few_shot_prompt": Exercise(
        "few_shot_prompt", few_shot_prompt, _prompt_cases,
        hint="join the instruction and the 'x = y' lines with newlines, then end with 'query =' and no newline"),
    "lora_forward": Exercise(
        "lora_forward", lora_forward, _lora_cases, close(rtol=1e-5, atol=1e-5),
        hint="x @ W.T, plus (alpha / r) times x @ A.T @ B.T, with r = A.size(0)"),
}
