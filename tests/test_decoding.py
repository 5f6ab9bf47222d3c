"""Tests of chapter 3's library: decoding_metrics, decoding_study and output_exercises."""

from __future__ import annotations

import math

import pytest
import torch
from tiny_models import sharp_tiny_gpt

from roots_course.core.attention import KVCache
from roots_course.core.generate import generate, process_logits, sequence_log_prob
from roots_course.core.model import GPT, GPTConfig
from roots_course.core.tokenizer import CharTokenizer
from roots_course.course.exercises import check
from roots_course.errors import ConfigError
from roots_course.output import decoding_metrics as dm
from roots_course.output import decoding_study as ds
from roots_course.output.exercises import EXERCISES

tiny_model = sharp_tiny_gpt


# ---- entropy -------------------------------------------------------------------------------------


def test_entropy_of_known_distributions():
    assert dm.entropy_bits(torch.zeros(8)).item() == pytest.approx(3.0)  # uniform over 8: log2 8
    assert dm.entropy_bits(torch.tensor([0.0, float("-inf")])).item() == pytest.approx(0.0)
    p = torch.tensor([0.5, 0.25, 0.25])
    assert dm.entropy_bits(p.log()).item() == pytest.approx(1.5)
    assert dm.entropy_bits(torch.randn(3, 5, 7)).shape == (3, 5)


def test_entropy_rises_with_temperature_and_reaches_its_limits():
    logits = torch.randn(20, 50) * 3
    temps = [0.01, 0.3, 1.0, 2.0, 10.0, 1000.0]
    h = dm.entropy_by_temperature(logits, temps)  # (6, 20)
    assert h.shape == (6, 20)
    assert bool((h[1:] >= h[:-1] - 1e-5).all())
    assert float(h[0].median()) < 0.05  # near-greedy: almost all mass on one token (unless two nearly tie)
    assert float(h[-1].min()) == pytest.approx(math.log2(50), abs=1e-2)  # near-uniform
    with pytest.raises(ConfigError):
        dm.entropy_bits(logits, 0.0)


def test_nucleus_size_matches_process_logits():
    logits = torch.randn(40, 30) * 2
    for p in (0.2, 0.5, 0.9, 1.0):
        kept = process_logits(logits, top_p=p).isfinite().sum(-1)
        assert torch.equal(dm.nucleus_size(logits, p), kept)
    assert dm.nucleus_size(torch.tensor([[10.0, 0.0, 0.0]]), 0.5).item() == 1


# ---- diversity and repetition ----------------------------------------------------------------------


def test_distinct_n_by_hand():
    assert dm.distinct_n([[1, 2, 3, 4]], 1) == 1.0
    assert dm.distinct_n([[1, 1, 1, 1]], 1) == 0.25
    assert dm.distinct_n([[1, 2, 1, 2]], 2) == pytest.approx(2 / 3)  # (1,2) (2,1) (1,2)
    assert dm.distinct_n([[1, 2], [2, 1]], 2) == 1.0  # no n-gram crosses the boundary
    assert dm.distinct_n([[1, 2], [1, 2]], 2) == 0.5  # the same text twice: half are repeats
    assert dm.distinct_n([[7]], 2) == 0.0 and dm.distinct_n([], 1) == 0.0
    assert dm.distinct_n(["ab", "ba"], 1) == 0.5  # works on characters too


def test_repetition_rate_counts_repeats_within_a_sequence_only():
    assert dm.repeated_ngrams([1, 2, 3, 1, 2, 3], 3) == (1, 4)  # (1,2,3) twice; 4 trigrams
    assert dm.repetition_rate([[1, 2, 3, 4], [1, 2, 3, 4]], 2) == 0.0  # across sequences: not repetition
    assert dm.repetition_rate([[5] * 10], 4) == pytest.approx(6 / 7)  # a loop: every 4-gram after the first
    assert dm.repetition_rate([[1, 2]], 4) == 0.0
    with pytest.raises(ConfigError):
        dm.ngrams([1, 2], 0)


