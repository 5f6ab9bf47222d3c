"""Reliability and safety of the library (issue #9), each fault injected for real: a training process killed
with SIGKILL and started again, writers killed half-way, damaged artifacts, a malicious pickle, bad input
of every kind, and the network interfaces the course's services listen on.

The pipeline's faults (two runs at once, a full or read-only disk, retries) are in
test_reliability_pipeline.py. Points already tested elsewhere are named where they would be here."""

import errno
import hashlib
import json
import os
import pickle
import queue
import random
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import nbformat
import pytest
import torch

import pipelines  # noqa: F401  (Prefect's environment before prefect is imported, as in production)
from roots_course.store import artifacts, integrity
from roots_course.__main__ import main as roots_main
from roots_course.core.checkpoint import has_checkpoint, load_checkpoint, save_checkpoint
from roots_course.errors import BusyError, CheckpointError, ConfigError, DataError
from roots_course.store.locking import FileLock, describe_holder, held_by_this_process, holder_file
from roots_course.core.model import GPT
from roots_course.core.tokenizer_kinds import load_tokenizer, train_tokenizer

ROOT = Path(__file__).resolve().parent.parent
TESTS = ROOT / "tests"
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}

STEPS = 300
TINY = ["--profile", "smoke", "--tokenizer", "char", "--steps", str(STEPS), "--threads", "1",
        "--set", "model.n_layer=1", "--set", "model.n_embd=32", "--set", "model.block_size=32",
        "--set", "train.batch_size=8", "--set", "train.eval_every=10", "--set", "train.eval_batches=1",
        "--set", "train.log_every=10", "--set", "train.warmup_steps=10"]


def cli(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "roots_course", *args], check=False, cwd=ROOT, env=ENV, capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture(scope="module")
def corpus_file(tmp_path_factory) -> Path:
    words = ["the", "a", "cat", "dog", "sat", "ran", "on", "under", "mat", "log", "tree", "house", "quickly"]
    rng = random.Random(0)
    path = tmp_path_factory.mktemp("corpus") / "notes.txt"
    path.write_text("\n".join(" ".join(rng.choice(words) for _ in range(12)) + "." for _ in range(1500)),
                    encoding="utf-8")
    return path


