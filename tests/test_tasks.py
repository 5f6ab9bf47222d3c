"""Tests of the chapter 4 task modules: converters, the safe evaluator, held-out splits, prompts, decoding, scoring."""

import pytest
import torch

from roots_course.tasks import (answering, knowledge_base, ngram_baseline, numerals, prompting, sandbox, scoring,
                                task_data, task_types)
from roots_course.errors import ConfigError, DataError
from roots_course.core.generate import generate
from roots_course.core.model import GPT, GPTConfig
from roots_course.core.tokenizer import CharTokenizer

# ---- number words and numerals ------------------------------------------------------------------


@pytest.mark.parametrize("n, words, zh", [
    (1, "one", "一"), (10, "ten", "十"), (11, "eleven", "十一"), (19, "nineteen", "十九"), (20, "twenty", "二十"),
    (21, "twenty-one", "二十一"), (100, "one hundred", "一百"), (101, "one hundred one", "一百零一"),
    (105, "one hundred five", "一百零五"), (110, "one hundred ten", "一百一十"),
    (115, "one hundred fifteen", "一百一十五"), (120, "one hundred twenty", "一百二十"), (200, "two hundred", "二百"),
    (340, "three hundred forty", "三百四十"), (999, "nine hundred ninety-nine", "九百九十九"),
])
def test_known_conversions(n, words, zh):
    assert numerals.english_words(n) == words
    assert numerals.chinese_numeral(n) == zh
    assert numerals.parse_chinese_numeral(zh) == n


def test_converters_are_one_to_one_and_reject_out_of_range():
    assert len({numerals.english_words(n) for n in range(1, 1000)}) == 999
    assert len({numerals.chinese_numeral(n) for n in range(1, 1000)}) == 999
    assert all(numerals.parse_chinese_numeral(numerals.chinese_numeral(n)) == n for n in range(1, 1000))
    assert numerals.parse_chinese_numeral("一十") is None and numerals.parse_chinese_numeral("两百") is None
    assert numerals.parse_chinese_numeral(" 十二\n") == 12
    for bad in (0, 1000, -3, 2.5, True):
        with pytest.raises(ConfigError):
            numerals.chinese_numeral(bad)


# ---- the safe evaluator ------------------------------------------------------------------------


@pytest.mark.parametrize("expression, value", [
    ("3 + 4", 7), ("2 ** 10", 1024), ("17 // 5", 3), ("17 % 5", 2), ("abs(-4)", 4), ("max(2, 9, 4)", 9),
    ("len('tree')", 4), ("'cat'.upper()", "CAT"), ("'ab' * 3", "ababab"), ("'moon'[::-1]", "noom"),
    ("sorted([3, 1, 2])", [1, 2, 3]), ("sum([1, 2, 3])", 6), ("-(2 + 3)", -5), ("7 / 2", 3.5),
])
def test_safe_eval_values(expression, value):
    assert sandbox.safe_eval(expression) == value
    assert sandbox.run_expression(expression) == (True, value)


@pytest.mark.parametrize("expression", [
    "().__class__.__base__.__subclasses__()", "__import__('os').system('true')", "open('x')", "x + 1",
    "'a' * 10 ** 9", "9 ** 9 ** 9", "list(range(10 ** 9))", "[1] * 100000", "1 / 0", "'a' - 1", "lambda: 1",
    "max(key=len)", "'a'.join(['b'])",
])
def test_safe_eval_rejects(expression):
    with pytest.raises(sandbox.UnsafeExpression):
        sandbox.safe_eval(expression)
    assert sandbox.run_expression(expression) == (False, "UnsafeExpression")


def test_syntax_errors_are_reported():
    assert sandbox.run_expression("max(1,") == (False, "SyntaxError")
    assert sandbox.run_expression("") == (False, "SyntaxError")


# ---- datasets and held-out splits ----------------------------------------------------------------

TRAIN_TEXT = "\n".join(f"This line number {w} talks about the module and its many functions" for w in
                       ("one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"))
TEST_TEXT = "\n".join(f"Another sentence {w} describes what the function returns to callers" for w in
                      ("alpha", "beta", "gamma", "delta", "epsilon"))


