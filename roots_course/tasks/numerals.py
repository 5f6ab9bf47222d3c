"""English number words and Chinese numerals for 1–999: the data of the translation task.

Chinese numerals, the rules used here (standard written forms for 1–999):
- 1–9: 一 二 三 四 五 六 七 八 九.
- 10–19 on their own drop the leading one: 十, 十一, …, 十九 (not 一十一).
- Inside a larger number the tens digit is always written: 110 is 一百一十, 115 一百一十五.
- A zero tens digit before a non-zero unit is read 零: 105 is 一百零五; trailing zeros are not written:
  100 is 一百, 120 一百二十.
- Two hundred is 二百 here. Speakers often say 两百, which is also correct; exact match would count it
  wrong, a known limit of exact metrics (the character error rate gives it partial credit).
English number words follow US usage: no "and" (105 is "one hundred five"), hyphens in 21–99.
"""

from __future__ import annotations

from roots_course.errors import ConfigError
from roots_course.tasks.metrics import normalize

_ONES = ["", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve",
         "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen"]
_TENS = ["", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
_DIGITS = "零一二三四五六七八九"


def _check_number(n: int) -> None:
    if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= 999:
        raise ConfigError(f"numbers must be integers from 1 to 999, got {n!r}")


def english_words(n: int) -> str:
    """1–999 in English words, US style: 21 "twenty-one", 105 "one hundred five", 999 "nine hundred ninety-nine"."""
    _check_number(n)
    hundreds, rest = divmod(n, 100)
    words = [f"{_ONES[hundreds]} hundred"] if hundreds else []
    if rest >= 20:
        tens, unit = divmod(rest, 10)
        words.append(_TENS[tens] + (f"-{_ONES[unit]}" if unit else ""))
    elif rest:
        words.append(_ONES[rest])
    return " ".join(words)


def chinese_numeral(n: int) -> str:
    """1–999 in Chinese numerals by the rules in the module docstring (10 十, 110 一百一十, 105 一百零五)."""
    _check_number(n)
    hundreds, rest = divmod(n, 100)
    tens, unit = divmod(rest, 10)
    if not hundreds:
        if not tens:
            return _DIGITS[unit]
        return ("" if tens == 1 else _DIGITS[tens]) + "十" + (_DIGITS[unit] if unit else "")
    out = _DIGITS[hundreds] + "百"
    if tens:
        out += _DIGITS[tens] + "十" + (_DIGITS[unit] if unit else "")
    elif unit:
        out += "零" + _DIGITS[unit]
    return out


_CHINESE_TO_INT = {chinese_numeral(n): n for n in range(1, 1000)}


def parse_chinese_numeral(text: str) -> int | None:
    """The number a Chinese numeral written by the rules above stands for; None for anything else
    (including forms the rules do not produce, such as 一十 or 两百). Used to classify errors."""
    return _CHINESE_TO_INT.get(normalize(text))