def train_command(corpus: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "roots_course", "train", "--text", str(corpus), "--out", str(out), *TINY]


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory, corpus_file) -> Path:
    """An uninterrupted run of the tiny training command; its folder (do not change it: copy it)."""
    out = tmp_path_factory.mktemp("reference") / "run"
    result = subprocess.run(train_command(corpus_file, out), check=False, cwd=ROOT, env=ENV, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    return out


def copy_run(reference_run: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(reference_run, tmp_path / "run"))


def checkpoint_step(folder: Path) -> int | None:
    """The step of the checkpoint in ``folder`` as another process sees it now (None: none yet, or mid-swap)."""
    try:
        return json.loads((folder / "state.json").read_text())["step"]
    except (OSError, ValueError, KeyError):
        return None


# --- a crash during pretraining ------------------------------------------------------------------

@pytest.mark.slow
def test_training_killed_at_a_random_step_resumes_and_ends_with_the_uninterrupted_weights(
        corpus_file, reference_run, tmp_path):
    kill_after = random.Random(9).randrange(30, 200, 10)       # a checkpoint step, drawn with a fixed seed
    out = tmp_path / "run"
    command = train_command(corpus_file, out)
    checkpoint = out / "checkpoints" / "pretrained"
    with open(tmp_path / "killed.log", "w") as log:
        process = subprocess.Popen(command, cwd=ROOT, env=ENV, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 120
        while (checkpoint_step(checkpoint) or 0) < kill_after:
            assert process.poll() is None, f"the run ended before step {kill_after}"
            assert time.monotonic() < deadline, "no checkpoint appeared in time"
            time.sleep(0.002)
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL
    assert has_checkpoint(checkpoint)                 # finishes a swap the kill may have cut in two
    killed_at = checkpoint_step(checkpoint)
    assert kill_after <= killed_at < STEPS, "the kill came before the run ended"

    resumed = subprocess.run(command, check=False, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert f"from its checkpoint at step {killed_at} of {STEPS}" in resumed.stdout
    assert f"training for steps {killed_at + 1}..{STEPS}" in resumed.stdout

    reference = reference_run / "checkpoints" / "pretrained"
    for name in ("model.safetensors", "optimizer.safetensors"):
        mine, theirs = artifacts.load_tensors(checkpoint / name), artifacts.load_tensors(reference / name)
        assert mine.keys() == theirs.keys()
        assert all(torch.equal(mine[k], theirs[k]) for k in mine), f"{name} differs from the uninterrupted run's"
    kept = ("step", "lr", "train_loss", "val_loss", "grad_norm")
    history = [{k: row[k] for k in kept} for row in json.loads((checkpoint / "state.json").read_text())["history"]]
    assert history == [{k: row[k] for k in kept}
                       for row in json.loads((reference / "state.json").read_text())["history"]]

    again = subprocess.run([*command, "--restart"], check=False, cwd=ROOT, env=ENV, capture_output=True, text=True,
                           timeout=300)
    assert again.returncode == 0 and "training for steps 1.." in again.stdout      # --restart starts over


# --- no partial file is ever visible -------------------------------------------------------------

def visible_files(folder: Path) -> dict[str, bytes]:
    """Every file a reader would open: hidden ones (temporary files, locks, staging) left out."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts)}


def wait_for_line(lines: queue.Queue, text: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        try:
            line = lines.get(timeout=left)
        except queue.Empty:
            break
        assert line is not None, "the writer ended before it printed " + repr(text)
        if text in line:
            return
    raise AssertionError(f"the writer never printed {text!r}")


def read_lines(stream, lines: queue.Queue) -> None:
    for line in stream:
        lines.put(line)
    lines.put(None)


def kill_writer_half_way(kind: str, folder: Path, watched: Path) -> tuple[dict[str, bytes], dict[str, bytes]]:
    """Run a writer of tests/crash_writers.py: snapshot ``watched`` after its version 1, kill it with SIGKILL
    half-way into version 2; return the snapshots before and after."""
    process = subprocess.Popen([sys.executable, str(TESTS / "crash_writers.py"), kind, str(folder)], cwd=ROOT,
                               env=ENV, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True)
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=read_lines, args=(process.stdout, lines), daemon=True).start()
    try:
        wait_for_line(lines, "version 1 written")
        before = visible_files(watched)
        process.stdin.write("go\n")
        process.stdin.flush()
        wait_for_line(lines, "paused")
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL
    return before, visible_files(watched)


def all_parameters_equal(model: torch.nn.Module, value: float) -> bool:
    return all(bool((p == value).all()) for p in model.parameters())


@pytest.mark.slow
def test_a_checkpoint_writer_killed_mid_write_leaves_the_previous_checkpoint(tmp_path):
    before, after = kill_writer_half_way("checkpoint", tmp_path, tmp_path / "checkpoints")
    assert after == before
    assert (tmp_path / "checkpoints" / ".pretrained.new").is_dir(), "it was killed in the middle of its write"
    model, _, state = load_checkpoint(tmp_path / "checkpoints" / "pretrained")
    assert state["step"] == 1 and all_parameters_equal(model, 1.0)
    optimizer = torch.optim.AdamW(model.parameters())
    save_checkpoint(tmp_path / "checkpoints" / "pretrained", model, optimizer, {"step": 3, "history": []})
    assert not (tmp_path / "checkpoints" / ".pretrained.new").exists(), "the next save clears what was left"


@pytest.mark.slow
def test_a_checkpoint_writer_killed_between_its_renames_leaves_a_whole_checkpoint(tmp_path):
    kill_writer_half_way("checkpoint-between-renames", tmp_path, tmp_path / "checkpoints")
    assert not (tmp_path / "checkpoints" / "pretrained").exists()      # cut between the two renames
    model, _, state = load_checkpoint(tmp_path / "checkpoints" / "pretrained")   # finishes the swap
    assert state["step"] == 2 and all_parameters_equal(model, 2.0), "the new checkpoint, whole: never a mix"


@pytest.mark.slow
def test_a_tokenizer_writer_killed_mid_write_leaves_the_previous_tokenizer(tmp_path):
    before, after = kill_writer_half_way("tokenizer", tmp_path, tmp_path)
    assert after == before
    assert list(tmp_path.glob(".tokenizer.json.*.tmp")), "it was killed in the middle of its write"
    assert load_tokenizer(tmp_path / "tokenizer.json").encode("version one") == \
        train_tokenizer("char", "version one").encode("version one")
    assert integrity.check_tree(tmp_path) == []


def test_a_manifest_writer_killed_mid_write_leaves_the_previous_manifest_and_no_lock(tmp_path):
    before, after = kill_writer_half_way("manifest", tmp_path, tmp_path)
    assert after == before
    assert artifacts.read_json(tmp_path / "manifest.json")["pipeline"] == {"version": 1}
    started = time.monotonic()
    artifacts.update_manifest(tmp_path / "manifest.json", "pipeline", {"version": 3})   # its lock died with it
    assert time.monotonic() - started < 5
    assert artifacts.read_json(tmp_path / "manifest.json")["pipeline"] == {"version": 3}


@pytest.mark.slow
def test_a_publish_killed_mid_write_leaves_the_published_chapters_and_the_next_one_cleans_up(tmp_path):
    from pipeline_course import write_notebook

    from pipelines import publish

    before, after = kill_writer_half_way("chapters", tmp_path, tmp_path / "book")
    assert after == before and "chapters/01_representation.ipynb" in before
    assert list(tmp_path.glob(".book-publish-*")), "it was killed while staging"
    nbformat.validate(nbformat.read(tmp_path / "book" / "chapters" / "01_representation.ipynb", as_version=4))
    (tmp_path / "v3").mkdir()
    record = {"name": "01_representation", "provenance": {}, "parameters": {"profile": "smoke"}}
    publish.publish(tmp_path / "book", [("01_representation", write_notebook(tmp_path / "v3", 1, "print('v3')"),
                                         record)], build=False)
    assert "print('v3')" in (tmp_path / "book" / "chapters" / "01_representation.ipynb").read_text()
    assert not list(tmp_path.glob(".book-publish-*/")), "the next publish removes the killed one's staging"


# --- locks: one holder at a time, named; released by the OS when the holder dies ----------------------

HOLD_LOCK = ("import sys, time\nfrom roots_course.store.locking import FileLock\n"
             "with FileLock(sys.argv[1], 'a test holder'):\n    print('held', flush=True)\n    time.sleep(300)")


def test_a_held_lock_names_its_holder_and_a_sigkilled_holder_leaves_it_free(tmp_path):
    lock = tmp_path / ".run.lock"
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(lock), "--profile", "smoke"], cwd=ROOT, env=ENV,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(BusyError) as info:
            FileLock(lock, "another run is using it").acquire()
        assert re.fullmatch(rf"another run is using it: pid {holder.pid} on \S+, since \d{{4}}-\d\d-\d\dT[\d:]+\+00:00: "
                            rf"-c {re.escape(str(lock))} --profile smoke holds the lock {re.escape(str(lock))}\. Wait for "
                            r"that process to finish \(or stop it\), then run again; the lock is released the "
                            r"moment it exits\.", str(info.value)), str(info.value)
    finally:
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait(timeout=30)
    started = time.monotonic()
    with FileLock(lock, "the next run", timeout=5):           # the OS released it with its process
        assert time.monotonic() - started < 1
        assert f"pid {os.getpid()} on " in describe_holder(lock)
    assert not holder_file(lock).exists(), "a holder that releases the lock forgets itself"


def test_a_lock_is_reentrant_in_a_thread_and_exclusive_between_threads(tmp_path):
    lock, refused = tmp_path / "x.lock", []

    def other_thread() -> None:
        try:
            FileLock(lock, "another thread wants it", timeout=0.2).acquire()
        except BusyError as exc:
            refused.append(str(exc))

    with FileLock(lock, "first"):
        with FileLock(tmp_path / "." / "x.lock", "again, spelled otherwise"):     # re-entrant: no wait
            assert held_by_this_process(lock)
        assert held_by_this_process(lock)
        thread = threading.Thread(target=other_thread)
        thread.start()
        thread.join(timeout=30)
    assert not held_by_this_process(lock)
    assert len(refused) == 1 and refused[0].startswith(
        f"another thread wants it: another thread of this process (pid {os.getpid()} on ")
    with FileLock(lock, "free again"):
        pass


# --- corruption is detected ----------------------------------------------------------------------

def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_manifest_records_a_checksum_of_every_artifact(reference_run, capsys):
    recorded = json.loads((reference_run / "manifest.json").read_text())["checksums"]
    on_disk = {rel for rel in visible_files(reference_run) if rel != "manifest.json"}
    assert set(recorded) == on_disk and len(on_disk) > 10
    assert {"tokenizer.json", "checkpoints/pretrained/model.safetensors", "metrics/pretrained_summary.json",
            "tokens/tokens.safetensors", "corpus/spec.json"} <= on_disk
    for rel, entry in recorded.items():
        assert entry["sha256"] == sha256(reference_run / rel) and entry["size"] == (reference_run / rel).stat().st_size
    assert roots_main(["verify", "--dir", str(reference_run)]) == 0
    assert "is intact" in capsys.readouterr().out


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def flip_a_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-5] ^= 0x01
    path.write_bytes(bytes(data))


def edit_json(key: str, change):
    """Change one value of a JSON file: still valid JSON, of the right shape; only the checksum can tell."""
    def edit(path: Path) -> None:
        data = json.loads(path.read_text())
        data[key] = change(data[key]) if callable(change) else change
        path.write_text(json.dumps(data, indent=2))
    return edit


def load_for(rel: str, folder: Path):
    if rel.startswith("checkpoints/"):
        return lambda: load_checkpoint(folder / "checkpoints" / "pretrained")
    if rel == "tokenizer.json":
        return lambda: load_tokenizer(folder / rel)
    if rel.endswith(".safetensors"):
        return lambda: artifacts.load_tensors(folder / rel)
    return lambda: artifacts.read_json(folder / rel)


@pytest.mark.parametrize("rel, damage", [
    ("checkpoints/pretrained/model.safetensors", truncate),
    ("checkpoints/pretrained/optimizer.safetensors", flip_a_byte),
    ("checkpoints/pretrained/state.json", edit_json("step", 10)),
    ("checkpoints/pretrained/config.json", edit_json("train", None)),
    ("tokenizer.json", edit_json("chars", lambda chars: [chars[1], chars[0], *chars[2:]])),
    ("tokens/tokens.safetensors", truncate),
    ("metrics/pretrained_summary.json", edit_json("val_loss", 0.01)),
], ids=lambda v: v if isinstance(v, str) else "")
def test_a_truncated_or_altered_artifact_fails_to_load_naming_the_file_and_what_to_do(
        reference_run, tmp_path, capsys, rel, damage):
    folder = copy_run(reference_run, tmp_path)
    load_for(rel, folder)()                                   # intact: loads
    damage(folder / rel)
    with pytest.raises(CheckpointError) as info:
        load_for(rel, folder)()
    message = str(info.value)
    assert str(folder / rel) in message and "truncated or altered" in message
    assert "Delete it and run again the step that wrote it" in message and "roots_course verify" in message
    assert roots_main(["verify", "--dir", str(folder)]) == 1
    listed = capsys.readouterr().out.splitlines()
    assert len(listed) == 1 and re.fullmatch(rf"{re.escape(str(folder / rel))}: (it has \d+ bytes, \d+ were written|"
                                             r"its bytes differ from those written \(SHA-256 mismatch\))", listed[0])


def test_sampling_from_a_damaged_checkpoint_says_which_file(reference_run, tmp_path, capsys):
    folder = copy_run(reference_run, tmp_path)
    flip_a_byte(folder / "checkpoints" / "pretrained" / "model.safetensors")
    assert roots_main(["sample", "--checkpoint", str(folder / "checkpoints" / "pretrained"), "--prompt", "the"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {folder / 'checkpoints' / 'pretrained' / 'model.safetensors'} is damaged")


def test_the_course_own_rewrites_keep_their_checksums_true(reference_run, tmp_path):
    from roots_course.course.pretraining import _replace_dir

    folder = copy_run(reference_run, tmp_path)
    artifacts.atomic_write_json(folder / "metrics" / "pretrained_summary.json", {"rewritten": True})
    train_tokenizer("char", "another text altogether").save(folder / "tokenizer.json")
    model, _, _ = load_checkpoint(folder / "checkpoints" / "pretrained")
    with torch.no_grad():
        next(model.parameters()).add_(1.0)
    save_checkpoint(folder / "checkpoints" / "pretrained", model, torch.optim.AdamW(model.parameters()),
                    {"step": 1, "history": []})
    (folder / ".corpus.new").mkdir()
    (folder / ".corpus.new" / "spec.json").write_text("{}")
    _replace_dir(folder / ".corpus.new", folder / "corpus")
    assert integrity.check_tree(folder) == []
    assert artifacts.read_json(folder / "metrics" / "pretrained_summary.json") == {"rewritten": True}
    assert load_tokenizer(folder / "tokenizer.json").decode([1]) in "another text altogether"
    assert load_checkpoint(folder / "checkpoints" / "pretrained")[2]["step"] == 1
    recorded = json.loads((folder / "manifest.json").read_text())["checksums"]
    assert [rel for rel in recorded if rel.startswith("corpus/")] == ["corpus/spec.json"]


# --- safe loading: no pickle from a path a user hands in ----------------------------------------------

class RunsCode:
    """Unpickling this runs ``touch marker``: what a malicious checkpoint would do."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_a_malicious_pickle_handed_in_is_refused_without_running(reference_run, tmp_path, capsys):
    control = tmp_path / "control-ran"
    (tmp_path / "control.pkl").write_bytes(pickle.dumps(RunsCode(control)))
    subprocess.run([sys.executable, "-c", "import pickle, sys; pickle.load(open(sys.argv[1], 'rb'))",
                    str(tmp_path / "control.pkl")], check=False, timeout=60)
    assert control.exists(), "the payload does run code when unpickled"

    marker = tmp_path / "payload-ran"
    raw = tmp_path / "evil.pkl"
    raw.write_bytes(pickle.dumps(RunsCode(marker)))
    zipped = tmp_path / "evil.pt"
    torch.save({"weights": RunsCode(marker)}, zipped)            # torch's own format: a zip around a pickle
    checkpoint = Path(shutil.copytree(reference_run / "checkpoints" / "pretrained", tmp_path / "ckpt"))

    for evil in (raw, zipped):
        shutil.copy(evil, checkpoint / "model.safetensors")
        with pytest.raises(CheckpointError, match=r"model\.safetensors: not a readable safetensors file"):
            load_checkpoint(checkpoint)
        with pytest.raises(CheckpointError, match="not a readable safetensors file"):
            artifacts.load_tensors(evil)
        assert roots_main(["sample", "--checkpoint", str(checkpoint), "--prompt", "the"]) == 2
        assert roots_main(["export", "--checkpoint", str(checkpoint), "--out", str(tmp_path / "hf")]) == 2
        assert roots_main(["sample", "--checkpoint", str(reference_run / "checkpoints" / "pretrained"),
                           "--tokenizer", str(evil), "--prompt", "the"]) == 2
        with pytest.raises(CheckpointError, match=f"{evil.name}: not valid JSON"):
            load_tokenizer(evil)
    assert capsys.readouterr().err.count("error: ") == 6
    with pytest.raises(pickle.UnpicklingError):                  # the rule for any torch.load: weights only
        torch.load(zipped, weights_only=True)
    assert not marker.exists(), "no loader ran the payload"


PICKLE_LOADERS = [r"\bpickle\.loads?\(", r"\bUnpickler\(", r"\bdill\.loads?\(", r"\bcloudpickle\.loads?\(",
                  r"\bjoblib\.load\(", r"\bread_pickle\(", r"allow_pickle\s*=\s*True", r"\bmarshal\.loads?\(",
                  r"\bshelve\.open\(", r"\btorch\.jit\.load\("]


def unsafe_loads(source: str) -> list[str]:
    """Calls in ``source`` that could unpickle: pickle-style loaders, and ``torch.load`` without
    ``weights_only=True`` among its arguments."""
    found = [m.group() for pattern in PICKLE_LOADERS for m in re.finditer(pattern, source)]
    for match in re.finditer(r"\btorch\.load\(", source):
        depth, end = 1, match.end()
        while depth and end < len(source):
            depth += {"(": 1, ")": -1}.get(source[end], 0)
            end += 1
        if not re.search(r"weights_only\s*=\s*True", source[match.end():end]):
            found.append(source[match.start():end])
    return found


def shipped_sources() -> dict[str, str]:
    """Every Python source the course ships: the library, the pipeline, benchmarks, the book's extensions
    and the notebooks' code cells."""
    sources = {p.relative_to(ROOT).as_posix(): p.read_text(encoding="utf-8")
               for folder in ("roots_course", "pipelines", "benchmarks", "book/_ext") for p in (ROOT / folder).rglob("*.py")}
    for notebook in sorted((ROOT / "notebooks").glob("*.ipynb")):
        cells = nbformat.read(notebook, as_version=4).cells
        sources[notebook.name] = "\n".join(c.source for c in cells if c.cell_type == "code")
    return sources


def test_no_shipped_code_unpickles_or_calls_torch_load_without_weights_only():
    assert unsafe_loads("x = torch.load(path, map_location='cpu')\ny = pickle.loads(b)") == [
        "pickle.loads(", "torch.load(path, map_location='cpu')"]              # the scan can fail
    assert unsafe_loads("torch.load(\n    path,\n    weights_only=True,\n)") == []
    sources = shipped_sources()
    assert "roots_course/core/checkpoint.py" in sources and "02_optimization.ipynb" in sources
    assert {name: found for name, source in sources.items() if (found := unsafe_loads(source))} == {}


# --- input validation --------------------------------------------------------------------------

@pytest.mark.parametrize("key, value, message", [
    ("model", 5, r"profiles.smoke.model must be a mapping of settings, got int 5"),
    ("train", [1, 2], r"profiles.smoke.train must be a mapping of settings, got list"),
    ("train.steps", True, r"profiles.smoke.train.steps must be int, got True"),
    ("train.lr", "0.1", r"profiles.smoke.train.lr must be float, got '0.1'"),
    ("train.lr", float("nan"), r"train.lr must be a positive number, got nan"),
    ("model.dropout", 1.5, r"dropout must be in \[0, 1\)"),
    ("corpus.max_chars", 0, r"corpus.max_chars must be a positive integer or null"),
    ("train.momentum", 1, r"train.momentum must be a number in \[0, 1\)"),
    ("train.schedule", "cosine", r"unknown key .*train.schedule; allowed keys: .*warmup_steps"),
    ("tokenizer.size", 512, r"unknown key profiles.smoke.tokenizer.size; allowed keys: kind, vocab_size"),
])
def test_configuration_values_are_checked_for_type_range_and_unknown_keys(key, value, message):
    from roots_course.course.config import load_profile

    with pytest.raises(ConfigError, match=message):
        load_profile("smoke", overrides={key: value})


@pytest.mark.slow
def test_a_bad_setting_on_the_command_line_is_named(tmp_path, corpus_file):
    result = cli("train", "--text", str(corpus_file), "--out", str(tmp_path / "x"), "--profile", "smoke",
                 "--set", "train.eval_every=-1")
    assert result.returncode == 2
    assert "train.eval_every must be a non-negative integer, got -1" in result.stderr
    result = cli("train", "--profile", "smoke", "--set", "steps")
    assert result.returncode == 2 and "expected KEY=VALUE with a dotted key" in result.stderr
    assert not (tmp_path / "x").exists(), "nothing was written"


@pytest.mark.parametrize("kwargs, message", [
    ({"profile": "huge"}, r"unknown profile 'huge'; allowed profiles: smoke, cpu, gpu"),
    ({"profile": 3}, r"notebook parameter 'profile' must be a profile name"),
    ({"seed": "7"}, r"notebook parameter 'seed' must be a non-negative integer .*got '7'"),
    ({"seed": -2}, r"notebook parameter 'seed' must be a non-negative integer"),
    ({"device": "tpu"}, r"device must be one of auto, cpu, cuda, mps, got 'tpu'"),
    ({"threads": 0}, r"notebook parameter 'threads' must be a positive integer"),
    ({"artifacts_dir": 5}, r"notebook parameter 'artifacts_dir' must be a folder path"),
])
def test_notebook_parameters_are_checked_and_named(kwargs, message):
    from roots_course.course.chapter import setup_chapter

    with pytest.raises(ConfigError, match=message):
        setup_chapter(**{"profile": "smoke", **kwargs})


def test_an_artifacts_dir_that_is_a_file_is_refused(tmp_path):
    from roots_course.course.chapter import setup_chapter

    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match=r"notebook parameter 'artifacts_dir': .*file is a file, not a folder"):
        setup_chapter("smoke", artifacts_dir=tmp_path / "file")
    # the flows' parameters: tests/test_pipeline_units.py::test_bad_parameters_are_named


def test_corpus_files_binary_and_not_utf8_are_refused_by_name(tmp_path):
    from roots_course.core.data import text_file_corpus

    nul = tmp_path / "database.txt"
    nul.write_bytes(b"SQLite format 3\x00\x10\x00\x01\x01" + b"words " * 100)     # valid UTF-8, yet binary
    with pytest.raises(DataError, match=r"database.txt looks like a binary file.*NUL byte at byte offset 15"):
        text_file_corpus(nul)
    png = tmp_path / "picture.txt"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)))
    with pytest.raises(DataError, match=r"picture.txt is not UTF-8: byte 0x89 at byte offset 0"):
        text_file_corpus(png)
    # empty and whitespace-only files: tests/test_data.py::test_empty_file_is_refused_by_name and
    # tests/test_cli.py::test_empty_and_non_utf8_files_are_refused (through the command line)


