"""Four tasks for a language model, each with data the course makes itself, a held-out test split and
an exact metric; the prompts that pose them; and the loop that asks the model and scores its answers.

| task | input → answer | held out by | metric |
| --- | --- | --- | --- |
| text generation | a line of Python's documentation, cut after a few words → the next word | module (the corpus's validation split) | exact match |
| translation | English number words, 1–999 → Chinese numerals | number | exact match, character error rate |
| question answering | "Which module defines `dumps`?" → `json` | entity (function or class name) | exact match |
| code generation | "the largest of 4, 9 and 2" → a Python expression | description | execution accuracy (run it), exact match |

Every answer is one short line. A prompt ends where the answer begins; the model continues it greedily
(the most likely token each time) until it writes a newline. "Held out" means that no test example —
not its number, not its function name, not its line of text — appears in the training split.

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

import ast
import hashlib
import random
import re
import sysconfig
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from roots_course.errors import ConfigError, DataError
from roots_course.tasks.metrics import Interval, bootstrap_ci, edit_distance, exact_match, normalize, ratio_statistic
from roots_course.core.model import GPT
from roots_course.core.tokenizer import Tokenizer

STOP = "\n"

# ---------------------------------------------------------------------------------------------
# Number words and Chinese numerals
# ---------------------------------------------------------------------------------------------

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


# ---------------------------------------------------------------------------------------------
# Running a generated expression safely
# ---------------------------------------------------------------------------------------------


class UnsafeExpression(ValueError):
    """The expression uses something outside the small language safe_eval accepts, or is too big."""


_FUNCTIONS = {"abs": abs, "max": max, "min": min, "len": len, "sum": sum, "sorted": sorted, "round": round,
              "list": list, "range": range, "str": str}
_METHODS = {"upper", "lower", "title", "strip"}
_BINARY = {ast.Add: lambda a, b: a + b, ast.Sub: lambda a, b: a - b, ast.Mult: lambda a, b: a * b,
           ast.FloorDiv: lambda a, b: a // b, ast.Mod: lambda a, b: a % b, ast.Div: lambda a, b: a / b,
           ast.Pow: lambda a, b: a ** b}
_MAX_SIZE = 10_000  # longest string or list, and largest number of digits, an expression may build


def _check_size(value: Any) -> Any:
    if isinstance(value, (str, list, tuple, range)) and len(value) > _MAX_SIZE:
        raise UnsafeExpression(f"result of length {len(value)} exceeds {_MAX_SIZE}")
    if isinstance(value, int) and value.bit_length() > 3 * _MAX_SIZE:
        raise UnsafeExpression("integer too large")
    return value


def safe_eval(expression: str) -> Any:
    """Evaluate a small arithmetic/string expression by walking its syntax tree — never with eval().

    Allowed: numbers and strings; + - * / // % ** (exponent at most 100); unary minus; lists and tuples;
    slices; calls of abs max min len sum sorted round list range str; the string methods upper lower
    title strip. Every intermediate result is size-checked, so "'a' * 10**9" fails fast instead of
    filling memory. Anything else raises UnsafeExpression; malformed code raises SyntaxError.

    Why not eval() with empty builtins? Because that is not a sandbox: attribute access such as
    ().__class__.__base__ reaches every class in the interpreter. A whitelist interpreter is short and
    has no such door.
    """
    tree = ast.parse(expression.strip(), mode="eval")
    return _eval_node(tree.body)


def _eval_node(node: ast.AST) -> Any:
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float, str)) and not isinstance(node.value,
                                                                                                        bool):
        return _check_size(node.value)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        value = _eval_node(node.operand)
        if not isinstance(value, (int, float)):
            raise UnsafeExpression("unary minus applies to numbers only")
        return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _eval_node(node.left), _eval_node(node.right)
        if isinstance(node.op, ast.Pow) and (not isinstance(right, (int, float)) or abs(right) > 100):
            raise UnsafeExpression("exponents must be numbers of at most 100")
        if isinstance(node.op, ast.Mult) and isinstance(left, (str, list)) != isinstance(right, (str, list)):
            count = right if isinstance(left, (str, list)) else left
            sequence = left if isinstance(left, (str, list)) else right
            if isinstance(count, int) and len(sequence) * max(count, 0) > _MAX_SIZE:
                raise UnsafeExpression("repetition too long")
        try:
            return _check_size(_BINARY[type(node.op)](left, right))
        except (TypeError, ZeroDivisionError, OverflowError) as exc:
            raise UnsafeExpression(f"{type(exc).__name__}: {exc}") from None
    if isinstance(node, (ast.List, ast.Tuple)):
        items = [_eval_node(e) for e in node.elts]
        return _check_size(items if isinstance(node, ast.List) else tuple(items))
    if isinstance(node, ast.Subscript):
        value = _eval_node(node.value)
        if not isinstance(value, (str, list, tuple)):
            raise UnsafeExpression("only strings, lists and tuples can be indexed")
        index = node.slice
        try:
            if isinstance(index, ast.Slice):
                parts = [None if p is None else _eval_node(p) for p in (index.lower, index.upper, index.step)]
                return value[slice(*parts)]
            return value[_eval_node(index)]
        except (TypeError, IndexError, ValueError) as exc:
            raise UnsafeExpression(f"{type(exc).__name__}: {exc}") from None
    if isinstance(node, ast.Call) and not node.keywords:
        args = [_eval_node(a) for a in node.args]
        try:
            if isinstance(node.func, ast.Name) and node.func.id in _FUNCTIONS:
                if node.func.id == "range" and len(range(*args)) > _MAX_SIZE:
                    raise UnsafeExpression("range too long")
                return _check_size(_FUNCTIONS[node.func.id](*args))
            if isinstance(node.func, ast.Attribute) and node.func.attr in _METHODS:
                receiver = _eval_node(node.func.value)
                if not isinstance(receiver, str):
                    raise UnsafeExpression(f".{node.func.attr}() applies to strings only")
                return getattr(receiver, node.func.attr)(*args)
        except (TypeError, ValueError) as exc:
            raise UnsafeExpression(f"{type(exc).__name__}: {exc}") from None
    raise UnsafeExpression(f"{type(node).__name__} is not allowed: {ast.unparse(node)[:40]!r}")


def run_expression(expression: str) -> tuple[bool, Any]:
    """(True, value) when safe_eval accepts the expression, else (False, the error's name)."""
    try:
        return True, safe_eval(expression)
    except (SyntaxError, UnsafeExpression, RecursionError) as exc:
        return False, type(exc).__name__


# ---------------------------------------------------------------------------------------------
# Tasks: examples, prompts, scores
# ---------------------------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------------------------
# Building the four datasets
# ---------------------------------------------------------------------------------------------


def _rng(seed: int, name: str) -> random.Random:
    return random.Random(int.from_bytes(hashlib.sha256(f"{seed}:{name}".encode()).digest()[:8], "big"))


_PROSE_LINE = re.compile(r"[A-Z][A-Za-z ,.;:'-]*")


def continuation_examples(text: str, n: int, seed: int, min_words: int = 6, min_prefix: int = 3) -> list[Example]:
    """Up to ``n`` examples (line start → next word) from the prose lines of ``text``.

    A prose line: 30–90 characters, starts with a capital, only letters, spaces and , . ; : ' -, and at
    least ``min_words`` words. The cut falls after at least ``min_prefix`` words, before a word of
    letters only (so the answer carries no punctuation). One example per distinct line.
    """
    lines = sorted({line.strip() for line in text.split("\n")})
    lines = [ln for ln in lines if 30 <= len(ln) <= 90 and _PROSE_LINE.fullmatch(ln) and len(ln.split()) >= min_words]
    rng = _rng(seed, "text")
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
    _rng(seed, "translation").shuffle(numbers)
    if n_test >= len(numbers):
        raise ConfigError(f"n_test must be below 999 for the translation task, got {n_test}")
    test, train = numbers[:n_test], numbers[n_test : n_test + n_train]
    def make(n: int) -> Example:
        return Example(english_words(n), chinese_numeral(n), str(n))

    return TranslationTask("translation", "translation (English words → Chinese numerals)",
                           "Write the number in Chinese.", [make(n) for n in train], [make(n) for n in test],
                           metrics=("exact match", "CER"))


# The modules of the knowledge base, in order of preference: familiar ones, whose functions have
# telling names. A profile takes the first qa_modules of them.
KB_MODULES = ("json", "os", "shutil", "statistics", "base64", "logging", "functools", "heapq", "tempfile",
              "textwrap", "calendar", "traceback", "urllib.parse", "contextlib", "dataclasses", "difflib",
              "inspect", "platform", "threading", "subprocess", "warnings", "uuid", "ast", "typing")
QUESTION_TEMPLATES = ("Which module defines `{name}`?", "In which module is `{name}` defined?",
                      "`{name}` is defined in which module?")


def _module_source(module: str) -> Path:
    root = Path(sysconfig.get_paths()["stdlib"])
    path = root / (module.replace(".", "/") + ".py")
    return path if path.is_file() else root / module.replace(".", "/") / "__init__.py"


def public_definitions(module: str) -> list[str]:
    """Names of the public functions and classes a standard-library module *defines* (top-level def
    and class statements of its source, read with ast: nothing is imported or run), limited to
    ``__all__`` when the module states it."""
    path = _module_source(module)
    if not path.is_file():
        raise DataError(f"no source file for standard-library module {module!r} (looked for {path})")
    tree = ast.parse(path.read_bytes(), filename=str(path))
    exported = _exported_names(tree)
    return sorted(n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))
                  and not n.name.startswith("_") and (exported is None or n.name in exported))


