"""Writers for the kill tests of tests/test_reliability.py: each writes version 1 of an artifact, then
starts writing version 2 and stops half-way, printing ``paused``, until the test kills it with SIGKILL.

    python tests/crash_writers.py KIND FOLDER

The pause is the only thing changed in the writer: it is put in the system call where the real code
would be at that moment (``os.fsync`` after the new bytes went to a temporary file, ``os.replace``
between the two renames of a checkpoint, ``Path.write_bytes`` half-way into a staged chapter); the
code that writes the artifact is the course's own.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import roots_course  # noqa: F401  (its environment first)


def written(version: int) -> None:
    """Say so, then wait for the test's go (it snapshots the files meanwhile)."""
    print(f"version {version} written", flush=True)
    sys.stdin.readline()


def pause(where: str) -> None:
    print(f"paused {where}", flush=True)
    time.sleep(600)
    raise SystemExit("not killed in time")


def pause_at_fsync() -> None:
    os.fsync = lambda fd: pause("at fsync")


def tiny_checkpoint(folder: Path, value: float, pause_hook=None) -> None:
    import torch

    from roots_course.core.checkpoint import save_checkpoint
    from roots_course.core.model import GPT, GPTConfig

    model = GPT(GPTConfig(vocab_size=40, block_size=16, n_layer=1, n_head=2, n_embd=16))
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(value)
    optimizer = torch.optim.AdamW(model.parameters())
    if pause_hook is not None:
        pause_hook()
    save_checkpoint(folder / "checkpoints" / "pretrained", model, optimizer, {"step": int(value), "history": []})


def checkpoint(folder: Path) -> None:
    tiny_checkpoint(folder, 1.0)
    written(1)
    tiny_checkpoint(folder, 2.0, pause_at_fsync)


def checkpoint_between_renames(folder: Path) -> None:
    tiny_checkpoint(folder, 1.0)
    written(1)
    real = os.replace

    def replace(src, dst):
        if Path(src).name == ".pretrained.new":     # the old checkpoint was moved aside, the new not yet in
            pause("between the renames")
        real(src, dst)

    tiny_checkpoint(folder, 2.0, lambda: setattr(os, "replace", replace))


def tokenizer(folder: Path) -> None:
    from roots_course.store import integrity
    from roots_course.core.tokenizer_kinds import train_tokenizer

    train_tokenizer("char", "version one").save(folder / "tokenizer.json")
    integrity.record_tree(folder)            # a recorded profile folder: the write updates its checksum
    written(1)
    pause_at_fsync()
    train_tokenizer("char", "the second version, with more characters").save(folder / "tokenizer.json")


def manifest(folder: Path) -> None:
    from roots_course.store.artifacts import update_manifest

    update_manifest(folder / "manifest.json", "pipeline", {"version": 1})
    written(1)
    pause_at_fsync()                         # inside update_manifest, holding the manifest's lock
    update_manifest(folder / "manifest.json", "pipeline", {"version": 2})


def chapters(folder: Path) -> None:
    from pipeline_course import copy_book, write_notebook

    from pipelines import publish

    book = copy_book(folder / "book")
    first, second = folder / "v1", folder / "v2"
    first.mkdir()
    second.mkdir()
    record = {"name": "01_representation", "provenance": {}, "parameters": {"profile": "smoke"}}
    publish.publish(book, [("01_representation", write_notebook(first, 1), record)], build=False)
    written(1)
    real = Path.write_bytes

    def half_then_pause(self, data):
        if ".book-publish-" in str(self):        # a staged chapter, beside the book
            real(self, data[: len(data) // 2])
            pause("half-way into a staged chapter")
        return real(self, data)

    Path.write_bytes = half_then_pause
    publish.publish(book, [("01_representation", write_notebook(second, 1, extra="print('v2')"), record)],
                    build=False)


WRITERS = {f.__name__.replace("_", "-"): f for f in (checkpoint, checkpoint_between_renames, tokenizer, manifest,
                                                       chapters)}

if __name__ == "__main__":
    kind, target = sys.argv[1], Path(sys.argv[2])
    target.mkdir(parents=True, exist_ok=True)
    WRITERS[kind](target)
    raise SystemExit("the writer finished: it was never paused")