def test_one_enormous_line_trains_and_one_enormous_word_is_refused_at_once(tmp_path):
    from roots_course.core.data import corpus_text, text_file_corpus

    rng = random.Random(1)
    words = ["alpha", "beta", "gamma", "delta", "epsilon"]
    line = tmp_path / "one_line.txt"
    line.write_text(" ".join(rng.choice(words) for _ in range(60_000)), encoding="utf-8")   # 360 k chars, no newline
    corpus = text_file_corpus(line)
    train, validation = corpus_text(corpus["train"]), corpus_text(corpus["validation"])
    assert train + validation == line.read_text() and 0.05 < len(validation) / len(train) < 0.2
    tokenizer = train_tokenizer("fast_bpe", train, 300)
    assert tokenizer.decode(tokenizer.encode(validation)) == validation

    word = tmp_path / "one_word.txt"
    word.write_text("".join(rng.choice(words) for _ in range(200_000)), encoding="utf-8")   # a 1.3 M-letter word
    corpus = text_file_corpus(word)
    started = time.monotonic()
    with pytest.raises(DataError, match=r"holds a piece of [\d,]+ characters with no space or other break"):
        train_tokenizer("fast_bpe", corpus_text(corpus["train"]), 300)      # would take hours (quadratic)
    assert time.monotonic() - started < 5