def _exported_names(tree: ast.Module) -> set[str] | None:
    """The names a module lists in ``__all__`` (also via ``__all__ += [...]``, ``__all__.extend([...])``
    and ``__all__.append(...)`` with literal arguments, as os.py does); None when it has no ``__all__``."""
    exported: set[str] | None = None
    for node in ast.walk(tree):
        value = None
        assigned = isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__"
                                                        for t in node.targets)
        augmented = isinstance(node, ast.AugAssign) and isinstance(node.target, ast.Name) and node.target.id == "__all__"
        if assigned or augmented:
            value = node.value
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
              and isinstance(node.func.value, ast.Name) and node.func.value.id == "__all__"
              and node.func.attr in ("extend", "append") and node.args):
            value = node.args[0] if node.func.attr == "extend" else ast.List([node.args[0]])
        if value is not None:
            try:
                exported = (exported or set()) | set(ast.literal_eval(value))
            except ValueError:
                exported = exported or set()
    return exported


def knowledge_base(n_modules: int, per_module: int = 20, seed: int = 0) -> dict[str, str]:
    """name → module for the first ``n_modules`` of KB_MODULES. A name defined by two of them is left
    out (the question would have two answers); a module keeps at most ``per_module`` names, chosen by
    a seeded shuffle, so that no module dominates the answers."""
    modules = list(KB_MODULES[:n_modules])
    if len(modules) < n_modules:
        raise ConfigError(f"qa_modules can be at most {len(KB_MODULES)}, got {n_modules}")
    names = {m: public_definitions(m) for m in modules}
    counts = Counter(n for ns in names.values() for n in ns)
    kb: dict[str, str] = {}
    for m in modules:
        unique = [n for n in names[m] if counts[n] == 1]
        _rng(seed, f"kb:{m}").shuffle(unique)
        kb.update({n: m for n in unique[:per_module]})
    return kb