# ---- Python or not ---------------------------------------------------------------------------------


@pytest.mark.parametrize("source, status", [
    ("def f(x):\n    return x\n", "complete"),
    ("import os\nimport sys\n", "complete"),
    ("return\n", "complete"),  # the parser accepts it; only the compiler objects
    ("def f(x):\n", "incomplete"),
    ("x = (1,\n", "incomplete"),
    ('"""an open docstring\n', "incomplete"),
    ("import os.\n", "invalid"),
    ("foo bar\n", "invalid"),
    ("class\n", "invalid"),
    ("x = '\\d'\n", "complete"),  # an invalid escape warns; it is still Python
    ("a\x00b", "invalid"),
])
def test_python_status(source, status):
    assert dm.python_status(source) == status
    assert dm.parses_as_python(source) == (status == "complete")


def test_complete_lines_and_rates():
    assert dm.complete_lines("x = 1\ny = fo") == "x = 1\n"
    assert dm.complete_lines("import os") == "import os"
    # the unfinished last line is dropped before parsing
    pairs = [("x", " = 1\ny = 2 +"), ("def", " f(x):\n    return"), ("not", " python at all\n"),
             ("for", " i in range(3):\n"), ("return", "\n\n\n"), ("import", " os")]
    assert [dm.code_status(p, c) for p, c in pairs] == ["complete", "incomplete", "invalid", "incomplete",
                                                        "empty", "complete"]
    parses, valid = dm.python_rates(pairs)
    assert parses == pytest.approx(2 / 6) and valid == pytest.approx(4 / 6)  # 'empty' counts as neither
    assert dm.python_rates([]) == (0.0, 0.0)


# ---- scoring text ------------------------------------------------------------------------------------


def test_perplexity():
    assert dm.perplexity(0.0, 5) == 1.0
    assert dm.perplexity(-10 * math.log(7), 10) == pytest.approx(7.0)
    with pytest.raises(ConfigError):
        dm.perplexity(-1.0, 0)


@pytest.mark.parametrize("length", [2, 9, 17, 40, 101])
def test_batched_token_log_probs_agree_with_sequence_log_prob(length):
    model = tiny_model()
    ids = torch.randint(0, 40, (length,)).tolist()
    logp = dm.token_log_probs(model, ids, batch_size=3)
    assert logp.shape == (length - 1,)
    assert float(logp.sum()) == pytest.approx(sequence_log_prob(model, ids), rel=1e-4, abs=1e-3)
    assert model.training  # the mode is given back


def test_continuation_log_prob_is_the_tail_of_the_sequence():
    model = tiny_model()
    prompt, new = [1, 2, 3], [4, 5, 6, 7]
    whole = sequence_log_prob(model, prompt + new)
    head = sequence_log_prob(model, prompt)
    assert dm.continuation_log_prob(model, prompt, new) == pytest.approx(whole - head, abs=1e-4)
    assert dm.continuation_log_prob(model, prompt, []) == 0.0


def test_score_text_units_are_consistent():
    text = "the cat sat on the mat. " * 20
    tok = CharTokenizer.train(text)
    model = tiny_model(vocab_size=tok.vocab_size, block_size=32)
    s = dm.score_text(model, tok, text, name="cats")
    assert s.tokens == len(text) and s.tokens_per_character == 1.0  # one token per character
    assert s.perplexity == pytest.approx(math.exp(s.nats_per_token))
    assert s.bits_per_token == pytest.approx(s.nats_per_token / math.log(2))
    assert s.bits_per_character == pytest.approx(s.bits_per_token * (len(text) - 1) / len(text))
    assert s.as_row()["name"] == "cats"


# ---- strategies and prompts ------------------------------------------------------------------------


