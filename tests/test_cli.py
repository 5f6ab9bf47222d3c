"""The command line: doctor, train (end to end on tiny settings) and sample, and its error messages."""

import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def run_cli(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "roots_course", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow
def test_doctor_reports_every_check():
    result = run_cli("doctor")
    assert result.returncode == 0, result.stdout + result.stderr
    for name in ("python", "torch", "prefect", "papermill", "jupyter-book", "regex", "django-static-mathjax",
                 "selenium", "websocket-client", "browser", "[course]", "[lab]", "[test]", "device",
                 "HF_HUB_OFFLINE", "profiles"):
        assert any(line.split()[1:2] == [name] for line in result.stdout.splitlines()), name
    assert "FAIL" not in result.stdout


@pytest.mark.slow
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


@pytest.mark.slow
def test_empty_and_non_utf8_files_are_refused(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("   \n")
    result = run_cli("train", "--profile", "smoke", "--text", str(empty), "--out", str(tmp_path / "a"))
    assert result.returncode == 2 and "empty.txt" in result.stderr and "empty" in result.stderr.lower()
    latin = tmp_path / "latin1.txt"
    latin.write_bytes("caf\u00e9 au lait\n".encode("latin-1") * 10)
    result = run_cli("train", "--profile", "smoke", "--text", str(latin), "--out", str(tmp_path / "b"))
    assert result.returncode == 2 and "latin1.txt" in result.stderr and "UTF-8" in result.stderr


@pytest.mark.slow
def test_sample_from_a_missing_checkpoint_names_it(tmp_path):
    result = run_cli("sample", "--checkpoint", str(tmp_path / "nowhere"), "--prompt", "x")
    assert result.returncode == 2
    assert "nowhere" in result.stderr


def test_the_cli_knows_the_profiles_and_devices_of_the_course():
    from roots_course.__main__ import DEVICES, PROFILES
    from roots_course.core.device import DEVICE_CHOICES
    from roots_course.course.config import profile_names
    assert list(PROFILES) == profile_names()
    assert DEVICES == DEVICE_CHOICES


@pytest.mark.parametrize("args, message", [
    (["train", "--profile", "laptop"], "unknown profile 'laptop'; allowed profiles: smoke, cpu, gpu"),
    (["train", "--device", "tpu"], "unknown device 'tpu'; allowed devices: auto, cpu, cuda, mps"),
    (["sample", "--checkpoint", "x", "--device", "cuda:x"], "unknown device 'cuda:x'"),
])
def test_bad_profiles_and_devices_are_refused_before_torch_is_imported(args, message):
    probe = ("import sys\nfrom roots_course.__main__ import main\ntry:\n    main(sys.argv[1:])\n"
             "except SystemExit as exc:\n    print('exit', exc.code, 'torch imported:', 'torch' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", probe, *args], cwd=ROOT, capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120, check=False)
    assert result.stdout.strip() == "exit 2 torch imported: False", result.stdout + result.stderr
    assert message in result.stderr


def test_version_and_help_with_examples():
    from roots_course import __version__
    result = run_cli("--version")
    assert result.returncode == 0 and result.stdout.strip() == f"roots_course {__version__}"
    top = run_cli("--help")
    assert "train --profile cpu" in top.stdout
    for command in ("doctor", "train", "sample", "export", "verify"):
        result = run_cli(command, "--help")
        assert result.returncode == 0
        examples = result.stdout.split("examples:")[1]
        assert f"python -m roots_course {command}" in examples, command


def test_sample_on_a_fresh_clone_says_to_train_first(tmp_path):
    missing = tmp_path / "artifacts" / "cpu" / "checkpoints" / "pretrained"
    result = run_cli("sample", "--checkpoint", str(missing), "--prompt", "x")
    assert result.returncode == 2
    assert "python -m roots_course train --profile cpu" in result.stderr
    assert f"looked in {missing.parent}" in result.stderr


def test_verify_tells_no_manifest_from_a_manifest_without_checksums(tmp_path):
    result = run_cli("verify", "--dir", str(tmp_path / "absent"))
    assert result.returncode == 1 and "no such folder" in result.stdout
    result = run_cli("verify", "--dir", str(tmp_path))
    assert result.returncode == 1 and "no manifest here" in result.stdout
    (tmp_path / "manifest.json").write_text("{}")
    result = run_cli("verify", "--dir", str(tmp_path))
    assert result.returncode == 1 and "a manifest without checksums" in result.stdout


def _requirement_names(requirements: list[str]) -> list[str]:
    return [re.split(r"[<>=!~\[; ]", r, maxsplit=1)[0].lower() for r in requirements]


def test_doctor_groups_are_those_of_pyproject():
    from roots_course.course.doctor import GROUPS
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert sorted(GROUPS["course"][2]) == sorted(_requirement_names(project["dependencies"]))
    for extra in ("lab", "test"):
        assert sorted(GROUPS[extra][2]) == sorted(_requirement_names(project["optional-dependencies"][extra]))
        assert f".[{extra}]" in GROUPS[extra][0]


def test_doctor_names_the_extra_for_a_missing_piece(monkeypatch):
    from importlib import metadata

    from roots_course.course import doctor
    real = metadata.version

    def version(dist):
        if dist == "selenium":
            raise metadata.PackageNotFoundError(dist)
        return real(dist)
    monkeypatch.setattr(doctor.metadata, "version", version)
    checks = {c.name: c for c in doctor.package_checks()}
    assert checks["selenium"].status == "WARN" and "pip install -e '.[test]'" in checks["selenium"].detail
    assert checks["[test]"].status == "WARN" and "missing selenium" in checks["[test]"].detail
    assert checks["[course]"].status == "OK" and checks["[lab]"].status == "OK"


def test_doctor_warns_of_a_cuda_torch_without_a_gpu(monkeypatch):
    import torch

    from roots_course.course import doctor
    monkeypatch.setattr(torch.version, "cuda", "12.8")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    checks = {c.name: c for c in doctor.run_checks()}
    assert checks["torch build"].status == "WARN"
    assert "download.pytorch.org/whl/cpu" in checks["torch build"].detail