def qa_task(n_modules: int, n_test: int, seed: int = 0, test_fraction: float = 0.3,
            per_module: int = 20) -> QATask:
    """Questions about the knowledge base, held out by entity: about ``test_fraction`` of each module's
    names are test names (at most ``n_test`` questions, one template each); every training name is
    asked with all templates."""
    kb = knowledge_base(n_modules, per_module, seed)
    rng = _rng(seed, "qa")
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
    rng = _rng(seed, "code")
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


# ---------------------------------------------------------------------------------------------
# Prompts
# ---------------------------------------------------------------------------------------------


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
    rng = _rng(seed, f"shots:{task.name}")
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


# ---------------------------------------------------------------------------------------------
# Asking the model: batched greedy decoding with a stop
# ---------------------------------------------------------------------------------------------


def stop_token_ids(tokenizer: Tokenizer, stop: str = STOP) -> torch.Tensor:
    """Every token id whose bytes contain the stop string (a byte-level BPE may fold a newline into
    tokens such as "\\n    "): generation of a row ends as soon as it writes one of them."""
    marker = stop.encode("utf-8")
    return torch.tensor([i for i in range(tokenizer.vocab_size) if marker in tokenizer.token_bytes(i)])


@torch.inference_mode()
def generate_answers(model: GPT, tokenizer: Tokenizer, prompts: Sequence[str], max_new_tokens: int,
                     batch_size: int = 64, stop: str = STOP) -> list[str]:
    """Greedy continuation of each prompt, cut at the first ``stop``; the prompt is not included.

    Prompts of different lengths are decoded together, one position at a time, with one KV cache:

        position t:   row still inside its prompt  -> fed its own prompt token t
                      row past its prompt          -> fed the token it generated last
        logits at t:  rows with t >= len(prompt) - 1 take the most likely token as their next one

    Every row thus sees exactly its own prompt followed by its own answer, at the same positions as when
    decoded alone, so the result equals one-at-a-time greedy decoding
    (``roots_course.generate.generate(..., greedy=True)``) with no padding and no attention mask. Prompts
    are sorted by length and cut into batches of ``batch_size``, so rows of a batch have similar lengths.
    A prompt longer than block_size − max_new_tokens keeps only its last tokens.
    """
    if max_new_tokens < 1:
        raise ConfigError(f"max_new_tokens must be positive, got {max_new_tokens}")
    block = model.config.block_size
    if max_new_tokens >= block:
        raise ConfigError(f"max_new_tokens={max_new_tokens} leaves no room for a prompt in a {block}-token window")
    was_training = model.training
    model.eval()
    device = model.tok_emb.weight.device
    stops = stop_token_ids(tokenizer, stop).to(device)
    encoded = [tokenizer.encode(p)[-(block - max_new_tokens):] for p in prompts]
    if any(not ids for ids in encoded):
        raise ConfigError("an empty prompt gives the model nothing to continue")
    order = sorted(range(len(prompts)), key=lambda i: len(encoded[i]))
    outputs: list[list[int]] = [[] for _ in prompts]
    try:
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            lengths = torch.tensor([len(encoded[i]) for i in rows], device=device)  # (B,)
            first, last = int(lengths.min()), int(lengths.max())
            total = last + max_new_tokens  # positions 0 .. total-1 at most
            seq = torch.zeros(len(rows), total, dtype=torch.long, device=device)  # (B, total) prompt, then answer
            for r, i in enumerate(rows):
                seq[r, : len(encoded[i])] = torch.tensor(encoded[i], device=device)
            cache = model.make_cache(len(rows), max_len=total)
            logits = model(seq[:, :first], cache=cache)[0][:, -1]  # (B, V): the prediction for position `first`
            done = torch.zeros(len(rows), dtype=torch.bool, device=device)
            for t in range(first, total):  # choose the token at position t, then feed it
                generating = t >= lengths  # (B,) rows whose prompt has ended
                token = torch.where(generating, logits.float().argmax(dim=-1), seq[:, t])  # (B,)
                seq[:, t] = token
                done |= generating & (torch.isin(token, stops) | (t - lengths + 1 >= max_new_tokens))
                if bool(done.all()) or t == total - 1:
                    break
                logits = model(token[:, None], cache=cache)[0][:, -1]  # (B, V)
            for r, i in enumerate(rows):
                n = len(encoded[i])
                outputs[i] = seq[r, n : n + max_new_tokens].tolist()
    finally:
        model.train(was_training)
    texts = []
    for ids in outputs:
        cut = next((k for k, t in enumerate(ids) if stop.encode() in tokenizer.token_bytes(t)), None)
        text = tokenizer.decode(ids if cut is None else ids[: cut + 1])
        texts.append(text.split(stop, 1)[0])
    return texts


# ---------------------------------------------------------------------------------------------
# Scoring a run
# ---------------------------------------------------------------------------------------------


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
        """The metric on the whole test split with its 95% bootstrap interval. CER is pooled: total
        edits ÷ total reference characters, resampled as (edits, characters) pairs."""
        if metric == "CER":
            records = torch.tensor(list(zip(self.scores["_edits"], self.scores["_chars"])))  # (N, 2)
            return bootstrap_ci(records, statistic=ratio_statistic, n_resamples=n_resamples, seed=seed)
        return bootstrap_ci(self.scores[metric], n_resamples=n_resamples, seed=seed)

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