def test_prompts_longer_than_the_context_are_cut_to_it_and_foreign_ids_are_refused(reference_run):
    from roots_course.core.generate import beam_search, generate

    model, _, _ = load_checkpoint(reference_run / "checkpoints" / "pretrained")
    tokenizer = load_tokenizer(reference_run / "tokenizer.json")
    prompt = tokenizer.encode("the cat sat on the mat. " * 10)
    block = model.config.block_size
    assert len(prompt) > 3 * block
    assert generate(model, prompt, 8, greedy=True) == generate(model, prompt[-block:], 8, greedy=True)
    assert beam_search(model, prompt, 4, beam_width=2) == beam_search(model, prompt[-block:], 4, beam_width=2)
    with pytest.raises(ConfigError, match=rf"prompt_ids holds token id {model.config.vocab_size}, outside the "
                                          rf"model's vocabulary 0..{model.config.vocab_size - 1}"):
        generate(model, [1, model.config.vocab_size], 4)
    with pytest.raises(ConfigError, match="prompt_ids is empty"):
        generate(model, [], 4)


@pytest.mark.slow
def test_sampling_a_prompt_longer_than_the_context_says_so(reference_run):
    result = cli("sample", "--checkpoint", str(reference_run / "checkpoints" / "pretrained"),
                 "--prompt", "the dog ran under the tree. " * 6, "--max-new-tokens", "10", "--greedy")
    assert result.returncode == 0, result.stderr
    assert re.search(r"the prompt has \d+ tokens and the model's context 32; it continues from the last 32",
                     result.stderr)
    assert result.stdout.startswith("the dog ran under the tree. " * 6)


