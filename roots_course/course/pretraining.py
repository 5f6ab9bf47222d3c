"""Pretraining the course model for a profile, end to end, each step kept in ``artifacts/<profile>/``.

    corpus ─► tokenizer ─► token ids ─► GPT ─► checkpoint (+ metrics, manifest)

Chapter 1 calls ``prepare_corpus``/``prepare_tokenizer``/``prepare_tokens``, chapter 2 calls
``pretrain``, and chapters 3–5 call ``load_pretrained``. Each step first looks for its artifact; when it
is missing, or was made with other settings, it builds it with the same call the upstream chapter uses
and says so. That is what lets every chapter run alone on a fresh clone.

``pretrain(..., resume=True)`` (what ``python -m roots_course train`` does) continues an interrupted run:
when the checkpoint folder holds an unfinished run of the same model, training settings and data, it
resumes from that checkpoint and ends with the weights an uninterrupted run would have (on a CPU).
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from datasets import DatasetDict, load_from_disk

from roots_course.store import artifacts, integrity
from roots_course.core import distributed
from roots_course.store.artifacts import ArtifactPaths
from roots_course.course.config import Profile
from roots_course.core.corpus_split import quiet_datasets
from roots_course.core.data import corpus_text, load_corpus, text_file_corpus
from roots_course.core.device import configure_backends, describe, pick_device, seed_everything, set_threads
from roots_course.errors import CheckpointError, DataError
from roots_course.core.generate import generate
from roots_course.core.model import GPT, GPTConfig
from roots_course.core.tokenizer import Tokenizer
from roots_course.core.tokenizer_kinds import load_tokenizer, train_tokenizer
from roots_course.core.checkpoint import CONFIG_FILE, STATE_FILE, has_checkpoint, load_checkpoint
from roots_course.core.train import TrainConfig, TrainResult, train

Say = Callable[[str], None]
TOKENS_FILE = "tokens.safetensors"
# The samples of the pretraining run: a prompt that ends at a word (a trailing space would be a token of
# its own, one the model rarely saw before a word) and chapter 3's decoding settings (temperature and
# nucleus sampling).
SAMPLE_PROMPT = "The function"
SAMPLE_DECODING: dict[str, float] = {"temperature": 0.7, "top_p": 0.9}


@dataclass(frozen=True)
class Run:
    """Where one pretraining run reads and writes: a profile and its artifact folder."""

    profile: Profile
    paths: ArtifactPaths
    text_file: Path | None = None      # train on this file instead of the profile's corpus

    @classmethod
    def for_profile(cls, profile: Profile, out: str | Path | None = None,
                    text_file: str | Path | None = None) -> "Run":
        text = Path(text_file).resolve() if text_file else None
        if out is not None:
            paths = ArtifactPaths(Path(out).parent, Path(out).name)
        elif text is not None:
            # a user's own text never overwrites the course's artifacts for the profile
            paths = ArtifactPaths(profile.paths["artifacts"], f"{profile.name}-text-{text.stem}")
        else:
            paths = ArtifactPaths(profile.paths["artifacts"], profile.name)
        return cls(profile, paths, text)

    def corpus_spec(self) -> dict[str, Any]:
        if self.text_file is not None:
            return {"kind": "text", "path": str(self.text_file),
                    "sha256": integrity.sha256_file(self.text_file) if self.text_file.is_file() else None}
        return dataclasses.asdict(self.profile.corpus)


def _fresh(spec_file: Path, spec: dict[str, Any]) -> bool:
    """True when the artifact beside ``spec_file`` was built from exactly ``spec``."""
    if not spec_file.is_file():
        return False
    try:
        return json.loads(spec_file.read_text(encoding="utf-8")) == json.loads(json.dumps(spec))
    except (json.JSONDecodeError, OSError):
        return False


def prepare_corpus(run: Run, say: Say = print) -> DatasetDict:
    """The corpus of the run, from ``artifacts/<profile>/corpus`` or built (and saved) now."""
    spec = run.corpus_spec()
    folder = run.paths.corpus
    if _fresh(folder / "spec.json", spec):
        return load_from_disk(str(folder / "data"))
    say(f"building the corpus ({spec['kind']}) into {folder}")
    if run.text_file is not None:
        corpus = text_file_corpus(run.text_file)
    else:
        corpus = load_corpus(spec)
    for split in ("train", "validation"):
        if sum(len(t) for t in corpus[split]["text"]) == 0:
            raise DataError(f"the {split} split of corpus {spec} is empty")
    tmp = folder.with_name(f".{folder.name}.new")    # hidden: never taken for an artifact while being built
    if tmp.exists():
        shutil.rmtree(tmp)
    with quiet_datasets():
        corpus.save_to_disk(str(tmp / "data"))
    artifacts.atomic_write_json(tmp / "spec.json", spec)
    _replace_dir(tmp, folder)
    return load_from_disk(str(folder / "data"))


def _replace_dir(new: Path, target: Path) -> None:
    """Put folder ``new`` in place of ``target`` with renames only, so no half-built folder is seen."""
    old = target.with_name(f".{target.name}.old")
    if old.exists():
        shutil.rmtree(old)
    with integrity.writing(target):      # the manifest's checksums follow the swap
        if target.exists():
            target.rename(old)
        new.rename(target)
    if old.exists():
        shutil.rmtree(old)


def prepare_tokenizer(run: Run, corpus: DatasetDict, say: Say = print) -> Tokenizer:
    """The run's tokenizer, trained on the train split only (validation text stays unseen)."""
    spec = {"tokenizer": dataclasses.asdict(run.profile.tokenizer), "corpus": run.corpus_spec()}
    path = run.paths.tokenizer
    spec_file = path.with_suffix(".spec.json")
    if path.is_file() and _fresh(spec_file, spec):
        return load_tokenizer(path)
    settings = run.profile.tokenizer
    size = "one id per character of the text" if settings.kind == "char" else f"vocabulary {settings.vocab_size}"
    say(f"training a {settings.kind} tokenizer ({size}) into {path}")
    tokenizer = train_tokenizer(settings.kind, corpus_text(corpus["train"]), settings.vocab_size)
    if settings.kind == "char":
        say(f"  {tokenizer.vocab_size} ids: {tokenizer.vocab_size - 1} characters and <unk>")
    tokenizer.save(path)
    artifacts.atomic_write_json(spec_file, spec)
    return tokenizer