def _disjoint(task: task_types.Task) -> bool:
    return not ({e.group for e in task.train} & {e.group for e in task.test})


def test_text_task():
    task = task_data.text_task(TRAIN_TEXT, TEST_TEXT + "\n" + TRAIN_TEXT.split("\n")[0], 100, 100, seed=1)
    assert len(task.train) == 10 and len(task.test) == 5  # the repeated training line is not a test line
    assert _disjoint(task)
    for e in task.train + task.test:
        line = e.group
        assert line.startswith(e.x + " " + e.y) and e.y.isalpha() and len(e.x.split()) >= 3
    again = task_data.text_task(TRAIN_TEXT, TEST_TEXT, 100, 100, seed=1)
    assert task_data.text_task(TRAIN_TEXT, TEST_TEXT, 100, 100, seed=1).test == again.test
    assert task.extract(" returns, and more\nnext") == "returns"
    assert task.extract("\n") == "" and task.extract(" 42 things") == ""


def test_translation_task_holds_out_numbers():
    task = task_data.translation_task(300, 50, seed=3)
    assert len(task.train) == 300 and len(task.test) == 50 and _disjoint(task)
    assert task.query("twelve") == "twelve =" and task.target("十二") == " 十二"
    scores = task.score("三百五", task_types.Example("three hundred five", "三百零五", "305"))
    assert scores["exact match"] == 0 and scores["CER"] == 0.25 and scores["_edits"] == 1
    assert task.error_kind("三百", task.test[0]) == "a numeral, but of another number"
    assert task.error_kind("三三", task.test[0]) == "not a well-formed numeral"
    assert task_data.translation_task(300, 50, seed=3).test == task.test
    assert task_data.translation_task(300, 50, seed=4).test != task.test


def test_knowledge_base_facts_and_uniqueness():
    kb = knowledge_base.knowledge_base(8, per_module=100)
    assert kb["dumps"] == "json" and kb["makedirs"] == "os" and kb["b64encode"] == "base64"
    assert kb["heappush"] == "heapq" and kb["copytree"] == "shutil" and kb["median"] == "statistics"
    assert not any(name.startswith("_") for name in kb)
    assert set(kb.values()) == set(knowledge_base.KB_MODULES[:8])
    capped = knowledge_base.knowledge_base(8, per_module=5)
    assert max(list(capped.values()).count(m) for m in set(capped.values())) == 5
    with pytest.raises(ConfigError):
        knowledge_base.knowledge_base(len(knowledge_base.KB_MODULES) + 1)


def test_qa_task_holds_out_entities():
    task = task_data.qa_task(6, n_test=1000, seed=2)
    assert _disjoint(task)
    assert len(task.train) == 3 * len({e.group for e in task.train})  # every training name, every template
    assert {e.y for e in task.test} == set(task.info["modules"])  # every module is asked about in the test
    assert task.query("Which module defines `dumps`?") == "Q: Which module defines `dumps`?\nA:"
    assert task.error_kind("os", task.test[0]) == "another module of the knowledge base"
    assert task.error_kind("numpy", task.test[0]) == "not a module of the knowledge base"
    assert 0 < scoring.majority_baseline(task) < 0.5


def test_code_task():
    task = task_data.code_task(200, 40, seed=0)
    assert len(task.train) == 200 and len(task.test) == 40 and _disjoint(task)
    assert all(sandbox.run_expression(e.y)[0] for e in task.train + task.test)  # every reference runs
    example = task_types.Example("add 3 and 4", "3 + 4", "add 3 and 4")
    assert task.score("4 + 3", example) == {"execution accuracy": 1.0, "exact match": 0.0}
    assert task.score("7", example)["execution accuracy"] == 1.0  # running code scores values, not text
    assert task.score("7.0", example)["execution accuracy"] == 0.0  # a float is not the int asked for
    assert task.error_kind("3 +", example) == "does not parse" and task.error_kind("3 - 4", example) == \
        "runs, wrong value"
    assert task.query("add 3 and 4") == "# add 3 and 4\n" and task.target("3 + 4") == "3 + 4"


# ---- prompts --------------------------------------------------------------------------------------