def test_a_checkpoint_or_tokenizer_from_another_configuration_is_refused(reference_run, tmp_path, capsys):
    from roots_course.core.model import GPTConfig as Config
    from roots_course.course.pretraining import interrupted_run
    from roots_course.core.train import TrainConfig

    checkpoint = reference_run / "checkpoints" / "pretrained"
    saved = json.loads((checkpoint / "config.json").read_text())
    other = GPT(Config.from_dict({**saved["model"], "n_embd": 48}))
    with pytest.raises(CheckpointError, match=r"config.json: the model configuration differs from the given "
                                              r"model's in n_embd \(checkpoint 32, model 48\)"):
        load_checkpoint(checkpoint, model=other)

    unfinished = Path(shutil.copytree(checkpoint, tmp_path / "unfinished"))    # no manifest: free to edit
    state = json.loads((unfinished / "state.json").read_text())
    (unfinished / "state.json").write_text(json.dumps({**state, "step": 100}))
    train, model_config, data = TrainConfig.from_dict(saved["train"]), Config.from_dict(saved["model"]), \
        state["data_sha256"]
    assert interrupted_run(unfinished, train, model_config, data) == (
        True, f"resuming the interrupted run in {unfinished} from its checkpoint at step 100 of {STEPS}")
    for train_cfg, model_cfg, digest, what in [
            (train, Config.from_dict({**saved["model"], "n_embd": 48}), data, "another model configuration"),
            (TrainConfig.from_dict({**saved["train"], "lr": 0.1}), model_config, data, "another training configuration"),
            (train, model_config, "0" * 64, "another training data")]:
        resumable, why = interrupted_run(unfinished, train_cfg, model_cfg, digest)
        assert not resumable and f"(step 100) was made with {what}: training from step 0" in why
    assert interrupted_run(checkpoint, train, model_config, data) == (
        False, (f"the checkpoint in {checkpoint} is of a finished run ({STEPS} of {STEPS} steps): training again "
                f"from step 0"))

    big = tmp_path / "tokenizer.json"
    train_tokenizer("char", "".join(chr(c) for c in range(32, 600))).save(big)
    assert roots_main(["sample", "--checkpoint", str(checkpoint), "--tokenizer", str(big), "--prompt", "x"]) == 2
    assert "they were not trained together; pass the tokenizer of that run" in capsys.readouterr().err
    # a model file whose tensors do not fit: tests/test_train.py::test_tensors_that_do_not_fit_the_model_are_named