def prepare_tokens(run: Run, corpus: DatasetDict, tokenizer: Tokenizer,
                   say: Say = print) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids of the train and validation splits, each one long 1-D int64 tensor."""
    spec = {"tokenizer_sha256": integrity.sha256_file(run.paths.tokenizer), "corpus": run.corpus_spec()}
    path = run.paths.tokens / TOKENS_FILE
    if _fresh(run.paths.tokens / "spec.json", spec):
        saved = artifacts.load_tensors(path)
        return saved["train"].long(), saved["validation"].long()
    say(f"tokenizing the corpus into {path}")
    ids = {split: torch.tensor(tokenizer.encode(corpus_text(corpus[split])), dtype=torch.int32)
           for split in ("train", "validation")}
    artifacts.save_tensors(path, ids)
    artifacts.atomic_write_json(run.paths.tokens / "spec.json", spec)
    return ids["train"].long(), ids["validation"].long()


def prepare_data(run: Run, say: Say = print) -> tuple[Tokenizer, torch.Tensor, torch.Tensor]:
    corpus = prepare_corpus(run, say)
    tokenizer = prepare_tokenizer(run, corpus, say)
    train_ids, val_ids = prepare_tokens(run, corpus, tokenizer, say)
    return tokenizer, train_ids, val_ids


def pretrain(run: Run, *, steps: int | None = None, threads: int | None = None, device: str | None = None,
             checkpoint_name: str = "pretrained", progress: bool | None = None, say: Say = print,
             callback: Callable[[int, dict[str, Any]], None] | None = None, peak_flops: float | None = None,
             ceiling: Callable[[], float] | None = None, sample_prompt: str | None = None,
             sample_tokens: int = 48, resume: bool = False) -> dict[str, Any]:
    """Train the profile's GPT from scratch and save it; return a JSON-able summary of the run.

    The summary holds the training ``history`` (one row per log step, see ``train``). With
    ``peak_flops`` (e.g. from ``device.matmul_ceiling_flops``) every row and the summary report the
    model FLOP utilisation ``mfu``. With ``ceiling`` instead (a function that times the device's
    matmul FLOP/s, e.g. ``lambda: matmul_ceiling_flops(device)``), the ceiling is measured before and
    after training and the larger of the two is used (see ``mfu_of_run``). The summary's ``mfu`` is that
    of the whole run: ``flops_per_token × tokens_per_s ÷ peak_flops``, from the throughput it reports.
    With ``sample_prompt``, each validation row also gets a ``sample``:
    ``sample_tokens`` tokens the model writes from that prompt at that point of training (drawn with
    their own seeded generator, so sampling never changes the training run), before ``callback`` sees
    the row. With ``resume``, an interrupted run of the same settings in the checkpoint folder is
    continued from its last checkpoint (see ``interrupted_run``) instead of started over.

    Under ``torchrun`` (see ``roots_course.core.distributed``) every process calls this: rank 0 builds the
    data first while the others wait, all train data-parallel, and only rank 0 logs, writes the
    checkpoint, summary and manifest; the other ranks return a short summary of their own.
    """
    profile = run.profile
    train_config = profile.train if steps is None else dataclasses.replace(profile.train, steps=steps)
    train_config.validate()
    set_threads(threads if threads is not None else profile.threads)
    torch_device = distributed.init_distributed(device or profile.device)   # pick_device outside torchrun
    world = distributed.world_size()
    if not distributed.is_main():
        say = _silent
    configure_backends(torch_device)
    started = time.perf_counter()

    with distributed.main_first():        # one process writes the corpus, tokenizer and tokens
        tokenizer, train_ids, val_ids = prepare_data(run, say)
    seed_everything(profile.seed)
    model_config = profile.model_config(tokenizer.vocab_size)
    model = GPT(model_config).to(torch_device)
    checkpoint_dir = run.paths.checkpoint(checkpoint_name)
    data_sha256 = integrity.sha256_file(run.paths.tokens / TOKENS_FILE)
    resuming = False
    if resume:
        resuming, why = interrupted_run(checkpoint_dir, train_config, model_config, data_sha256)
        say(why)
    say(f"pretraining a {model.num_parameters() / 1e6:.2f} M-parameter GPT for {train_config.steps} steps "
        f"on {describe(torch_device)}")

    def on_row(step: int, row: dict[str, Any]) -> None:
        if sample_prompt is not None and row.get("val_loss") is not None:
            new_ids = generate(model, tokenizer.encode(sample_prompt), max_new_tokens=sample_tokens,
                               **SAMPLE_DECODING, generator=torch.Generator().manual_seed(profile.seed))
            row["sample"] = sample_prompt + tokenizer.decode(new_ids)
        if callback is not None:
            callback(step, row)

    ceiling_before = ceiling() if ceiling is not None else None      # timed just before training
    if ceiling_before is not None:
        peak_flops = ceiling_before
    result: TrainResult = train(model, train_ids, val_ids, train_config, torch_device,
                                checkpoint_dir=checkpoint_dir, callback=on_row, progress=progress,
                                peak_flops=peak_flops, resume=resuming,
                                checkpoint_state={"data_sha256": data_sha256})
    if not distributed.is_main():
        return {"profile": profile.name, "rank": distributed.rank(), "world_size": world, "steps": result.steps,
                "train_loss": result.final_train_loss, "val_loss": result.final_val_loss}
    ceiling_after = ceiling() if ceiling is not None else None
    used_in_training = peak_flops
    if ceiling_after is not None:
        peak_flops = max(ceiling_after, peak_flops or 0.0)
    rescale_row_mfus(result.history, used_in_training, peak_flops)
    prompt = sample_prompt or SAMPLE_PROMPT
    sample_ids = generate(model, tokenizer.encode(prompt), max_new_tokens=80, **SAMPLE_DECODING,
                          generator=torch.Generator().manual_seed(profile.seed))
    summary = {
        "profile": profile.name,
        "device": describe(torch_device),
        "parameters": model.num_parameters(),
        "non_embedding_parameters": model.num_parameters(non_embedding=True),
        "vocab_size": tokenizer.vocab_size,
        "train_tokens": int(train_ids.numel()),
        "validation_tokens": int(val_ids.numel()),
        "steps": result.steps,
        "tokens_per_s": round(result.tokens_per_s, 1),
        "train_loss": round(result.final_train_loss, 4),
        "val_loss": round(result.final_val_loss, 4),
        "val_perplexity": round(float(torch.exp(torch.tensor(result.final_val_loss))), 2),
        "wall_s": round(time.perf_counter() - started, 1),
        "train_wall_s": round(result.wall_s, 1),
        "checkpoint": str(checkpoint_dir),
        "sample_prompt": prompt,
        "sample": prompt + tokenizer.decode(sample_ids),
        "sample_decoding": SAMPLE_DECODING,
        "flops_per_token": model.flops_per_token(),
        "peak_flops": peak_flops,             # the ceiling the MFU is measured against
        "peak_flops_before": ceiling_before, "peak_flops_after": ceiling_after,
        "mfu": mfu_of_run(model.flops_per_token(), result.tokens_per_s, peak_flops, world),
        "history": result.history,
    }
    if world > 1:
        summary["world_size"] = world           # processes that trained together; tokens_per_s is their sum
    artifacts.atomic_write_json(run.paths.metric(f"{checkpoint_name}_summary"), summary)
    artifacts.update_manifest(run.paths.manifest, checkpoint_name, artifacts.provenance(
        profile=profile.name, seed=profile.seed, device=describe(torch_device),
        config_hash=artifacts.config_hash(profile.to_dict()),
        summary={k: v for k, v in summary.items() if k != "history"}))
    integrity.record_tree(run.paths.dir)      # the manifest now holds a checksum of every artifact
    return summary


def mfu_of_run(flops_per_token: float, tokens_per_s: float, peak_flops: float | None,
               world: int = 1) -> float | None:
    """Model FLOP utilisation of a whole run: ``flops_per_token × tokens_per_s ÷ (peak_flops × world)``.

    ``tokens_per_s`` is the run's (the sum over ``world`` processes); ``peak_flops`` one device's
    ceiling. Computed from the throughput itself, not as a mean of per-row utilisations, so that it
    agrees with the tokens per second printed beside it. None without a ceiling.
    """
    if not peak_flops:
        return None
    if peak_flops < 0 or tokens_per_s < 0 or world < 1:
        raise ValueError(f"mfu_of_run needs a positive ceiling, throughput and world size; got "
                         f"peak_flops={peak_flops}, tokens_per_s={tokens_per_s}, world={world}")
    return round(flops_per_token * tokens_per_s / (peak_flops * world), 5)


def rescale_row_mfus(history: list[dict[str, Any]], used: float | None, peak_flops: float | None) -> None:
    """Restate each row's ``mfu``, computed during training against the ceiling ``used`` (timed before
    training), against the run's ceiling ``peak_flops`` (the larger of before and after)."""
    if not used or not peak_flops:
        return
    for row in history:
        if row.get("mfu") is not None:
            row["mfu"] = row["mfu"] * used / peak_flops


