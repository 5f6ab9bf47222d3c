"""Training and encoding speed of the course's two byte-level BPE tokenizers, printed as JSON.

    python benchmarks/tokenizer_speed.py [--vocab-sizes 512 2048] [--repeats 3] [--max-chars N]

The text is the default corpus, ``roots_course.core.stdlib_corpus.python_docs_corpus()`` (the running Python's
documentation), joined the way ``pretraining.prepare_tokenizer`` joins it. Both tokenizers train on its
train split and encode it (as ``prepare_tokens`` does); throughput is UTF-8 megabytes (10^6 bytes) of
that text per second, the median over ``--repeats``. ``bpe`` is the from-scratch Python one
(``roots_course.core.bpe``), ``fast_bpe`` the Rust ``tokenizers`` library behind the same interface. Every
from-scratch encoding starts from a fresh copy of the tokenizer, so its word cache starts empty (a cold
cache: the cost the pipeline pays). The library uses all cores unless ``RAYON_NUM_THREADS`` says
otherwise; the JSON records it. ``bpe_trains_smoke_vocabulary_under_10_s`` checks the course's promise
that the from-scratch tokenizer learns the smoke profile's 512-token vocabulary in under 10 seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

from roots_course.core.bpe import ByteBPETokenizer
from roots_course.core.data import corpus_text
from roots_course.core.stdlib_corpus import python_docs_corpus
from roots_course.core.fast_bpe import FastBPETokenizer
from roots_course.core.tokenizer import Tokenizer

KINDS: dict[str, type[Tokenizer]] = {"bpe": ByteBPETokenizer, "fast_bpe": FastBPETokenizer}
SMOKE_VOCAB = 512
SMOKE_LIMIT_S = 10.0


def timed(fn: Callable[[], Any], repeats: int) -> tuple[Any, list[float]]:
    """Run ``fn`` ``repeats`` times; return its last result and every duration in seconds."""
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return result, times


def measure(kind: str, vocab_size: int, text: str, repeats: int) -> dict[str, Any]:
    cls = KINDS[kind]
    megabytes = len(text.encode("utf-8")) / 1e6
    tokenizer, train_times = timed(lambda: cls.train(text, vocab_size), repeats)
    copies = [cls.from_dict(tokenizer.to_dict()) for _ in range(repeats)]     # each with an empty encode cache
    ids, encode_times = timed(lambda: copies.pop().encode(text), repeats)
    train_s, encode_s = statistics.median(train_times), statistics.median(encode_times)
    return {
        "tokenizer": kind,
        "vocab_size": tokenizer.vocab_size,
        "train_s": round(train_s, 3),
        "train_mb_per_s": round(megabytes / train_s, 3),
        "encode_s": round(encode_s, 3),
        "encode_mb_per_s": round(megabytes / encode_s, 3),
        "tokens": len(ids),
        "bytes_per_token": round(megabytes * 1e6 / max(len(ids), 1), 3),
        "train_s_all": [round(t, 3) for t in train_times],
        "encode_s_all": [round(t, 3) for t in encode_times],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--vocab-sizes", type=int, nargs="+", default=[SMOKE_VOCAB, 2048],
                        help="vocabularies to train (512: smoke profile, 2048: cpu profile)")
    parser.add_argument("--kinds", nargs="+", choices=sorted(KINDS), default=["bpe", "fast_bpe"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--max-chars", type=int, default=None, help="cut the corpus (default: all of it)")
    args = parser.parse_args()

    load_before = os.getloadavg()
    started = time.perf_counter()
    corpus = python_docs_corpus(max_chars=args.max_chars)
    text = corpus_text(corpus["train"])
    corpus_s = time.perf_counter() - started
    results = [measure(kind, vocab, text, args.repeats) for vocab in args.vocab_sizes for kind in args.kinds]
    smoke = next((r for r in results if r["tokenizer"] == "bpe" and r["vocab_size"] <= SMOKE_VOCAB
                  and SMOKE_VOCAB in args.vocab_sizes), None)
    print(json.dumps({
        "benchmark": "tokenizer_speed",
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {sys.version.split()[0]}",
        "load_average_1_5_15_min_before": [round(x, 2) for x in load_before],
        "rayon_num_threads": os.environ.get("RAYON_NUM_THREADS"),
        "corpus": "python_docs_corpus() train split" + (f", max_chars={args.max_chars}" if args.max_chars else ""),
        "corpus_chars": len(text),
        "corpus_mb": round(len(text.encode("utf-8")) / 1e6, 3),
        "corpus_build_s": round(corpus_s, 2),
        "repeats": args.repeats,
        "results": results,
        "bpe_trains_smoke_vocabulary_under_10_s": None if smoke is None else smoke["train_s"] < SMOKE_LIMIT_S,
    }, indent=2))


if __name__ == "__main__":
    main()