def test_prompts():
    task = task_data.translation_task(20, 5, seed=0)
    demos = [task_types.Example("twelve", "十二", "12"), task_types.Example("one hundred five", "一百零五", "105")]
    assert prompting.zero_shot_prompt(task, "forty") == "Write the number in Chinese.\nforty ="
    prompt, used = prompting.few_shot_prompt(task, "forty", demos)
    assert used == 2 and prompt == "Write the number in Chinese.\ntwelve = 十二\none hundred five = 一百零五\nforty ="
    tok = CharTokenizer.train(prompt)
    limited, used = prompting.few_shot_prompt(task, "forty", demos, tok, budget=len(prompt) - 5)
    assert used == 1 and len(tok.encode(limited)) <= len(prompt) - 5
    none, used = prompting.few_shot_prompt(task, "forty", demos, tok, budget=3)
    assert used == 0 and none == prompting.zero_shot_prompt(task, "forty")


# ---- decoding and evaluation ---------------------------------------------------------------------


def _model_and_tokenizer(block_size: int = 48):
    text = "abcdefghij =0123456789\n十二三"
    tok = CharTokenizer.train(text)
    model = GPT(GPTConfig(vocab_size=tok.vocab_size, block_size=block_size, n_layer=2, n_head=2, n_embd=16))
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(8)  # sharp distributions: clear greedy choices, and newlines get written
    return model.eval(), tok


@pytest.mark.parametrize("batch_size", [1, 2, 64])
def test_batched_greedy_equals_one_at_a_time(batch_size):
    model, tok = _model_and_tokenizer()
    prompts = ["abc =", "abd =", "j =", "abcdefg =", "a", "hij = 1", "abcdefghij = 0123\nabc =", "十二 = 12\ncd ="]
    # A stop the model actually writes, so that early stops are exercised: its commonest output character.
    free = "".join(tok.decode(generate(model, tok.encode(p), 12, greedy=True)) for p in prompts)
    stop = max(set(free), key=free.count)
    got = answering.generate_answers(model, tok, prompts, max_new_tokens=12, batch_size=batch_size, stop=stop)
    stopped = 0
    for prompt, text in zip(prompts, got):
        ids = generate(model, tok.encode(prompt), 12, greedy=True, stop_sequences=[tok.encode(stop)])
        assert text == tok.decode(ids) and stop not in text
        stopped += len(ids) < 12
    assert stopped > 0  # the stop was exercised
    with pytest.raises(ConfigError):
        answering.generate_answers(model, tok, ["a", ""], max_new_tokens=4)


def test_generate_answers_truncates_long_prompts_and_checks_budget():
    model, tok = _model_and_tokenizer(block_size=16)
    out = answering.generate_answers(model, tok, ["abcdefghij" * 3], max_new_tokens=6)
    assert len(out) == 1
    with pytest.raises(ConfigError):
        answering.generate_answers(model, tok, ["a"], max_new_tokens=16)


def test_evaluate_scores_every_example():
    model, tok = _model_and_tokenizer()
    task = task_data.translation_task(10, 6, seed=0)
    prompts = [prompting.zero_shot_prompt(task, e.x, instruction=False) for e in task.test]
    result = scoring.evaluate(model, tok, task, prompts, "zero-shot", max_new_tokens=8)
    assert len(result.predictions) == 6 and set(result.scores) == {"exact match", "CER", "_edits", "_chars"}
    em = result.interval("exact match", n_resamples=100)
    cer = result.interval("CER", n_resamples=100)
    assert em.low <= em.value <= em.high and cer.low <= cer.value <= cer.high
    assert cer.value == pytest.approx(sum(result.scores["_edits"]) / sum(result.scores["_chars"]))
    assert len(result.failures(3)) <= 3 and sum(result.error_counts().values()) == 6 - sum(result.scores["exact match"])
    with pytest.raises(ConfigError):
        scoring.evaluate(model, tok, task, prompts[:2], "zero-shot")


def test_stop_tokens_include_merged_newlines():
    tok = CharTokenizer.train("ab\n")
    assert tok.decode(answering.stop_token_ids(tok).tolist()) == "\n"