def test_strategies_decode_and_describe_themselves():
    model = tiny_model()
    strategies = ds.standard_strategies(top_k=5, top_p=0.8, beam_width=3, repetition_penalty=1.5)
    assert [s.stochastic for s in strategies].count(False) == 3
    g = torch.Generator().manual_seed(0)
    for s in strategies:
        assert len(s.decode(model, [1, 2], 6, generator=g)) == 6
        assert s.settings()
    greedy = ds.Strategy("greedy", "greedy")
    top1 = ds.Strategy("top-1", "sample", top_k=1)
    assert top1.decode(model, [3], 10, generator=g) == greedy.decode(model, [3], 10)  # top-k 1 is greedy
    with pytest.raises(ConfigError):
        ds.Strategy("x", "nucleus")


class WordTokenizer:
    """A toy tokenizer: one id per character, enough to test prompt building."""

    def encode(self, text):
        return [ord(c) % 97 for c in text]

    def decode(self, ids):
        return "".join(chr(i + 97) for i in ids)


def test_prose_prompts_take_first_words_and_skip_duplicates_and_short_documents():
    docs = ["Alpha beta gamma delta epsilon zeta eta theta", "Alpha beta gamma delta again and again",
            "Too short", "One two three four five six seven eight nine"]
    prompts = ds.prose_prompts(docs, ["a", "b", "c", "d"], WordTokenizer(), n=5, words=4, reference_tokens=6)
    assert [p.text for p in prompts] == ["Alpha beta gamma delta", "One two three four"]
    assert prompts[0].reference == tuple(WordTokenizer().encode(" epsil"))  # the next 6 tokens, space first
    assert prompts[1].source == "d" and all(p.kind == "prose" for p in prompts)


def test_code_prompts_find_references_at_line_starts():
    code = "x = 1\nimportlib_thing = 2\n    import os, sys, math, json\n"
    prompts = ds.code_prompts(["import", "class"], WordTokenizer(), [code], ["mod"], reference_tokens=5)
    assert WordTokenizer().decode(prompts[0].reference) == WordTokenizer().decode(WordTokenizer().encode(" os, "))
    assert prompts[0].source == "mod" and prompts[1].reference == ()
    with pytest.raises(ConfigError):
        ds.code_prompts(["def "], WordTokenizer())


def test_indented_references_are_moved_to_the_margin_and_end_with_their_block():
    code = ("class A:\n    def f(self):\n        return 1\n\n    def g(self):\n        for i in range(3):\n"
            "            print(i)\n\n            print(i * 2)\n        return 2\n")
    start = code.index("for i in") + len("for i in")
    assert ds.indented_block(code, start, " " * 8) == " range(3):\n    print(i)\n\n    print(i * 2)\nreturn 2\n"
    ret = code.index("return 1") + len("return")
    assert ds.indented_block(code, ret, " " * 8) == " 1\n"  # the block ends where the indentation drops
    prompts = ds.code_prompts(["for i in", "return"], WordTokenizer(), [code], ["m"], reference_tokens=12)
    assert WordTokenizer().decode(prompts[0].reference) == WordTokenizer().decode(WordTokenizer().encode(" range(3):\n "))
    assert prompts[1].reference == ()  # every `return` block here is shorter than 12 tokens
    assert dm.code_status("for i in", " range(3):\n    print(i)\n") == "complete"