# --- services listen on this machine only --------------------------------------------------------

SCANNED = ("README.md", "prefect.yaml", "environment.yml", ".ci/run", "pyproject.toml", "_config.yml")
SERVER_COMMANDS = re.compile(r"(prefect\s+server\s+start|jupyter[- ]lab\b|-m\s+jupyterlab|jupyter\s+(?:notebook|server)"
                             r"|uvicorn|http\.server)[^\n`'\"]*")
LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def scanned_texts() -> dict[str, str]:
    paths = [ROOT / name for name in SCANNED] + sorted((ROOT / "book").glob("*.md"))
    for folder in ("roots_course", "pipelines", "tests", "benchmarks", "book/_ext"):
        paths += sorted((ROOT / folder).rglob("*.py"))
    texts = {p.relative_to(ROOT).as_posix(): p.read_text(encoding="utf-8") for p in paths if p.is_file()}
    for notebook in sorted((ROOT / "notebooks").glob("*.ipynb")):
        texts[notebook.name] = "\n".join(c.source for c in nbformat.read(notebook, as_version=4).cells)
    texts.pop("tests/test_reliability.py")          # this file names the addresses it looks for
    return texts


def listening_problems(name: str, text: str) -> list[str]:
    """Every address on all interfaces, and every server command that names an address other than this
    machine's (a placeholder such as PRIVATE_ADDRESS is the user's own choice). A command that names
    none listens where the tool's default says: the test checks those defaults too."""
    problems = [f"{name}: {m.group()!r}" for m in re.finditer(r"0\.0\.0\.0|--host[= ]::(?!1)|\[::\]", text)]
    for command in SERVER_COMMANDS.finditer(text):
        line = command.group().strip()
        hosts = [re.match(r"[\w.:-]*", h).group() for h in re.findall(r"--(?:host|ip|ServerApp\.ip)[= ](\S+)", line)]
        problems += [f"{name}: {line!r} listens on {h}" for h in hosts
                     if h not in LOOPBACK and not re.fullmatch(r"[A-Z_]+", h)]
    return problems


