"""The course's training command against a reference trainer's, alternated in one run, printed as JSON.

    python benchmarks/train_vs_reference.py --text FILE --reference PATH [--rounds 3] [--steps 300]
           [--conditions quiet loaded] [--arms course reference] [--eval-every 100]

Each round runs every arm once, on the same text and settings, one after the other (the order turns
by one each round, so no arm always runs first); the ratios are paired within a round and the
summary gives their median. Alternating is what makes the comparison fair on a machine whose load
drifts: both arms of a round see about the same machine.

Arms:
  ``course``          ``python -m roots_course train --text FILE --tokenizer char --set ...`` (the
                      wait policy chosen by the course itself, printed in its "pretraining" line)
  ``course:ACTIVE``, ``course:PASSIVE``   the same with ``ROOTS_OMP_WAIT_POLICY`` forced
  ``reference``       nanoGPT's ``train.py`` with the same recipe (needs ``--reference``)

The recipe is the small-GPT CPU one: 4 layers, 4 heads, width 128, context 64, batch 12, AdamW with
lr 1e-3 warmed up over 100 steps then cosine to 1e-4, weight decay 0.1, clipping 1.0, betas 0.9/0.99,
no dropout, float32; validation every ``--eval-every`` steps on ``--eval-batches`` batches.

Conditions: ``quiet`` runs on the machine as it is; ``loaded`` first starts one busy-looping process
per core (stopped at the end of the condition) and waits ``--load-warmup`` seconds so that the load
average, which the course's wait policy reads, has seen it.

Figures per run (every time is measured here, from the arrival of the run's output lines):
  ``tokens_per_s``        training tokens between the first and the last step line ÷ the seconds
                          between them: the speed of the whole loop, validation and checkpoints included
  ``step_tokens_per_s``   median of the speeds the trainer itself logs (course: over each 10-step row,
                          without validation; reference: of single logged iterations)
  ``wall_s``              launch to exit, start-up and data preparation included
  ``final_val_loss``      at the last step; ``time_to_target_s``: launch to the first validation at or
                          below the round's target, the reference's final validation loss
Ratios (course ÷ reference, above 1 means the course is faster): tokens/s and step tokens/s; for time
to target, the reference's time ÷ the course's. ``--max-run-s`` stops a run that takes longer (a trainer
that spins on a loaded machine can take many minutes) and summarizes it from what it printed so far; the
round's target is then the last validation loss it reached.

The reference trainer is not a dependency. Get it with
    git clone https://github.com/karpathy/nanoGPT /path/to/nanoGPT
and pass ``--reference /path/to/nanoGPT``; without it the reference arm is skipped (and said so).
Its data preparation downloads text; this script instead writes its ``train.bin``/``val.bin``/``meta.pkl``
into a temporary folder from ``--text``, with the course's own split (first ~90% for training, cut on a
line boundary) and the course's character tokenizer, so both trainers see the same token ids.

The text: any plain-text file of about 1 MB that is not the course's own corpus (Python's documentation),
for example Vim's release notes, ``/usr/share/vim/vim90/doc/version9.txt`` (``apt-get install vim-runtime``;
1.27 M characters, 112 distinct).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TOKENS_PER_STEP = 12 * 64          # batch × context of the recipe

# This script imports nothing of roots_course: importing it would set OMP_WAIT_POLICY here, and every
# child would inherit it. The course decides in its own process; the reference gets the plain environment.


def course_command(text: Path, out: Path, steps: int, eval_every: int, eval_batches: int,
                   threads: int | None) -> list[str]:
    settings = {
        "model.n_layer": 4, "model.n_head": 4, "model.n_embd": 128, "model.block_size": 64, "model.dropout": 0.0,
        "train.steps": steps, "train.batch_size": 12, "train.grad_accum": 1, "train.lr": 0.001,
        "train.min_lr": 0.0001, "train.warmup_steps": 100, "train.weight_decay": 0.1, "train.grad_clip": 1.0,
        "train.betas": "[0.9, 0.99]", "train.eval_every": eval_every, "train.eval_batches": eval_batches,
        "train.log_every": 10,
    }
    command = [sys.executable, "-u", "-m", "roots_course", "train", "--profile", "cpu", "--text", str(text),
               "--tokenizer", "char", "--out", str(out), "--device", "cpu", "--restart"]
    if threads:
        command += ["--threads", str(threads)]
    for key, value in settings.items():
        command += ["--set", f"{key}={value}"]
    return command


def reference_command(checkout: Path, data: Path, out: Path, steps: int, eval_every: int,
                      eval_batches: int) -> list[str]:
    settings = {
        "dataset": str(data), "out_dir": str(out), "device": "cpu", "compile": False, "dtype": "float32",
        "n_layer": 4, "n_head": 4, "n_embd": 128, "block_size": 64, "batch_size": 12,
        "gradient_accumulation_steps": 1, "dropout": 0.0, "bias": False, "learning_rate": 0.001, "min_lr": 0.0001,
        "warmup_iters": 100, "max_iters": steps, "lr_decay_iters": steps, "weight_decay": 0.1, "grad_clip": 1.0,
        "beta1": 0.9, "beta2": 0.99, "eval_interval": eval_every, "eval_iters": eval_batches, "log_interval": 10,
        "always_save_checkpoint": True, "wandb_log": False,
    }
    return [sys.executable, "-u", str(checkout / "train.py"), *(f"--{k}={v}" for k, v in settings.items())]


def prepare_reference_data(text: Path, folder: Path) -> dict[str, int]:
    """train.bin, val.bin (uint16 ids) and meta.pkl in the reference's format, from the course's own split
    and character tokenizer (in a child process, for the reason above)."""
    code = f"""