def test_run_and_summarize_a_small_comparison():
    model = tiny_model()
    tok = WordTokenizer()
    prompts = [ds.Prompt("prose", "ab", (1, 2), (3, 4, 5, 6, 7, 8)), ds.Prompt("code", "cd", (3, 4), ())]
    strategies = [ds.Strategy("greedy", "greedy"), ds.Strategy("hot", "sample", temperature=2.0),
                  ds.Strategy("beam", "beam", beam_width=3)]
    conts = ds.run_strategies(model, tok, prompts, strategies, max_new_tokens=6, rounds=3, seed=1)
    assert len(conts) == 2 + 2 * 3 + 2
    again = ds.run_strategies(model, tok, prompts, strategies, max_new_tokens=6, rounds=3, seed=1)
    assert [c.ids for c in conts] == [c.ids for c in again]  # seeded: reproducible
    conts += ds.reference_continuations(model, tok, prompts, max_new_tokens=4)
    rows = {r["strategy"]: r for r in ds.summarize(conts, repetition_n=2)}
    assert list(rows) == ["greedy", "hot", "beam", ds.REFERENCE]
    assert rows["hot"]["continuations"] == 6 and rows[ds.REFERENCE]["tokens"] == 4
    for r in rows.values():
        assert r["perplexity"] == pytest.approx(math.exp(-r["log-prob per token"]))
        assert 0 < r["distinct-1"] <= 1 and 0 <= r["repetition (2-grams)"] <= 1
    assert rows["beam"]["log-prob per token"] >= rows["greedy"]["log-prob per token"] - 1e-6
    assert math.isnan(rows[ds.REFERENCE]["parses"])  # the only reference is for a prose prompt
    assert ds.best(list(rows.values()), "perplexity", highest=False)["strategy"] != ds.REFERENCE
    near = ds.closest(list(rows.values()), "perplexity", rows[ds.REFERENCE]["perplexity"], log=True)
    assert near["strategy"] in ("greedy", "hot", "beam")
    with pytest.raises(ConfigError):
        ds.best(list(rows.values()), "parses", highest=True, exclude=["greedy", "hot", "beam", ds.REFERENCE])


# ---- the KV cache ------------------------------------------------------------------------------------


def test_kv_memory_formula_matches_the_cache():
    for n_layer, n_head, n_embd in ((2, 2, 64), (6, 6, 192), (3, 4, 32)):
        model = GPT(GPTConfig(vocab_size=50, block_size=24, n_layer=n_layer, n_head=n_head, n_embd=n_embd))
        assert ds.measured_kv_bytes_per_token(model) == ds.kv_bytes_per_token(n_layer, n_embd, 4)
        assert ds.measured_kv_bytes_per_token(model, 5) == ds.kv_bytes_per_token(n_layer, n_embd, 4)
    half = KVCache(4, 1, 8, 16, 10, dtype=torch.float16)
    assert half.memory_bytes() == 10 * ds.kv_bytes_per_token(4, 128, 2)
    assert ds.kv_bytes_per_token(80, 8192, 2, n_kv_heads=8, head_dim=128) == 2 * 80 * 1024 * 2  # grouped-query
    with pytest.raises(ConfigError):
        ds.kv_bytes_per_token(0, 64, 4)


def test_timing_lengths_fit_the_window():
    assert ds.timing_lengths(64, 4, 4) == [15, 30, 45, 60]
    assert ds.timing_lengths(10, 9, 3) == [1]
    with pytest.raises(ConfigError):
        ds.timing_lengths(8, 8, 2)


def test_time_kv_cache_reports_identical_text():
    model = tiny_model(block_size=32)
    rows = ds.time_kv_cache(model, [1, 2, 3], [4, 20], repeats=1)
    assert [r["new tokens"] for r in rows] == [4, 20]
    assert all(r["same tokens"] and r["tokens/s with cache"] > 0 and r["speed-up"] > 0 for r in rows)
    cached = generate(model, [1, 2, 3], 20, greedy=True)
    assert cached == generate(model, [1, 2, 3], 20, greedy=True, use_cache=False)


# ---- the exercises -------------------------------------------------------------------------------------


def test_every_reference_solution_passes_its_own_check():
    for exercise in EXERCISES.values():
        result = check(exercise, exercise.reference)
        assert result.passed and not result.used_reference, result.message


