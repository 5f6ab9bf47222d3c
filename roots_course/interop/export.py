"""Exporting a course model and its tokenizer to the Hugging Face `transformers` format.

The folder written by ``export_model`` (or ``export_checkpoint``) loads offline with

    AutoModelForCausalLM.from_pretrained(folder)   # weights: model.safetensors, config.json
    AutoTokenizer.from_pretrained(folder)          # tokenizer.json (a `tokenizers` JSON) + tokenizer_config.json

and computes the same function as our GPT: the export is refused (ExportError) unless the reloaded
model's logits match ours and the reloaded tokenizer gives our ids on a probe of English, Chinese and
code. A checkpoint that cannot be expressed exactly is refused with a message naming what does not map,
never written approximately.

How each of our models and tokenizers maps onto `transformers` is in ``interop.model_mapping`` and
``interop.tokenizer_mapping``; this module writes the folder and checks it.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from roots_course.core.checkpoint import load_checkpoint
from roots_course.core.model import GPT, GPTConfig
from roots_course.core.tokenizer import Tokenizer
from roots_course.core.tokenizer_kinds import load_tokenizer
from roots_course.errors import ExportError
from roots_course.interop.model_mapping import compare_logits, probe_ids, to_transformers
from roots_course.interop.tokenizer_mapping import to_transformers_tokenizer, tokenizer_mismatches
from roots_course.store import integrity

EXPORT_FILE = "roots_export.json"  # what was exported, from where, and how closely it was checked

TOLERANCE = 1e-4  # largest |logit difference| accepted, times max(1, largest |logit|)


@dataclass
class ExportReport:
    """What ``export_model`` wrote (also saved as roots_export.json in the folder)."""

    folder: str
    architecture: str               # "gpt2" or "gpt_neox"
    tokenizer: str                  # our tokenizer kind
    max_logit_difference: float     # max |logit difference|, reloaded model vs ours, on the probe batch
    max_abs_logit: float            # the largest |logit| of ours there, for scale
    notes: list[str] = field(default_factory=list)
    source: dict[str, Any] = field(default_factory=dict)


@contextmanager
def quiet_transformers() -> Iterator[None]:
    """No progress bars and only errors from `transformers` inside the block (restored after):
    the export's own save-and-reload check would otherwise print bars and length warnings."""
    from transformers.utils import logging as hf_logging

    level, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        if bars:
            hf_logging.enable_progress_bar()


def export_model(model: GPT, tokenizer: Tokenizer, out: str | os.PathLike, *,
                 source: dict[str, Any] | None = None) -> ExportReport:
    """Write `model` and `tokenizer` to folder `out` in the `transformers` format, then reload the
    folder with AutoModelForCausalLM / AutoTokenizer and check it: logits within TOLERANCE of ours on a
    probe batch, the same ids on PROBE_TEXTS. Any failure raises ExportError and leaves `out` as it
    was. The folder is written beside `out` and renamed into place (a folder of an earlier export is
    replaced; any other non-empty folder is refused)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = Path(out)
    if tokenizer.vocab_size > model.config.vocab_size:
        raise ExportError(f"the tokenizer has {tokenizer.vocab_size} ids but the model only "
                          f"{model.config.vocab_size} embeddings: they do not belong together")
    if out.exists() and any(out.iterdir()) and not (out / EXPORT_FILE).is_file():
        raise ExportError(f"{out} exists and is not an earlier export; refusing to replace it")
    hf = to_transformers(model)
    hf_tokenizer = to_transformers_tokenizer(tokenizer, model.config.block_size)

    tmp = out.with_name(f".{out.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        with quiet_transformers():
            hf.save_pretrained(tmp)
            hf_tokenizer.save_pretrained(tmp)
            # The check that matters: what a user will load, not what we hold in memory.
            reloaded = AutoModelForCausalLM.from_pretrained(tmp, dtype=torch.float32)
            hf_reloaded_tokenizer = AutoTokenizer.from_pretrained(tmp)
        diff, largest = compare_logits(model, reloaded, probe_ids(model.config))
        scale = max(1.0, largest)
        if not diff <= TOLERANCE * scale:  # also catches NaN
            raise ExportError(f"the exported {hf.config.model_type} model's logits differ from ours by up to "
                              f"{diff:.3g} (allowed {TOLERANCE * scale:.3g}): the model does not map exactly")
        with quiet_transformers():
            problems = tokenizer_mismatches(tokenizer, hf_reloaded_tokenizer)
        if problems:
            raise ExportError("the exported tokenizer does not reproduce ours: " + "; ".join(problems))
        report = ExportReport(str(out), hf.config.model_type, tokenizer.name, diff, largest,
                              _notes(model.config), dict(source or {}))
        (tmp / EXPORT_FILE).write_text(json.dumps(asdict(report), indent=2, ensure_ascii=False) + "\n",
                                       encoding="utf-8")
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = out.with_name(f".{out.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    with integrity.writing(out):          # inside a profile's artifacts, the manifest's checksums follow
        if out.exists():
            out.rename(old)
        tmp.rename(out)
    shutil.rmtree(old, ignore_errors=True)
    return report


def _notes(c: GPTConfig) -> list[str]:
    notes = []
    if c.position == "sinusoidal":
        notes.append("the fixed sinusoidal table is GPT-2's wpe and the embeddings are pre-scaled by "
                     "sqrt(n_embd); the head is untied. Identical outputs; fine-tuning in transformers "
                     "would train the table")
    if c.position == "none":
        notes.append("GPT-2's position table wpe is all zeros; fine-tuning in transformers would train it")
    if c.position == "rope":
        notes.append("past block_size tokens GPT-NeoX keeps rotating where ours refuses")
    if not c.bias:
        notes.append("the model has no biases; the exported ones are zeros")
    return notes


def export_checkpoint(checkpoint: str | os.PathLike, out: str | os.PathLike,
                      tokenizer_path: str | os.PathLike | None = None) -> ExportReport:
    """Export a checkpoint folder written by training. The tokenizer defaults to the run's
    tokenizer.json two folders above the checkpoint (artifacts/<profile>/checkpoints/<name>)."""
    checkpoint = Path(checkpoint)
    model, _, state = load_checkpoint(checkpoint, "cpu")
    tokenizer_path = Path(tokenizer_path) if tokenizer_path else checkpoint.parent.parent / "tokenizer.json"
    tokenizer = load_tokenizer(tokenizer_path)
    return export_model(model, tokenizer, out, source={"checkpoint": str(checkpoint.resolve()),
                                                       "tokenizer": str(tokenizer_path.resolve()),
                                                       "step": state.get("step")})