import json, pickle, sys
import numpy as np
from pathlib import Path
from roots_course.core.data import corpus_text, text_file_corpus
from roots_course.core.tokenizer_kinds import train_tokenizer
corpus = text_file_corpus({str(text)!r})
train_text, val_text = corpus_text(corpus["train"]), corpus_text(corpus["validation"])
tok = train_tokenizer("char", train_text, 0)
folder = Path({str(folder)!r})
ids = {{"train": tok.encode(train_text), "val": tok.encode(val_text)}}
for split, values in ids.items():
    np.array(values, dtype=np.uint16).tofile(folder / f"{{split}}.bin")
with open(folder / "meta.pkl", "wb") as f:
    pickle.dump({{"vocab_size": tok.vocab_size}}, f)
print(json.dumps({{"vocab_size": tok.vocab_size, "train_tokens": len(ids["train"]), "val_tokens": len(ids["val"])}}))
"""
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    return json.loads(done.stdout.strip().splitlines()[-1])


COURSE_STEP = re.compile(r"^step\s+(\d+)/\d+ \|.*\| train [\d.]+(?: \| val ([\d.]+))? \| ([\d,]+) tok/s")
REFERENCE_ITER = re.compile(r"^iter (\d+): loss [\d.]+, time ([\d.]+)ms")
REFERENCE_EVAL = re.compile(r"^step (\d+): train loss [\d.]+, val loss ([\d.]+)")
POLICY = re.compile(r"OMP_WAIT_POLICY=(\w+)(?:: ([^)]*))?")


def run_timed(command: list[str], cwd: Path, env: dict[str, str],
              max_s: float | None = None) -> tuple[list[tuple[float, str]], float, int | None]:
    """Run ``command``; return its output lines with their arrival time (s after launch), the wall time
    and the exit status (None when it was stopped after ``max_s`` seconds)."""
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, bufsize=1)
    timer = threading.Timer(max_s, process.kill) if max_s else None
    if timer is not None:
        timer.start()
    lines = [(time.perf_counter() - started, line.rstrip("\n")) for line in process.stdout]
    status = process.wait()
    if timer is not None:
        timer.cancel()
    stopped = max_s is not None and status < 0
    return lines, time.perf_counter() - started, None if stopped else status


def parse(kind: str, lines: list[tuple[float, str]]) -> dict[str, object]:
    """Steps (with arrival times), validations and logged speeds from a run's output."""
    steps, vals, speeds, policy = [], [], [], None
    for at, line in lines:
        if kind == "course":
            if (m := COURSE_STEP.match(line.strip())):
                steps.append((at, int(m[1])))
                speeds.append(float(m[3].replace(",", "")))
                if m[2]:
                    vals.append((at, int(m[1]), float(m[2])))
            elif line.startswith("pretraining") and (m := POLICY.search(line)):
                policy = f"{m[1]} ({m[2]})" if m[2] else m[1]
        else:
            if (m := REFERENCE_ITER.match(line)):
                steps.append((at, int(m[1])))
                if int(m[1]) > 0:           # iteration 0 holds the first call's warm-up
                    speeds.append(TOKENS_PER_STEP / (float(m[2]) / 1000))
            elif (m := REFERENCE_EVAL.match(line)):
                vals.append((at, int(m[1]), float(m[2])))
    return {"steps": steps, "vals": vals, "speeds": speeds, "policy": policy}


