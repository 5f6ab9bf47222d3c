"""The four tasks' examples, with held-out test splits: text (next word of a line), translation (number
words → Chinese numerals), question answering (which module defines a name) and code (description →
expression). ``build_tasks`` makes all four for a profile."""

from __future__ import annotations

import random
import re

from roots_course.errors import ConfigError, DataError
from roots_course.tasks.knowledge_base import QUESTION_TEMPLATES, knowledge_base
from roots_course.tasks.numerals import chinese_numeral, english_words
from roots_course.tasks.task_types import CodeTask, Example, QATask, Task, TextTask, TranslationTask, seeded_rng

_PROSE_LINE = re.compile(r"[A-Z][A-Za-z ,.;:'-]*")


def continuation_examples(text: str, n: int, seed: int, min_words: int = 6, min_prefix: int = 3) -> list[Example]:
    """Up to ``n`` examples (line start → next word) from the prose lines of ``text``.

    A prose line: 30–90 characters, starts with a capital, only letters, spaces and , . ; : ' -, and at
    least ``min_words`` words. The cut falls after at least ``min_prefix`` words, before a word of
    letters only (so the answer carries no punctuation). One example per distinct line.
    """
    lines = sorted({line.strip() for line in text.split("\n")})
    lines = [ln for ln in lines if 30 <= len(ln) <= 90 and _PROSE_LINE.fullmatch(ln) and len(ln.split()) >= min_words]
    rng = seeded_rng(seed, "text")
    rng.shuffle(lines)
    out = []
    for line in lines[:n]:
        words = line.split()
        cuts = [k for k in range(min_prefix, len(words)) if words[k].isalpha()]
        if cuts:
            k = rng.choice(cuts)
            out.append(Example(" ".join(words[:k]), words[k], line))
    return out


def text_task(train_text: str, test_text: str, n_train: int, n_test: int, seed: int = 0) -> TextTask:
    """Text generation: training lines from the corpus's train split, test lines from its validation
    split (whole modules the pretrained model never saw)."""
    train = continuation_examples(train_text, n_train, seed)
    test = continuation_examples(test_text, n_test, seed + 1)
    seen = {e.group for e in train}
    test = [e for e in test if e.group not in seen]  # a line repeated across modules stays in training only
    if not train or not test:
        raise DataError(f"too few prose lines for the text task: {len(train)} train, {len(test)} test examples")
    return TextTask("text", "text generation (next word)", "Give the next word.", train, test)


def translation_task(n_train: int, n_test: int, seed: int = 0) -> TranslationTask:
    """English number words → Chinese numerals; ``n_test`` numbers of 1–999 are held out, training
    draws up to ``n_train`` of the others."""
    numbers = list(range(1, 1000))
    seeded_rng(seed, "translation").shuffle(numbers)
    if n_test >= len(numbers):
        raise ConfigError(f"n_test must be below 999 for the translation task, got {n_test}")
    test, train = numbers[:n_test], numbers[n_test : n_test + n_train]
    def make(n: int) -> Example:
        return Example(english_words(n), chinese_numeral(n), str(n))

    return TranslationTask("translation", "translation (English words → Chinese numerals)",
                           "Write the number in Chinese.", [make(n) for n in train], [make(n) for n in test],
                           metrics=("exact match", "CER"))


def qa_task(n_modules: int, n_test: int, seed: int = 0, test_fraction: float = 0.3,
            per_module: int = 20) -> QATask:
    """Questions about the knowledge base, held out by entity: about ``test_fraction`` of each module's
    names are test names (at most ``n_test`` questions, one template each); every training name is
    asked with all templates."""
    kb = knowledge_base(n_modules, per_module, seed)
    rng = seeded_rng(seed, "qa")
    train, test = [], []
    for module in dict.fromkeys(kb.values()):
        names = sorted(n for n, m in kb.items() if m == module)
        rng.shuffle(names)
        k = max(1, round(test_fraction * len(names))) if len(names) > 1 else 0
        test += [Example(rng.choice(QUESTION_TEMPLATES).format(name=n), module, n) for n in names[:k]]
        train += [Example(t.format(name=n), module, n) for n in names[k:] for t in QUESTION_TEMPLATES]
    rng.shuffle(test)
    rng.shuffle(train)
    modules = tuple(dict.fromkeys(kb.values()))
    return QATask("qa", "question answering (which module defines it?)", "Name the module.", train,
                  test[:n_test], info={"modules": modules, "entities": len(kb)})


_WORDS = ("cat", "tree", "moon", "data", "code", "apple", "river", "token", "model", "green", "stone", "light")


def _code_example(rng: random.Random) -> tuple[str, str]:
    a, b, c = rng.randint(2, 30), rng.randint(2, 30), rng.randint(2, 30)
    w = rng.choice(_WORDS)
    k = rng.randint(2, 4)
    templates = [
        (f"add {a} and {b}", f"{a} + {b}"),
        (f"subtract {b} from {a}", f"{a} - {b}"),
        (f"multiply {a} by {b}", f"{a} * {b}"),
        (f"{a} to the power {k}", f"{a} ** {k}"),
        (f"{a} divided by {b}, rounded down", f"{a} // {b}"),
        (f"the remainder of {a} divided by {b}", f"{a} % {b}"),
        (f"the absolute value of -{a}", f"abs(-{a})"),
        (f"the largest of {a}, {b} and {c}", f"max({a}, {b}, {c})"),
        (f"the smallest of {a}, {b} and {c}", f"min({a}, {b}, {c})"),
        (f"the length of the string '{w}'", f"len('{w}')"),
        (f"the string '{w}' in upper case", f"'{w}'.upper()"),
        (f"the string '{w}' repeated {k} times", f"'{w}' * {k}"),
        (f"the string '{w}' reversed", f"'{w}'[::-1]"),
        (f"the list {[a, b, c]} sorted", f"sorted({[a, b, c]})"),
        (f"the sum of the list {[a, b, c]}", f"sum({[a, b, c]})"),
    ]
    return rng.choice(templates)


def code_task(n_train: int, n_test: int, seed: int = 0) -> CodeTask:
    """Description → Python expression, scored by running the expression (``safe_eval``) and comparing
    its value with the reference's; held out by description (no test description occurs in training)."""
    rng = seeded_rng(seed, "code")
    pairs: dict[str, str] = {}
    for _ in range(50 * (n_train + n_test)):
        if len(pairs) == n_train + n_test:
            break
        description, expression = _code_example(rng)
        pairs.setdefault(description, expression)
    examples = [Example(d, e, d) for d, e in pairs.items()]
    return CodeTask("code", "code generation (description → Python expression)", "Write a Python expression.",
                    examples[n_test:], examples[:n_test], metrics=("execution accuracy", "exact match"),
                    answer_prefix="")


def build_tasks(train_text: str, test_text: str, n_train: int, n_test: int, qa_modules: int,
                seed: int = 0) -> dict[str, Task]:
    """The four tasks of chapter 4, in the order of the source outline."""
    return {"text": text_task(train_text, test_text, n_train, n_test, seed),
            "translation": translation_task(n_train, n_test, seed),
            "qa": qa_task(qa_modules, n_test, seed),
            "code": code_task(n_train, n_test, seed)}
