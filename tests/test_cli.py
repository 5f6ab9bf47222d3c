"""The command line: doctor, train (end to end on tiny settings) and sample, and its error messages."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def run_cli(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "roots_course", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


def test_doctor_reports_every_check():
    result = run_cli("doctor")
    assert result.returncode == 0, result.stdout + result.stderr
    for name in ("python", "torch", "prefect", "papermill", "jupyter-book", "device", "HF_HUB_OFFLINE", "profiles"):
        assert any(line.split()[1:2] == [name] for line in result.stdout.splitlines()), name
    assert "FAIL" not in result.stdout


def test_train_on_a_text_file_then_sample(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("the cat sat on the mat. the dog sat on the log.\n" * 200 + "猫坐在垫子上。\n" * 20,
                    encoding="utf-8")
    out = tmp_path / "run"
    result = run_cli("train", "--profile", "smoke", "--text", str(text), "--tokenizer", "char",
                     "--steps", "30", "--out", str(out), "--threads", "1")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout[result.stdout.index("\n{") + 1:])
    assert summary["steps"] == 30
    assert summary["val_loss"] < summary["train_loss"] + 1.0
    assert summary["parameters"] > 0 and summary["tokens_per_s"] > 0
    checkpoint = Path(summary["checkpoint"])
    assert (checkpoint / "model.safetensors").is_file()

    sampled = run_cli("sample", "--checkpoint", str(checkpoint), "--prompt", "the ", "--max-new-tokens", "20")
    assert sampled.returncode == 0, sampled.stderr
    assert sampled.stdout.startswith("the ")
    beam = run_cli("sample", "--checkpoint", str(checkpoint), "--prompt", "the ", "--max-new-tokens", "10",
                   "--beam-width", "3")
    assert beam.returncode == 0, beam.stderr


@pytest.mark.parametrize("args, message", [
    (["train", "--profile", "laptop"], "unknown profile 'laptop'; allowed profiles: smoke, cpu, gpu"),
    (["train", "--profile", "smoke", "--steps", "0"], "expected a positive integer, got 0"),
    (["train", "--profile", "smoke", "--steps", "-3"], "expected a positive integer, got -3"),
    (["train", "--profile", "smoke", "--threads", "0"], "expected a positive integer, got 0"),
])
def test_bad_arguments_fail_with_a_clear_message(args, message):
    result = run_cli(*args)
    assert result.returncode == 2
    assert message in result.stderr


def test_empty_and_non_utf8_files_are_refused(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("   \n")
    result = run_cli("train", "--profile", "smoke", "--text", str(empty), "--out", str(tmp_path / "a"))
    assert result.returncode == 2 and "empty.txt" in result.stderr and "empty" in result.stderr.lower()
    latin = tmp_path / "latin1.txt"
    latin.write_bytes("caf\u00e9 au lait\n".encode("latin-1") * 10)
    result = run_cli("train", "--profile", "smoke", "--text", str(latin), "--out", str(tmp_path / "b"))
    assert result.returncode == 2 and "latin1.txt" in result.stderr and "UTF-8" in result.stderr


def test_sample_from_a_missing_checkpoint_names_it(tmp_path):
    result = run_cli("sample", "--checkpoint", str(tmp_path / "nowhere"), "--prompt", "x")
    assert result.returncode == 2
    assert "nowhere" in result.stderr