def test_reference_solutions_agree_with_the_library():
    for logits, p in EXERCISES["top_p_filter"].cases():
        torch.testing.assert_close(EXERCISES["top_p_filter"].reference(logits, p), process_logits(logits, top_p=p))
    for n_layer, n_embd, n_tokens, batch, nbytes in EXERCISES["kv_cache_bytes"].cases():
        dtype = {1: torch.int8, 2: torch.float16, 4: torch.float32}[nbytes]
        if n_layer * n_embd * n_tokens * batch <= 2_000_000:  # small enough to allocate here
            cache = KVCache(n_layer, batch, 1, n_embd, n_tokens, dtype=dtype)
            assert EXERCISES["kv_cache_bytes"].reference(n_layer, n_embd, n_tokens, batch, nbytes) == cache.memory_bytes()
    for sequences, n in EXERCISES["distinct_n"].cases():
        assert EXERCISES["distinct_n"].reference(sequences, n) == dm.distinct_n(sequences, n)
    for logits, previous, penalty in EXERCISES["penalize_repeats"].cases():
        expected = process_logits(logits, repetition_penalty=penalty, previous_ids=previous or None)
        torch.testing.assert_close(EXERCISES["penalize_repeats"].reference(logits, previous, penalty), expected)


def test_typical_mistakes_are_caught():
    def top_p_drops_the_crossing_token(logits, p):  # keeps tokens strictly below p: one too few
        probs = torch.softmax(logits, -1)
        sorted_p, order = probs.sort(descending=True)
        keep_sorted = sorted_p.cumsum(-1) < p
        keep = torch.zeros_like(keep_sorted).scatter(0, order, keep_sorted)
        return logits.masked_fill(~keep, float("-inf"))

    assert not check(EXERCISES["top_p_filter"], top_p_drops_the_crossing_token).passed
    assert not check(EXERCISES["kv_cache_bytes"], lambda L, C, T, B, b: L * C * T * B * b).passed  # forgot V

    def distinct_across_boundaries(sequences, n):
        flat = [t for s in sequences for t in s]
        grams = [tuple(flat[i : i + n]) for i in range(len(flat) - n + 1)]
        return len(set(grams)) / len(grams) if grams else 0.0

    assert not check(EXERCISES["distinct_n"], distinct_across_boundaries).passed
    assert not check(EXERCISES["penalize_repeats"], lambda lg, prev, pen: lg.index_put(
        (torch.tensor(sorted(set(prev)), dtype=torch.long),), lg[sorted(set(prev))] / pen) if prev else lg.clone()).passed


def test_next_token_logits_are_the_models_own():
    model = tiny_model(block_size=8)
    ids = torch.randint(0, 40, (30,))
    logits, targets = dm.next_token_logits(model, ids, 12)
    assert logits.shape == (12, 40) and torch.equal(targets, ids[1:13])
    with torch.no_grad():
        model.eval()
        direct = model(ids[None, 8:16]).logits[0]  # the second window
    torch.testing.assert_close(logits[8:12], direct[:4])
    with pytest.raises(ConfigError):
        dm.next_token_logits(model, ids[:8], 4)


def test_prose_prompts_are_spread_over_the_split():
    docs = [f"Document number {i} says something long enough here" for i in range(10)]
    prompts = ds.prose_prompts(docs, [str(i) for i in range(10)], WordTokenizer(), n=3, words=3, reference_tokens=4)
    assert [p.source for p in prompts] == ["0", "3", "6"]


