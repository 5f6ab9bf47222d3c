"""Decoding speed with and without the KV cache, printed as JSON.

    python benchmarks/generate_speed.py [--checkpoint artifacts/cpu/checkpoints/pretrained]
        [--lengths 64 256 1024] [--repeats 3] [--threads 2]
    python benchmarks/generate_speed.py --block-size 1280        # all three lengths, one longer-context model

Without a checkpoint it builds an untrained model of the ``cpu`` profile's shape (speed does not
depend on the weights). The cpu profile's context is 128 tokens, so 256 and 1024 new tokens do not
fit its window: ``--block-size N`` builds the same width and depth with an N-token context (learned
positions for N places; an untrained model, which the JSON says under "model"). The two ways are
alternated within one run, so a busy machine slows both alike, and the median over repeats is
reported. Lengths beyond the context window are skipped. Greedy and sampled (temperature 1, top-k 50)
decoding are timed separately.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import roots_course  # noqa: F401  (before torch: it chooses the OpenMP wait policy torch then reads)
import torch

from roots_course.course.config import load_profile
from roots_course.core.device import describe, pick_device, set_threads
from roots_course.core.generate import generate
from roots_course.core.model import GPT


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--profile", default="cpu")
    parser.add_argument("--lengths", type=int, nargs="+", default=[64, 256, 1024])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--block-size", type=int, default=None,
                        help="context of an untrained model of the profile's width and depth (default: the profile's)")
    args = parser.parse_args()
    if args.checkpoint and args.block_size:
        parser.error("--block-size builds an untrained model; it cannot be combined with --checkpoint")

    threads = set_threads(args.threads)
    device = pick_device(args.device)
    if args.checkpoint:
        from roots_course.core.checkpoint import load_checkpoint
        model, _, _ = load_checkpoint(args.checkpoint, device)
        source = f"trained checkpoint {args.checkpoint}"
    else:
        profile = load_profile(args.profile)
        config = profile.model_config(profile.tokenizer.vocab_size)
        source = f"untrained, the {args.profile} profile's shape"
        if args.block_size:
            source += (f" with a {args.block_size}-token context instead of its {config.block_size} "
                       "(a longer window, so long generations fit; not a model the course trains)")
            config.block_size = args.block_size
        torch.manual_seed(0)
        model = GPT(config.validate()).to(device)
    model.eval()
    block = model.config.block_size
    prompt = [1, 2, 3, 4]
    load_before = os.getloadavg()
    results = []
    for length in args.lengths:
        if len(prompt) + length > block:
            results.append({"new_tokens": length, "skipped": f"beyond the context window of {block} tokens "
                            f"(prompt {len(prompt)} + {length}); measure it with --block-size {len(prompt) + length}"
                            " or more"})
            continue
        for mode, sampling in (("greedy", {"greedy": True}), ("sampled", {"temperature": 1.0, "top_k": 50})):
            times: dict[bool, list[float]] = {True: [], False: []}
            outputs: dict[bool, list[int]] = {}
            for _ in range(args.repeats):
                for use_cache in (True, False):  # alternate, so noise hits both alike
                    start = time.perf_counter()
                    outputs[use_cache] = generate(model, prompt, length, use_cache=use_cache,
                                                  generator=torch.Generator().manual_seed(0), **sampling)
                    times[use_cache].append(time.perf_counter() - start)
            cached, uncached = statistics.median(times[True]), statistics.median(times[False])
            results.append({
                "new_tokens": length, "mode": mode,
                "tokens_per_s_cached": round(length / cached, 1),
                "tokens_per_s_uncached": round(length / uncached, 1),
                "speedup": round(uncached / cached, 2),
                "same_tokens": outputs[True] == outputs[False],
            })
    print(json.dumps({
        "benchmark": "generate_speed",
        "device": describe(device),
        "threads": threads,
        "load_average_1_5_15_min_before": [round(x, 2) for x in load_before],
        "model": source,
        "model_shape": {k: getattr(model.config, k) for k in ("n_layer", "n_head", "n_embd", "vocab_size")},
        "model_parameters": model.num_parameters(),
        "block_size": block,
        "prompt_tokens": len(prompt),
        "repeats": args.repeats,
        "results": results,
    }, indent=2))


if __name__ == "__main__":
    main()
