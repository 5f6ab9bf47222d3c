"""Decoding speed with and without the KV cache, printed as JSON.

    python benchmarks/generate_speed.py [--checkpoint artifacts/cpu/checkpoints/pretrained]
        [--lengths 64 256 1024] [--repeats 3] [--threads 2]

Without a checkpoint it builds an untrained model of the ``cpu`` profile's shape (speed does not
depend on the weights). The two ways are alternated within one run, so a busy machine slows both
alike, and the median over repeats is reported. Lengths beyond the context window are skipped.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from roots_course.config import load_profile
from roots_course.device import describe, pick_device, set_threads
from roots_course.generate import generate
from roots_course.model import GPT


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--profile", default="cpu")
    parser.add_argument("--lengths", type=int, nargs="+", default=[64, 256, 1024])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    set_threads(args.threads)
    device = pick_device(args.device)
    if args.checkpoint:
        from roots_course.checkpoint import load_checkpoint
        model, _, _ = load_checkpoint(args.checkpoint, device)
    else:
        profile = load_profile(args.profile)
        torch.manual_seed(0)
        model = GPT(profile.model_config(profile.tokenizer.vocab_size)).to(device)
    model.eval()
    block = model.config.block_size
    prompt = [1, 2, 3, 4]
    results = []
    for length in args.lengths:
        if len(prompt) + length > block:
            results.append({"new_tokens": length, "skipped": f"beyond the context window of {block} tokens"})
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
        "model_parameters": model.num_parameters(),
        "block_size": block,
        "repeats": args.repeats,
        "results": results,
    }, indent=2))


if __name__ == "__main__":
    main()