def test_chapter_3_plots_draw_labelled_figures():
    import matplotlib

    matplotlib.use("Agg")
    from roots_course.output import plots

    rows = [{"strategy": "greedy", "perplexity": 5.0, "distinct-2": 0.1},
            {"strategy": ds.REFERENCE, "perplexity": 40.0, "distinct-2": 0.8}]
    timing = [{"new tokens": 8, "tokens/s with cache": 900.0, "tokens/s without cache": 700.0},
              {"new tokens": 16, "tokens/s with cache": 880.0, "tokens/s without cache": 500.0}]
    figures = [
        plots.plot_next_token_probs(["a", "b"], {"T = 1": [0.6, 0.4], "T = 2": [0.55, 0.45]}, title="t"),
        plots.plot_entropy_vs_temperature([0.5, 1.0, 2.0], [1, 2, 3], [0.5, 1.5, 2.5], [1.5, 2.5, 3.5], 5.0, "t"),
        plots.plot_nucleus_sizes([3, 5, 9, 40], 0.9, 10, "t"),
        plots.plot_quality_diversity(rows, "t"),
        plots.plot_kv_timing({"model": timing}, "t"),
    ]
    for fig in figures:
        ax = fig.axes[0]
        assert ax.get_xlabel() and ax.get_ylabel() and ax.get_title()


# ---- diverse references and fair samples ---------------------------------------------------------

CODEC_TABLE = ('""" Python Character Mapping Codec cp000 generated from \'X.TXT\'.\n"""\n'
               "decoding_table = (\n" + "".join(f"    '\\x{i:02x}'  #  0x{i:02X} -> X\n" for i in range(40))
               + ")\n")


def test_looks_generated_finds_codec_tables_and_spares_handwritten_code():
    assert dm.looks_generated(CODEC_TABLE)
    assert dm.looks_generated(CODEC_TABLE.replace("generated from", "from"))  # the table alone suffices
    assert not dm.looks_generated("import os\n\ndef f(x):\n    return x + 1\n")
    assert not dm.looks_generated("")


def test_code_prompts_take_each_module_once_and_skip_generated_ones():
    tok = WordTokenizer()
    body = " a , b , c , d , e\n"
    texts = [CODEC_TABLE + "import x , y , z , w\nclass" + body,
             "import os , sys , math , json\nclass" + body,
             "import re , io , abc , ast\nclass" + body]
    names = ["encodings.cp000", "first", "second"]
    prompts = ds.code_prompts(["import", "class"], tok, texts, names, reference_tokens=4)
    assert [p.source for p in prompts] == ["first", "second"]  # one module each, the table skipped
    kept = ds.code_prompts(["import"], tok, texts, names, reference_tokens=4, skip_generated=False)
    assert kept[0].source == "encodings.cp000"
    orders = {tuple(p.source for p in ds.code_prompts(["import", "class"], tok, texts, names,
                                                      reference_tokens=4, seed=s)) for s in range(20)}
    assert orders == {("first", "second"), ("second", "first")}  # seeded, and the seed matters
    again = ds.code_prompts(["import", "class"], tok, texts, names, reference_tokens=4, seed=3)
    assert again == ds.code_prompts(["import", "class"], tok, texts, names, reference_tokens=4, seed=3)
    pinned = ds.code_prompts(["import"], tok, texts[::-1], names[::-1], reference_tokens=4,
                             seed=5, preferred=1)
    assert pinned[0].source == "second"  # the preferred modules come first, whatever the seed
    with pytest.raises(ConfigError):
        ds.code_prompts(["import"], tok, texts, names, preferred=4)


def test_random_windows_sample_the_whole_text_reproducibly():
    text = "".join(f"line {i:05d}\n" for i in range(20000))  # 220,000 characters
    sample = dm.random_windows(text, 20000, window_chars=1000, seed=1)
    assert len(sample) == 20000
    assert sample == dm.random_windows(text, 20000, window_chars=1000, seed=1)
    assert sample != dm.random_windows(text, 20000, window_chars=1000, seed=2)
    numbers = [int(line.split()[1]) for line in sample.split("\n") if line.startswith("line ")
               and len(line) == 10]
    assert max(numbers) > 10000, "windows must come from all over the text, not its opening"
    assert sample.startswith("line "), "each window starts at a line"
    assert numbers == sorted(numbers), "windows keep their order in the text"
    assert dm.random_windows("short", 100) == "short"
    with pytest.raises(ConfigError):
        dm.random_windows(text, 0)
