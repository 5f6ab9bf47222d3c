"""Checkpoints: saving a training run so that it can be resumed bit for bit, and loading it safely.

A checkpoint is a folder of four files: ``model.safetensors``, ``optimizer.safetensors``,
``config.json`` (model and training configuration) and ``state.json`` (step, history, random number
generator states). It is written into a temporary folder that is then renamed into place, so a crash
leaves the old checkpoint or the new one, never a mix. Every way a checkpoint can be damaged —
a missing file, a truncated or altered one, missing or extra tensors, another model's configuration —
raises CheckpointError naming the file.
"""

from __future__ import annotations

import base64
import json
import math
import os
import random
import shutil
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn

from roots_course.core.model import GPT, GPTConfig
from roots_course.errors import CheckpointError, ConfigError
from roots_course.store import integrity
from roots_course.store.artifacts import atomic_write_json, load_tensors, read_json, save_tensors
from roots_course.store.atomic import fsync_folder

MODEL_FILE = "model.safetensors"
OPTIMIZER_FILE = "optimizer.safetensors"
CONFIG_FILE = "config.json"
STATE_FILE = "state.json"          # written last: its presence marks a complete checkpoint
CHECKPOINT_FORMAT = 1


class SavedConfig(Protocol):
    """A configuration a checkpoint records (``TrainConfig``): anything that turns itself into JSON.
    Typed by shape, so this module does not import the training loop that imports it."""

    def to_dict(self) -> dict[str, Any]: ...


# --- random number generator states ---------------------------------------------------------------

def tensor_to_bytes(t: torch.Tensor) -> str:
    return base64.b64encode(t.cpu().numpy().tobytes()).decode("ascii")


def bytes_to_tensor(s: str) -> torch.Tensor:
    return torch.frombuffer(bytearray(base64.b64decode(s)), dtype=torch.uint8)