def summarize(kind: str, lines: list[tuple[float, str]], wall: float, status: int | None) -> dict[str, object]:
    """A run's figures (see the module docstring); a run stopped at ``--max-run-s`` (status None) is
    summarized from what it printed until then, and says so in ``stopped_after_s``."""
    parsed = parse(kind, lines)
    steps, vals = parsed["steps"], parsed["vals"]
    if status not in (0, None) or len(steps) < 2 or not vals:
        tail = "\n".join(line for _, line in lines[-15:])
        raise SystemExit(f"the {kind} run failed (exit {status}); its last lines:\n{tail}")
    (t0, s0), (t1, s1) = steps[0], steps[-1]
    return {
        "wall_s": round(wall, 2),
        "tokens_per_s": round((s1 - s0) * TOKENS_PER_STEP / (t1 - t0), 1),
        "step_tokens_per_s": round(statistics.median(parsed["speeds"]), 1),
        "final_val_loss": vals[-1][2],
        "validations": [(step, val, round(at, 2)) for at, step, val in vals],
        "wait_policy": parsed["policy"],
        "stopped_after_s": None if status is not None else round(wall, 1),
    }


def time_to(run: dict[str, object], target: float) -> float | None:
    return next((at for _, val, at in run["validations"] if val <= target), None)


class Load:
    """One busy-looping process per core, started and stopped by this script (by their process ids)."""

    def __init__(self, cores: int) -> None:
        self.processes = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(cores)]

    def stop(self) -> None:
        for process in self.processes:
            process.send_signal(signal.SIGTERM)
        for process in self.processes:
            process.wait()


