"""Two attention implementations, alternated in one run: speed, and the learning curve per step.

    python benchmarks/attention_paths.py [--steps 300] [--eval-every 50] [--seeds 0 1] [--threads 2]

The course's GPT computes attention either with torch's fused kernel
(``scaled_dot_product_attention``, the default) or written out (``q @ kᵀ / √d``, mask, softmax,
``@ v``), chosen by ``GPTConfig.fused_attention``. A faster path is only a win if the model learns
the same per step. This trains the reference CPU config (4 layers, 4 heads, width 128, context 64,
batch 12) at character level on the course's default corpus, once per implementation and seed, in
the order fused, written-out, fused, written-out, ... so that a change in the machine's load hits
both alike. It prints JSON: per implementation the median ms/iter over its runs; per seed the
validation loss of both at every evaluation step and their largest difference; and, as the noise
to compare that difference with, the largest difference between two seeds of the same implementation.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import time

import roots_course  # noqa: F401  (before torch: it chooses the OpenMP wait policy torch then reads)
import torch

from roots_course.core.data import corpus_text
from roots_course.core.stdlib_corpus import python_docs_corpus
from roots_course.core.device import describe, set_threads
from roots_course.core.model import GPT, GPTConfig
from roots_course.core.tokenizer import CharTokenizer
from roots_course.core.train import TrainConfig, train

IMPLEMENTATIONS = {"fused": True, "written-out": False}


def corpus_ids(max_chars: int) -> tuple[torch.Tensor, torch.Tensor, int]:
    corpus = python_docs_corpus(max_chars=max_chars)
    train_text, val_text = corpus_text(corpus["train"]), corpus_text(corpus["validation"])
    tokenizer = CharTokenizer.train(train_text)
    as_ids = lambda text: torch.tensor(tokenizer.encode(text), dtype=torch.long)
    return as_ids(train_text), as_ids(val_text), tokenizer.vocab_size


def run_once(fused: bool, seed: int, steps: int, eval_every: int, data) -> dict:
    train_ids, val_ids, vocab = data
    config = GPTConfig(vocab_size=vocab, block_size=64, n_layer=4, n_head=4, n_embd=128, fused_attention=fused)
    torch.manual_seed(seed)
    model = GPT(config)
    cfg = TrainConfig(steps=steps, batch_size=12, lr=1e-3, min_lr=1e-4, warmup_steps=20, eval_every=eval_every,
                      eval_batches=20, seed=seed, log_every=eval_every)
    started = time.perf_counter()
    with contextlib.redirect_stdout(sys.stderr):  # the log lines; stdout holds only the JSON
        result = train(model, train_ids, val_ids, cfg, "cpu", progress=False)
    wall = time.perf_counter() - started
    curve = {row["step"]: row["val_loss"] for row in result.history if row.get("val_loss") is not None}
    tokens_per_step = cfg.batch_size * config.block_size
    return {"ms_per_iter": 1000 * tokens_per_step / result.tokens_per_s, "wall_s": round(wall, 2), "val_loss": curve}


def largest_gap(a: dict[int, float], b: dict[int, float]) -> float:
    return max(abs(a[s] - b[s]) for s in a if s in b)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--eval-every", type=int, default=50)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--max-chars", type=int, default=1_000_000)
    args = parser.parse_args()
    if len(args.seeds) < 2:
        parser.error("--seeds needs at least two seeds: their difference is the noise the comparison is read against")
    if args.threads:
        set_threads(args.threads)
    data = corpus_ids(args.max_chars)
    load_before = os.getloadavg()
    runs: dict[str, dict[int, dict]] = {name: {} for name in IMPLEMENTATIONS}
    for seed in args.seeds:                      # alternate: fused, written-out, fused, written-out, ...
        for name, fused in IMPLEMENTATIONS.items():
            runs[name][seed] = run_once(fused, seed, args.steps, args.eval_every, data)
    per_seed = {seed: {"fused": runs["fused"][seed]["val_loss"], "written-out": runs["written-out"][seed]["val_loss"],
                       "largest_difference": round(largest_gap(runs["fused"][seed]["val_loss"],
                                                               runs["written-out"][seed]["val_loss"]), 5)}
                for seed in args.seeds}
    first, second = args.seeds[:2]
    noise = largest_gap(runs["fused"][first]["val_loss"], runs["fused"][second]["val_loss"])
    print(json.dumps({
        "benchmark": "attention_paths",
        "device": describe(torch.device("cpu")),
        "threads": torch.get_num_threads(),
        "load_average_1_5_15_min_before": [round(x, 2) for x in load_before],
        "config": "reference (4 layers, 4 heads, width 128, context 64, batch 12), characters of the default corpus",
        "steps": args.steps,
        "ms_per_iter_median": {name: round(statistics.median(r["ms_per_iter"] for r in runs[name].values()), 2)
                               for name in IMPLEMENTATIONS},
        "val_loss_by_seed": per_seed,
        "largest_difference_between_implementations": max(v["largest_difference"] for v in per_seed.values()),
        "noise_largest_difference_between_seeds": round(noise, 5),
    }, indent=2))


if __name__ == "__main__":
    main()