def capture_rng_state() -> dict[str, Any]:
    """The global generators (Python, NumPy, torch CPU and CUDA) as JSON-able values."""
    import numpy as np

    version, internal, gauss = random.getstate()
    np_state = np.random.get_state()
    state: dict[str, Any] = {
        "python": [version, list(internal), gauss],
        "numpy": [np_state[0], np_state[1].tolist(), *[v.item() if hasattr(v, "item") else v for v in np_state[2:]]],
        "torch": tensor_to_bytes(torch.get_rng_state()),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = [tensor_to_bytes(s) for s in torch.cuda.get_rng_state_all()]
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    """Put back what ``capture_rng_state`` saved."""
    import numpy as np

    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, *rest = state["numpy"]
    np.random.set_state((kind, np.array(keys, dtype=np.uint32), *rest))
    torch.set_rng_state(bytes_to_tensor(state["torch"]))
    if "cuda" in state and torch.cuda.is_available():
        saved = [bytes_to_tensor(s) for s in state["cuda"]]
        if len(saved) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(saved)


# --- checkpoints ----------------------------------------------------------------------------------

def has_checkpoint(directory: str | os.PathLike) -> bool:
    """True when ``directory`` holds a complete checkpoint (after finishing an interrupted save)."""
    directory = Path(directory)
    _finish_interrupted_save(directory)
    return (directory / STATE_FILE).is_file()


def _side_folders(directory: Path) -> tuple[Path, Path]:
    return directory.with_name(f".{directory.name}.new"), directory.with_name(f".{directory.name}.old")


def _finish_interrupted_save(directory: Path) -> None:
    """If a save died between its two renames, the target is missing: put the newest complete copy back."""
    if directory.exists():
        return
    for candidate in _side_folders(directory):          # the new one first: it is complete if it has state.json
        if (candidate / STATE_FILE).is_file():
            os.replace(candidate, directory)
            return


def save_checkpoint(directory: str | os.PathLike, model: nn.Module, optimizer: torch.optim.Optimizer,
                    state: dict[str, Any], *, train_config: SavedConfig | None = None) -> Path:
    """Write a checkpoint folder atomically; return its path.

    ``state`` must be JSON-able and should hold at least ``step`` and ``history``; the global random
    number generator states are added as ``rng`` unless given. The files go into ``.<name>.new``,
    which then replaces ``<name>`` by renames, so the folder is always a whole checkpoint.
    """
    directory = Path(directory)
    _finish_interrupted_save(directory)
    if directory.exists() and not (directory / STATE_FILE).is_file() and any(directory.iterdir()):
        raise CheckpointError(f"{directory} exists and is not a checkpoint folder; refusing to replace it")
    new, old = _side_folders(directory)
    for leftover in (new, old):
        if leftover.exists():
            shutil.rmtree(leftover)
    new.mkdir(parents=True)

    weights = {k: v.detach().cpu() for k, v in model.state_dict_for_saving().items()}
    save_tensors(new / MODEL_FILE, weights, metadata={"format": "roots_course.model"})
    opt_tensors, opt_meta = _flatten_optimizer_state(optimizer)
    save_tensors(new / OPTIMIZER_FILE, opt_tensors, metadata={"format": "roots_course.optimizer"})
    atomic_write_json(new / CONFIG_FILE, {
        "model": model.config.to_dict(),
        "train": train_config.to_dict() if train_config is not None else None,
    })
    full_state = {"format": CHECKPOINT_FORMAT, **state, "optimizer": opt_meta}
    full_state.setdefault("rng", capture_rng_state())
    atomic_write_json(new / STATE_FILE, json_safe(full_state))

    with integrity.writing(directory):      # the manifest's checksums follow the swap
        if directory.exists():
            os.replace(directory, old)
        os.replace(new, directory)
    fsync_folder(directory.parent)
    shutil.rmtree(old, ignore_errors=True)
    return directory


def load_checkpoint(directory: str | os.PathLike, device: torch.device | str | None = None,
                    model: nn.Module | None = None) -> tuple[nn.Module, dict[str, Any], dict[str, Any]]:
    """Read a checkpoint: return (model, optimizer_state, state).

    With ``model`` the weights are loaded into it (its configuration must equal the saved one);
    without, a ``GPT`` is built from ``config.json``. ``optimizer_state`` is in the form of
    ``Optimizer.state_dict()``; pass it to ``restore_optimizer``. Every problem raises CheckpointError
    naming the file: missing, truncated or altered files, missing or extra tensors, shape mismatches,
    and a model configuration that differs from the given model's.
    """
    directory = Path(directory)
    _finish_interrupted_save(directory)
    if not directory.is_dir():
        raise CheckpointError(f"{directory}: no checkpoint folder there")
    paths = {name: directory / name for name in (CONFIG_FILE, STATE_FILE, MODEL_FILE, OPTIMIZER_FILE)}
    for path in paths.values():
        if not path.is_file():
            raise CheckpointError(f"{path}: file missing from the checkpoint")

    config = read_json(paths[CONFIG_FILE])
    if not isinstance(config, dict) or not isinstance(config.get("model"), dict):
        raise CheckpointError(f"{paths[CONFIG_FILE]}: expected an object with a 'model' configuration")
    state = read_json(paths[STATE_FILE])
    if not (isinstance(state, dict) and isinstance(state.get("step"), int) and isinstance(state.get("history"), list)
            and isinstance(state.get("optimizer"), dict)):
        raise CheckpointError(f"{paths[STATE_FILE]}: expected an object with 'step', 'history' and 'optimizer'")

    if model is None:
        try:
            model = GPT(GPTConfig.from_dict(config["model"]))
        except (TypeError, ValueError) as exc:
            raise CheckpointError(f"{paths[CONFIG_FILE]}: cannot build a model from it ({exc})") from exc
    else:
        mine = json.loads(json.dumps(model.config.to_dict()))
        saved = config["model"]
        differ = sorted(k for k in set(mine) | set(saved) if mine.get(k, "<absent>") != saved.get(k, "<absent>"))
        if differ:
            details = ", ".join(f"{k} (checkpoint {saved.get(k, '<absent>')!r}, model {mine.get(k, '<absent>')!r})"
                                for k in differ)
            raise CheckpointError(f"{paths[CONFIG_FILE]}: the model configuration differs from the given "
                                  f"model's in {details}")

    weights = load_tensors(paths[MODEL_FILE])
    expected = model.state_dict_for_saving()
    _check_tensor_names(paths[MODEL_FILE], set(expected), set(weights))
    for name, tensor in expected.items():
        if tuple(weights[name].shape) != tuple(tensor.shape):
            raise CheckpointError(f"{paths[MODEL_FILE]}: tensor {name!r} has shape {tuple(weights[name].shape)}, "
                                  f"the model expects {tuple(tensor.shape)}")
    model.load_state_for_saving(weights, strict=True)
    if device is not None:
        model.to(device)

    optimizer_state = _unflatten_optimizer_state(load_tensors(paths[OPTIMIZER_FILE]), state["optimizer"],
                                                 paths[OPTIMIZER_FILE], paths[STATE_FILE])
    return model, optimizer_state, state


def _check_tensor_names(path: Path, expected: set[str], found: set[str]) -> None:
    missing, extra = sorted(expected - found), sorted(found - expected)
    if missing or extra:
        problems = ([f"missing tensor(s) {', '.join(missing)}"] if missing else []) + \
                   ([f"unexpected tensor(s) {', '.join(extra)}"] if extra else [])
        raise CheckpointError(f"{path}: {'; '.join(problems)}")


# The optimizer's state_dict is {"state": {param_index: {name: tensor or number}}, "param_groups": [...]}.
# Tensors with a shape (Adam's moments, SGD's momentum buffer) go to optimizer.safetensors as
# "<index>.<name>"; scalars (Adam's step count), numbers and the groups' hyperparameters go to state.json.

_IMPLEMENTATION_KEYS = ("fused", "foreach", "capturable", "differentiable")


def _flatten_optimizer_state(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    sd = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    entries: dict[str, dict[str, Any]] = {}
    for index, param_state in sd["state"].items():
        entry = {}
        for key, value in param_state.items():
            if torch.is_tensor(value) and value.dim() > 0:
                tensors[f"{index}.{key}"] = value.detach().cpu()
                entry[key] = {"tensor": f"{index}.{key}"}
            elif torch.is_tensor(value):
                entry[key] = {"scalar": value.item(), "dtype": str(value.dtype).removeprefix("torch.")}
            else:
                entry[key] = {"value": value}
        entries[str(index)] = entry
    groups = [{k: (v.item() if torch.is_tensor(v) else list(v) if isinstance(v, tuple) else v)
               for k, v in group.items()} for group in sd["param_groups"]]
    return tensors, {"kind": type(optimizer).__name__, "param_groups": groups, "state": entries}


def _unflatten_optimizer_state(tensors: dict[str, torch.Tensor], meta: dict[str, Any],
                               tensor_path: Path, state_path: Path) -> dict[str, Any]:
    try:
        listed = {v["tensor"] for entry in meta["state"].values() for v in entry.values() if "tensor" in v}
        _check_tensor_names(tensor_path, listed, set(tensors))
        state: dict[int, dict[str, Any]] = {}
        for index, entry in meta["state"].items():
            state[int(index)] = {}
            for key, v in entry.items():
                if "tensor" in v:
                    state[int(index)][key] = tensors[v["tensor"]]
                elif "scalar" in v:
                    state[int(index)][key] = torch.tensor(v["scalar"], dtype=getattr(torch, v["dtype"]))
                else:
                    state[int(index)][key] = v["value"]
        groups = [{k: (tuple(v) if k == "betas" else v) for k, v in g.items()} for g in meta["param_groups"]]
        kind = meta["kind"]
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        if isinstance(exc, CheckpointError):
            raise
        raise CheckpointError(f"{state_path}: the optimizer entry is malformed ({exc!r})") from exc
    return {"kind": kind, "state": state, "param_groups": groups}


def restore_optimizer(optimizer: torch.optim.Optimizer, optimizer_state: dict[str, Any],
                      source: str | os.PathLike = OPTIMIZER_FILE) -> None:
    """Load ``optimizer_state`` (from ``load_checkpoint``) into ``optimizer``, checking it fits.

    The optimizer kind, the number and sizes of parameter groups and every state tensor's shape must
    match; the current optimizer keeps its own implementation switches (fused, foreach), so a
    checkpoint written on a GPU resumes on a CPU.
    """
    kind = optimizer_state.get("kind", type(optimizer).__name__)
    if kind != type(optimizer).__name__:
        raise CheckpointError(f"{source}: holds the state of a {kind} optimizer, not of {type(optimizer).__name__}")
    saved_groups, current = optimizer_state["param_groups"], optimizer.param_groups
    if [len(g["params"]) for g in saved_groups] != [len(g["params"]) for g in current]:
        raise CheckpointError(f"{source}: parameter group sizes {[len(g['params']) for g in saved_groups]} "
                              f"do not match the optimizer's {[len(g['params']) for g in current]}")
    by_index = {i: p for saved, group in zip(saved_groups, current) for i, p in zip(saved["params"], group["params"])}
    for index, param_state in optimizer_state["state"].items():
        if index not in by_index:
            raise CheckpointError(f"{source}: state for parameter {index}, which no group holds")
        for key, value in param_state.items():
            if torch.is_tensor(value) and value.dim() > 0 and value.shape != by_index[index].shape:
                raise CheckpointError(f"{source}: tensor '{index}.{key}' has shape {tuple(value.shape)}, "
                                      f"the parameter has {tuple(by_index[index].shape)}")
    groups = [{**saved, **{k: group[k] for k in _IMPLEMENTATION_KEYS if k in group}}
              for saved, group in zip(saved_groups, current)]
    try:
        optimizer.load_state_dict({"state": optimizer_state["state"], "param_groups": groups})
    except (ValueError, KeyError, RuntimeError) as exc:
        raise CheckpointError(f"{source}: does not fit the optimizer ({exc})") from exc


def json_safe(obj: Any) -> Any:
    """Non-finite floats become None (JSON has no NaN); tuples become lists."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj


# --- resuming a training run ------------------------------------------------------------------------

@dataclass
class ResumePoint:
    """Where a run starts: step 0, or what a checkpoint recorded."""

    step: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    wall_s: float = 0.0
    resumed: int | None = None           # the step resumed from, None for a fresh start


def resume_training(checkpoint_dir: Path | None, model: nn.Module, optimizer: torch.optim.Optimizer,
                    sampler: torch.Generator, cfg: SavedConfig, device: torch.device,
                    say: Callable[[str], Any] | None = print) -> ResumePoint:
    """Load the checkpoint in ``checkpoint_dir`` into the model, optimizer, the sampler of training
    batches and the global generators, so the run continues bit for bit; without a checkpoint there,
    ``say`` so and start at step 0. A training configuration that differs from the saved one warns."""
    if checkpoint_dir is None:
        raise ConfigError("resume=True needs a checkpoint_dir to resume from")
    if not has_checkpoint(checkpoint_dir):
        if say is not None:
            say(f"no checkpoint in {checkpoint_dir}: training from step 0")
        return ResumePoint()
    _, optimizer_state, state = load_checkpoint(checkpoint_dir, device, model)
    _warn_on_config_change(checkpoint_dir, cfg)
    restore_optimizer(optimizer, optimizer_state, checkpoint_dir / OPTIMIZER_FILE)
    try:
        sampler.set_state(bytes_to_tensor(state["batch_sampler"]))
        restore_rng_state(state["rng"])
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{checkpoint_dir / STATE_FILE}: cannot restore the random number "
                              f"generators from it ({exc!r})") from exc
    step = int(state["step"])
    return ResumePoint(step, list(state["history"]), float(state.get("wall_s", 0.0)), step)


def save_training(checkpoint_dir: Path, model: nn.Module, optimizer: torch.optim.Optimizer,
                  sampler: torch.Generator, cfg: SavedConfig, history: list[dict[str, Any]], wall_s: float,
                  tokens_per_step: int, extra: dict[str, Any] | None = None) -> Path:
    """A checkpoint of a run as it stands after ``history[-1]``: everything ``resume_training`` needs,
    plus the caller's ``extra`` entries (e.g. a digest of the training data)."""
    done = history[-1]["step"]
    return save_checkpoint(checkpoint_dir, model, optimizer, {
        **(extra or {}),
        "step": done,
        "history": history,
        "wall_s": wall_s,
        "tokens_seen": done * tokens_per_step,
        "batch_sampler": tensor_to_bytes(sampler.get_state()),
    }, train_config=cfg)


def _warn_on_config_change(checkpoint_dir: Path, cfg: SavedConfig) -> None:
    saved = read_json(checkpoint_dir / CONFIG_FILE).get("train")
    if isinstance(saved, dict):
        defaults = type(cfg)().to_dict()        # a key the checkpoint predates had its default value
        changed = sorted(k for k, v in cfg.to_dict().items() if saved.get(k, defaults[k]) != v)
        if changed:
            warnings.warn(f"resuming {checkpoint_dir} with a different training configuration: "
                          f"{', '.join(f'{k} ({saved.get(k, defaults[k])!r} -> {getattr(cfg, k)!r})' for k in changed)}",
                          stacklevel=4)