def child_env(arm: str) -> dict[str, str]:
    """The environment of one run: the user's own wait-policy settings kept (OMP_WAIT_POLICY for every arm,
    ROOTS_OMP_WAIT_POLICY for the course), one that roots_course chose in this process dropped, and the
    arm's forced policy (``course:ACTIVE``) set."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("OMP_WAIT_POLICY", "ROOTS_OMP_WAIT_POLICY", "ROOTS_OMP_WAIT_POLICY_CHOSEN")}
    if os.environ.get("OMP_WAIT_POLICY") and not os.environ.get("ROOTS_OMP_WAIT_POLICY_CHOSEN"):
        env["OMP_WAIT_POLICY"] = os.environ["OMP_WAIT_POLICY"]
    if arm.startswith("course") and os.environ.get("ROOTS_OMP_WAIT_POLICY"):
        env["ROOTS_OMP_WAIT_POLICY"] = os.environ["ROOTS_OMP_WAIT_POLICY"]
    if arm.startswith("course:"):
        env["ROOTS_OMP_WAIT_POLICY"] = arm.split(":", 1)[1]
    env.update(PYTHONPATH=str(ROOT), ROOTS_QUIET="1", PYTHONUNBUFFERED="1")
    return env


def run_arm(arm: str, args: argparse.Namespace, work: Path, data: Path) -> dict[str, object]:
    out = work / arm.replace(":", "_")
    shutil.rmtree(out, ignore_errors=True)
    if arm == "reference":
        command = reference_command(args.reference, data, out, args.steps, args.eval_every, args.eval_batches)
        lines, wall, status = run_timed(command, args.reference, child_env(arm), args.max_run_s)
        return summarize("reference", lines, wall, status)
    command = course_command(args.text, out, args.steps, args.eval_every, args.eval_batches, args.threads)
    lines, wall, status = run_timed(command, ROOT, child_env(arm), args.max_run_s)
    return summarize("course", lines, wall, status)


def ratios(runs: dict[str, dict[str, object]], base: str) -> dict[str, dict[str, float | None]]:
    """Each arm against ``base`` within one round: speeds arm ÷ base, time to target base ÷ arm."""
    target = runs[base]["final_val_loss"]
    out = {}
    for arm, run in runs.items():
        run["time_to_target_s"] = time_to(run, target)
        if arm == base:
            continue
        mine, theirs = run["time_to_target_s"], time_to(runs[base], target)
        out[arm] = {
            "tokens_per_s": round(run["tokens_per_s"] / runs[base]["tokens_per_s"], 3),
            "step_tokens_per_s": round(run["step_tokens_per_s"] / runs[base]["step_tokens_per_s"], 3),
            "time_to_target": round(theirs / mine, 3) if mine and theirs else None,
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     epilog=__doc__[__doc__.index("The reference trainer"):],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--text", type=Path, required=True, help="a plain-text file of about 1 MB")
    parser.add_argument("--reference", type=Path, default=None, help="a checkout of nanoGPT (see below)")
    parser.add_argument("--arms", nargs="+", default=["course", "reference"],
                        help="course, course:ACTIVE, course:PASSIVE, reference")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--eval-every", type=int, default=100)
    parser.add_argument("--eval-batches", type=int, default=20)
    parser.add_argument("--threads", type=int, default=None, help="the course's --threads (default: torch's)")
    parser.add_argument("--conditions", nargs="+", default=["quiet"], choices=("quiet", "loaded"))
    parser.add_argument("--load-warmup", type=float, default=30.0, help="seconds between starting the load and "
                        "the first run, so the load average has seen it")
    parser.add_argument("--loaded-rounds", type=int, default=None, help="rounds of the loaded condition "
                        "(default: --rounds)")
    parser.add_argument("--max-run-s", type=float, default=None, help="stop a run after this many seconds and "
                        "summarize what it printed until then (its validation losses so far, its speed so far)")
    args = parser.parse_args()

    if not args.text.is_file():
        raise SystemExit(f"--text {args.text}: no such file")
    arms = list(args.arms)
    skipped = None
    if "reference" in arms and (args.reference is None or not (args.reference / "train.py").is_file()):
        skipped = (f"reference arm skipped: no nanoGPT checkout at {args.reference} (git clone "
                   "https://github.com/karpathy/nanoGPT and pass --reference PATH)")
        arms.remove("reference")
        print(skipped, file=sys.stderr)
    if not arms:
        print(json.dumps({"benchmark": "train_vs_reference", "skipped": skipped}, indent=2))
        return
    if args.reference is not None:
        args.reference = args.reference.resolve()
    args.text = args.text.resolve()
    base = "reference" if "reference" in arms else arms[0]

    report: dict[str, object] = {"benchmark": "train_vs_reference", "text": str(args.text), "arms": arms,
                                 "base": base, "steps": args.steps, "eval_every": args.eval_every,
                                 "eval_batches": args.eval_batches, "rounds": args.rounds, "skipped": skipped,
                                 "cpu_count": os.cpu_count(), "conditions": {}}
    with tempfile.TemporaryDirectory(prefix="roots_ab_") as tmp:
        work = Path(tmp)
        data = work / "data"
        data.mkdir()
        if "reference" in arms:
            report["data"] = prepare_reference_data(args.text, data)
        for condition in args.conditions:
            load = Load(os.cpu_count() or 1) if condition == "loaded" else None
            try:
                if load is not None:
                    time.sleep(args.load_warmup)
                rounds = []
                rounds_here = args.loaded_rounds if condition == "loaded" and args.loaded_rounds else args.rounds
                for r in range(rounds_here):
                    order = arms[r % len(arms):] + arms[:r % len(arms)]
                    before = round(os.getloadavg()[0], 2)
                    runs = {arm: run_arm(arm, args, work, data) for arm in order}
                    rounds.append({"order": order, "load_before": before, "ratios": ratios(runs, base),
                                   "runs": runs})
                    print(f"{condition} round {r + 1}: " + json.dumps(rounds[-1]["ratios"]), file=sys.stderr)
            finally:
                if load is not None:
                    load.stop()
            medians = {arm: {key: _median([rd["ratios"][arm][key] for rd in rounds])
                             for key in ("tokens_per_s", "step_tokens_per_s", "time_to_target")}
                       for arm in arms if arm != base}
            report["conditions"][condition] = {"median_ratios": medians, "rounds": rounds}
    print(json.dumps(report, indent=2))


def _median(values: list[float | None]) -> float | None:
    values = [v for v in values if v is not None]
    return round(statistics.median(values), 3) if values else None


if __name__ == "__main__":
    main()