def test_services_listen_on_this_machine_only_unless_the_user_says_so():
    assert listening_problems("bad.md", "prefect server start --host 0.0.0.0\njupyter lab --ip=10.1.1.1 x\n"
                                        "prefect server start --host PRIVATE_ADDRESS\n") == [
        "bad.md: '0.0.0.0'", "bad.md: 'prefect server start --host 0.0.0.0' listens on 0.0.0.0",
        "bad.md: 'jupyter lab --ip=10.1.1.1 x' listens on 10.1.1.1"]          # the scan can fail
    texts = scanned_texts()
    assert {"README.md", "prefect.yaml", "pipelines/deployments.py", "tests/test_pipeline_server.py"} <= set(texts)
    assert [p for name, text in texts.items() for p in listening_problems(name, text)] == []
    assert "prefect server start --host 127.0.0.1" in texts["README.md"]
    assert "jupyter lab --ip=127.0.0.1" in texts["README.md"]

    # what the tools do when no address is given: Prefect's server (as pipelines sets it) and JupyterLab
    from jupyter_server.serverapp import ServerApp
    from prefect.settings import PREFECT_SERVER_API_HOST

    assert PREFECT_SERVER_API_HOST.value() == "127.0.0.1"
    assert ServerApp.class_traits()["ip"].default_value == "localhost"
    assert not list(ROOT.glob("jupyter_*config.py")) and not list(ROOT.glob("jupyter_*config.json"))


def test_errno_of_disk_errors_is_read_from_text_too():
    from pipelines.storage import explain

    assert "is full" in explain(OSError(errno.ENOSPC, "No space left on device"), ROOT)
    assert "is full" in explain("OSError: [Errno 28] No space left on device: 'x'", ROOT)
    assert "cannot be written" in explain(PermissionError(errno.EACCES, "Permission denied"), ROOT)
    assert explain(ValueError("bad value"), ROOT) is None