def test_prompt_lists():
    task = task_data.translation_task(30, 4, seed=0)
    assert prompting.zero_shot_prompts(task) == [prompting.zero_shot_prompt(task, e.x) for e in task.test]
    demonstrations = "".join(prompting.demonstration(task, e) for e in task.train + task.test)
    tok = CharTokenizer.train(demonstrations + task.instruction)
    prompts, shots = prompting.few_shot_prompts(task, tok, shots=2, budget=10_000, seed=1)
    assert shots == [2] * 4 and all(p.count("\n") == 3 for p in prompts)  # instruction + 2 demonstrations
    assert prompting.few_shot_prompts(task, tok, 2, 10_000, seed=1) == (prompts, shots)  # seeded
    test_inputs = {e.x for e in task.test}
    assert not any(line.split(" =")[0] in test_inputs for p in prompts for line in p.split("\n")[1:-1])
    _, fewer = prompting.few_shot_prompts(task, tok, shots=2, budget=40, seed=1)
    assert max(fewer) < 2


def test_first_token_stop_probability_matches_the_model_and_explains_empty_answers():
    model, tok = _model_and_tokenizer()
    prompts = ["abc =", "j =", "abcdefg =", "十二 = 12\ncd ="]
    p = answering.first_token_stop_probability(model, tok, prompts, max_new_tokens=8, batch_size=3)
    assert p.shape == (4,) and bool(((p >= 0) & (p <= 1)).all())
    newline = tok.encode("\n")[0]
    for prompt, value in zip(prompts, p.tolist()):  # one at a time, no padding: the same number
        with torch.no_grad():
            alone = model(torch.tensor([tok.encode(prompt)])).logits[0, -1].softmax(-1)[newline]
        assert value == pytest.approx(float(alone), abs=1e-5)
    answers = answering.generate_answers(model, tok, prompts, max_new_tokens=8)
    for answer, value in zip(answers, p.tolist()):
        if answer == "":  # greedy wrote the newline first: it was the most likely token
            assert value > 1 / tok.vocab_size
    with pytest.raises(ConfigError):
        answering.first_token_stop_probability(model, tok, ["a"], max_new_tokens=48)


def test_paired_comparison_counts_discordant_examples():
    task = task_data.translation_task(10, 6, seed=0)

    def run(method, right):
        scores = {"exact match": [float(r) for r in right]}
        return scoring.TaskEval(task, method, [""] * 6, [""] * 6, [""] * 6, scores)

    row = scoring.paired_comparison(run("a", [1, 1, 1, 1, 1, 0]), run("b", [0, 0, 0, 0, 1, 0]), n_resamples=200)
    assert row["difference"] == pytest.approx(4 / 6) and row["only a right"] == 4 and row["only b right"] == 0
    assert row["low"] > 0 and row["verdict"] == "a better"
    same = scoring.paired_comparison(run("a", [1, 0] * 3), run("b", [1, 0] * 3))
    assert (same["low"], same["high"], same["verdict"]) == (0.0, 0.0, "not shown to differ")
    other = task_data.translation_task(10, 6, seed=1)
    other.name = "another"
    with pytest.raises(ConfigError):
        scoring.paired_comparison(run("a", [1] * 6), scoring.TaskEval(other, "b", [], [], [], {"exact match": [1.0] * 6}))


def test_rates_get_exact_intervals():
    task = task_data.translation_task(10, 6, seed=0)
    none_right = scoring.TaskEval(task, "x", [""] * 6, [""] * 6, [""] * 6, {"exact match": [0.0] * 6})
    interval = none_right.interval("exact match")
    assert interval.value == 0.0 and interval.low == 0.0 and interval.high > 0.3  # 0/6: up to 0.46


def test_ngram_baseline_learns_spelling():
    questions = [f"Which module defines `{p}{s}`?" for p in ("get", "set", "put") for s in ("Level", "Name", "X")]
    answers = ["logging"] * 3 + ["os"] * 3 + ["json"] * 3
    clf = ngram_baseline.fit_ngram_classifier(questions, answers, steps=200)
    assert clf.losses[-1] < clf.losses[0]
    assert clf.predict(["`getThing` is defined in which module?", "`setAll`?"]) == ["logging", "os"]
    assert ngram_baseline.char_ngrams("ab", 2) == ["^", "a", "b", "$", "^a", "ab", "b$"]
    with pytest.raises(DataError):
        ngram_baseline.question_name("no name here")