def interrupted_run(checkpoint_dir: Path, train_config: TrainConfig, model_config: GPTConfig,
                    data_sha256: str | None) -> tuple[bool, str]:
    """Whether ``checkpoint_dir`` holds an unfinished run of exactly these settings and data, and why (not).

    A finished run, or one of another model, training configuration or data, is not resumed: training
    starts from step 0 (and replaces that checkpoint at its first validation).
    """
    if not has_checkpoint(checkpoint_dir):
        return False, f"no checkpoint in {checkpoint_dir} to resume: training from step 0"
    try:
        config = artifacts.read_json(checkpoint_dir / CONFIG_FILE)
        state = artifacts.read_json(checkpoint_dir / STATE_FILE)
    except CheckpointError as exc:
        raise CheckpointError(f"cannot tell whether to resume from {checkpoint_dir}: {exc} To train from step 0 "
                              f"instead, delete that folder (or pass --restart to python -m roots_course train)."
                              ) from exc
    step = state.get("step") if isinstance(state, dict) else None
    if not isinstance(config, dict) or not isinstance(step, int):
        raise CheckpointError(f"{checkpoint_dir / STATE_FILE}: not a checkpoint's state (no step); delete "
                              f"{checkpoint_dir} to train from step 0")
    if step >= train_config.steps:
        return False, (f"the checkpoint in {checkpoint_dir} is of a finished run ({step} of {train_config.steps} "
                       f"steps): training again from step 0")

    def same(a: Any, b: Any) -> bool:
        return json.loads(json.dumps(a)) == json.loads(json.dumps(b))

    differ = [what for what, saved, now in (("model configuration", config.get("model"), model_config.to_dict()),
                                            ("training configuration", config.get("train"), train_config.to_dict()),
                                            ("training data", state.get("data_sha256"), data_sha256))
              if not same(saved, now)]
    if differ:
        return False, (f"the checkpoint in {checkpoint_dir} (step {step}) was made with another "
                       f"{' and '.join(differ)}: training from step 0")
    return True, (f"resuming the interrupted run in {checkpoint_dir} from its checkpoint at step {step} of "
                  f"{train_config.steps}")


def _silent(line: str) -> None:
    """The log of processes other than rank 0."""


def load_pretrained(run: Run, *, device: str | None = None, say: Say = print,
                    checkpoint_name: str = "pretrained") -> tuple[GPT, Tokenizer]:
    """The pretrained model and its tokenizer; trains them first (and says so) when missing."""
    checkpoint_dir = run.paths.checkpoint(checkpoint_name)
    if not (checkpoint_dir / "model.safetensors").is_file():
        say(f"no pretrained checkpoint at {checkpoint_dir}: training one now with profile {run.profile.name!r}")
        pretrain(run, device=device, checkpoint_name=checkpoint_name, say=say)
    torch_device = pick_device(device or run.profile.device)
    model, _, _ = load_checkpoint(checkpoint_dir, torch_device)
    return model, load_tokenizer(run.paths.tokenizer)
