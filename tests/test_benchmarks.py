"""Every benchmark script runs with one command and prints one JSON document (tiny settings here; no
timing is asserted: figures come from quiet machines, see README "Performance")."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def run_benchmark(script: str, *args: str) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "ROOTS_QUIET": "1"}
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, check=False, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


@pytest.mark.slow
def test_train_throughput_reports_compile_and_load():
    report = run_benchmark("train_throughput.py", "--configs", "smoke", "--steps", "2", "--warmup", "1",
                           "--threads", "1")
    (result,) = report["results"]
    assert report["threads"] == 1 and len(report["load_average_1_5_15_min_before"]) == 3
    assert result["compiled"] is False and result["ms_per_iter"] > 0 and result["first_step_s"] > 0


@pytest.mark.slow
def test_generate_speed_with_a_longer_context_model():
    report = run_benchmark("generate_speed.py", "--profile", "smoke", "--lengths", "8", "100", "--repeats", "1",
                           "--threads", "1", "--block-size", "128")
    assert report["block_size"] == 128 and "128-token context instead of its 64" in report["model"]
    rows = {(r["new_tokens"], r["mode"]): r for r in report["results"]}
    assert set(rows) == {(8, "greedy"), (8, "sampled"), (100, "greedy"), (100, "sampled")}
    assert all(r["tokens_per_s_cached"] > 0 and r["tokens_per_s_uncached"] > 0 for r in rows.values())
    assert rows[(8, "greedy")]["same_tokens"]
    short = run_benchmark("generate_speed.py", "--profile", "smoke", "--lengths", "100", "--repeats", "1")
    assert "--block-size 104" in short["results"][0]["skipped"]


@pytest.mark.slow
def test_tokenizer_speed_reports_both_tokenizers():
    report = run_benchmark("tokenizer_speed.py", "--max-chars", "60000", "--vocab-sizes", "300", "--repeats", "1")
    kinds = {r["tokenizer"]: r for r in report["results"]}
    assert set(kinds) == {"bpe", "fast_bpe"}
    assert all(r["train_mb_per_s"] > 0 and r["encode_mb_per_s"] > 0 for r in kinds.values())
    assert kinds["bpe"]["tokens"] > 0 and report["bpe_trains_smoke_vocabulary_under_10_s"] is None


@pytest.mark.slow
def test_gpu_check_runs_on_the_cpu():
    report = run_benchmark("gpu_check.py", "--profile", "smoke", "--device", "cpu", "--steps", "2", "--threads", "1",
                           "--no-compile")
    assert report["adamw_fused"] is True and report["flash_only_training_step"] == "ok"
    assert any("flash_attention" in op for op in report["attention_ops_in_a_training_step"])
    assert report["training"][0]["tokens_per_s"] > 0


@pytest.mark.slow
def test_attention_paths_compares_both_implementations_against_seed_noise():
    report = run_benchmark("attention_paths.py", "--steps", "4", "--eval-every", "2", "--threads", "1",
                           "--max-chars", "50000")
    assert set(report["ms_per_iter_median"]) == {"fused", "written-out"}
    for curves in report["val_loss_by_seed"].values():
        assert set(curves["fused"]) == set(curves["written-out"]) == {"2", "4"}
    assert report["largest_difference_between_implementations"] < 1e-3   # the same function, so the same steps
    assert report["noise_largest_difference_between_seeds"] > 0


def test_train_vs_reference_skips_cleanly_without_a_checkout(tmp_path):
    text = tmp_path / "text.txt"
    text.write_text("some plain text\n" * 100)
    report = run_benchmark("train_vs_reference.py", "--text", str(text), "--arms", "reference",
                           "--reference", str(tmp_path / "no-nanoGPT-here"))
    assert report["skipped"].startswith("reference arm skipped: no nanoGPT checkout at")
    assert "git clone https://github.com/karpathy/nanoGPT" in report["skipped"]


def test_train_vs_reference_reads_what_both_trainers_print():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import train_vs_reference as ab
    finally:
        sys.path.pop(0)
    from roots_course.core.progress import format_row

    row = {"step": 100, "lr": 1e-3, "train_loss": 2.5, "val_loss": 2.25, "grad_norm": 0.5,
           "tokens_per_s": 12345.0, "mfu": None, "elapsed_s": 9.5}
    course = [(1.0, ("pretraining a 0.80 M-parameter GPT for 300 steps on cpu (2 cores, 2 threads, "
                     "OMP_WAIT_POLICY=ACTIVE: 2 threads vs load 0.10 on 2 cores)")),
              (2.0, format_row({**row, "step": 10, "val_loss": None, "tokens_per_s": 10000.0}, 300)),
              (6.0, format_row(row, 300))]
    run = ab.summarize("course", course, 7.0, 0)
    assert run["wait_policy"] == "ACTIVE (2 threads vs load 0.10 on 2 cores)"
    assert run["tokens_per_s"] == round(90 * ab.TOKENS_PER_STEP / 4.0, 1) and run["step_tokens_per_s"] == 11172.5
    assert run["validations"] == [(100, 2.25, 6.0)] and run["final_val_loss"] == 2.25
    reference = [(0.5, "step 0: train loss 4.6, val loss 4.7"), (1.0, "iter 0: loss 4.6, time 900.00ms, mfu -100.00%"),
                 (3.0, "iter 10: loss 3.1, time 76.80ms, mfu 1.00%"), (5.0, "step 20: train loss 2.2, val loss 2.3"),
                 (5.5, "iter 20: loss 2.4, time 80.00ms, mfu 1.00%")]
    ref = ab.summarize("reference", reference, 6.0, 0)
    assert ref["step_tokens_per_s"] == round(statistics.median([768 / 0.0768, 768 / 0.08]), 1)
    assert ref["final_val_loss"] == 2.3 and ab.time_to(ref, 2.3) == 5.0
    ratios = ab.ratios({"course": run, "reference": ref}, "reference")
    assert ratios["course"]["time_to_target"] == round(5.0 / 6.0, 3)


def test_train_vs_reference_stops_a_run_that_takes_too_long(tmp_path):
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import train_vs_reference as ab
    finally:
        sys.path.pop(0)
    slow = [sys.executable, "-u", "-c", "import time; print('started'); time.sleep(30)"]
    lines, wall, status = ab.run_timed(slow, tmp_path, dict(os.environ), max_s=1.0)
    assert status is None and wall < 20 and [line for _, line in lines] == ["started"]
    lines, _, status = ab.run_timed([sys.executable, "-c", "print('done')"], tmp_path, dict(os.environ), max_s=20)
    assert status == 0 and lines[-1][1] == "done"
