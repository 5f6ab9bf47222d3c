"""What training cost: floating-point operations counted from the model's shape, the wall time and
device the runs recorded, and an energy and carbon estimate whose assumptions are explicit arguments.

FLOPs per token of a training step (forward + backward), for a model whose weight matrices hold N
numbers used on every token (``GPT.flops_per_token``), at context length T:

    forward              2·N            one multiply and one add per weight
    backward, inputs     2·N            the gradient flowing back through every weight
    backward, weights    2·N_trained    the gradient of each trained weight (frozen ones skip it)
    attention            12·L·C·T       Q·Kᵀ and weights·V: 4·C·T per layer forward, times 3 with backward

Full training has N_trained = N: the familiar 6·N per token (Kaplan et al. 2020) plus attention. LoRA
freezes the model, so its backward pass skips most weight gradients (and adds a little for the
adapters themselves). Total FLOPs = FLOPs per token × D, the tokens processed.

Energy and carbon are estimates, not measurements: energy = power × time × PUE (the data centre's
overhead factor; 1 for a laptop), carbon = energy × the grid's carbon intensity. Both assumptions are
parameters: a reader sets them for their own machine and grid and sees the numbers move.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from roots_course.store.artifacts import ArtifactPaths
from roots_course.errors import ConfigError
from roots_course.core.model import GPT, GPTConfig, forward_flops_per_token, training_flops_per_token


def matmul_params(config: GPTConfig | Mapping[str, Any]) -> int:
    """N of a GPT configuration: non-embedding parameters plus the output head's V·C, as in
    ``GPT.flops_per_token``. Built on torch's meta device: no memory is allocated, nothing is drawn."""
    config = config if isinstance(config, GPTConfig) else GPTConfig.from_dict(dict(config))
    with torch.device("meta"):
        return GPT(config).matmul_parameters()


def total_parameters(config: GPTConfig | Mapping[str, Any]) -> int:
    config = config if isinstance(config, GPTConfig) else GPTConfig.from_dict(dict(config))
    with torch.device("meta"):
        return GPT(config).num_parameters()


# ---------------------------------------------------------------------------------------------
# The runs the artifacts record
# ---------------------------------------------------------------------------------------------


@dataclass
class RunCost:
    """One training run: what it trained, how many tokens, FLOPs, time and device."""

    name: str
    kind: str  # pretraining | full fine-tuning | LoRA | instruction tuning | classifier | evaluation
    parameters: int | None
    trained_parameters: int | None
    steps: int | None
    tokens: int | None
    tokens_exact: bool  # False: an upper bound (fine-tuning rows are shorter than the window)
    flops_per_token: int | None
    flops: float | None
    wall_s: float | None
    device: str | None
    source: str  # where the numbers came from

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _read(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None


def _kind(name: str, state: Mapping[str, Any] | None, config: Mapping[str, Any]) -> str:
    method = str((state or {}).get("method", ""))
    if "labels" in config:
        return "classifier"
    if name == "pretrained" or (state is not None and "tokens_seen" in state and not method):
        return "pretraining"
    if "lora" in method.lower() or name.startswith("lora_"):
        return "LoRA"
    if "instruction" in method or name == "instruct":
        return "instruction tuning"
    return "full fine-tuning"


def checkpoint_run(folder: str | Path, manifest: Mapping[str, Any] | None = None,
                   classifier_record: Mapping[str, Any] | None = None) -> RunCost | None:
    """The cost of the run that wrote checkpoint ``folder`` (None when it holds no model configuration).

    Pretraining records its tokens exactly (``tokens_seen``). A fine-tuning row is cut to the longest row
    of its batch, at most the window, so steps × batch × window is an upper bound (``tokens_exact`` False).
    Wall time comes from the checkpoint's state; the device from the manifest section that made it.
    A classification head's folder records no run: ``classifier_record`` (from chapter 4's metrics file:
    trainable, train_s, steps, batch_size) supplies it when known.
    """
    folder = Path(folder)
    config = _read(folder / "config.json")
    if not isinstance(config, dict) or not isinstance(config.get("model"), dict):
        return None
    try:
        model_cfg = GPTConfig.from_dict(config["model"])
    except Exception:  # noqa: BLE001 - a configuration of another kind of model: not ours to count
        return None
    state = _read(folder / "state.json")
    train = config.get("train") or {}
    name = folder.name
    kind = _kind(name, state, config)
    manifest = manifest or {}
    n = matmul_params(model_cfg)
    total = total_parameters(model_cfg)
    steps = (state or {}).get("step")
    trained = (state or {}).get("trainable_parameters", total if kind in ("pretraining", "full fine-tuning",
                                                                          "instruction tuning") else None)
    tokens, exact = None, False
    if state is not None and state.get("tokens_seen") is not None:
        tokens, exact = int(state["tokens_seen"]), True
    elif steps is not None and train.get("batch_size"):
        tokens = int(steps) * int(train["batch_size"]) * int(train.get("grad_accum", 1)) * model_cfg.block_size
    per_token = None
    if trained is not None:
        # Weight gradients are computed for the trained matrices: all of N in full training, only the
        # adapters in LoRA (which are also extra matrices on every token, so they join N).
        # Position embeddings train but are a lookup, not a multiply: no FLOPs.
        extra, trained_matmul = (trained, trained) if kind == "LoRA" else (0, n)
        per_token = training_flops_per_token(n + extra, trained_matmul, model_cfg.n_layer, model_cfg.n_embd,
                                             model_cfg.block_size)
    source = f"checkpoints/{name} (config.json, state.json)"
    if kind == "classifier" and classifier_record:
        # the classifier's folder holds weights only; chapter 4's metrics file records its run
        trained = classifier_record.get("trainable")
        steps = classifier_record.get("steps")
        if steps is not None and classifier_record.get("batch_size"):
            tokens = int(steps) * int(classifier_record["batch_size"]) * model_cfg.block_size
        if trained is not None:
            # the classifier reads the last hidden states: no output head over the vocabulary (V·C), but a
            # small head of its own (counted on every token: an upper bound, like the tokens)
            head = max(0, int(trained) - total)
            body = n - model_cfg.vocab_size * model_cfg.n_embd
            per_token = training_flops_per_token(body + head, body + head, model_cfg.n_layer, model_cfg.n_embd,
                                                 model_cfg.block_size)
        state = {"wall_s": classifier_record.get("train_s")}
        source = f"checkpoints/{name} (config.json) + metrics/tasks.json"
    section = manifest.get(name) if name in manifest else manifest.get("tasks") if kind != "pretraining" else None
    device = (section or {}).get("device")
    wall = (state or {}).get("wall_s")
    if kind == "pretraining" and isinstance((section or {}).get("summary"), dict):
        wall = section["summary"].get("train_wall_s", wall)
    return RunCost(name=name, kind=kind, parameters=total, trained_parameters=trained,
                   steps=int(steps) if steps is not None else None, tokens=tokens, tokens_exact=exact,
                   flops_per_token=per_token, flops=float(per_token * tokens) if per_token and tokens else None,
                   wall_s=float(wall) if wall is not None else None, device=device,
                   source=source + (" + manifest" if section else ""))


def classifier_record(tasks_summary: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The fine-tuned classifier's run from chapter 4's ``metrics/tasks.json`` (None when not there):
    trainable parameters, training seconds, and steps and batch size from the tasks settings."""
    if not isinstance(tasks_summary, Mapping):
        return None
    entry = next((e for m, e in (tasks_summary.get("classification") or {}).items() if m.startswith("fine-tuned")), None)
    if not isinstance(entry, Mapping):
        return None
    settings = tasks_summary.get("settings") or {}
    return {"trainable": entry.get("trainable"), "train_s": entry.get("train_s"),
            "steps": settings.get("classify_steps"), "batch_size": settings.get("batch_size")}


def recorded_runs(paths: ArtifactPaths) -> list[RunCost]:
    """Every checkpoint under ``paths.checkpoints`` that holds a GPT, pretraining first, then by name."""
    manifest = _read(paths.manifest) or {}
    record = classifier_record(_read(paths.metric("tasks")))
    runs = []
    if paths.checkpoints.is_dir():
        for folder in sorted(p for p in paths.checkpoints.iterdir() if p.is_dir() and not p.name.startswith(".")):
            run = checkpoint_run(folder, manifest, record if folder.name.startswith("classifier") else None)
            if run is not None:
                runs.append(run)
    return sorted(runs, key=lambda r: (r.kind != "pretraining", r.name))


# ---------------------------------------------------------------------------------------------
# Energy and carbon
# ---------------------------------------------------------------------------------------------


def energy_kwh(wall_s: float, power_watts: float, pue: float = 1.0) -> float:
    """Energy in kWh of drawing ``power_watts`` for ``wall_s`` seconds, times the facility's PUE."""
    if power_watts < 0 or wall_s < 0:
        raise ConfigError(f"power and time must be non-negative, got {power_watts} W and {wall_s} s")
    if pue < 1:
        raise ConfigError(f"a PUE is at least 1 (the computer itself), got {pue}")
    return power_watts * wall_s * pue / 3.6e6  # W·s = J; 1 kWh = 3.6e6 J


def carbon_kg(kwh: float, grid_g_per_kwh: float) -> float:
    """kg of CO2-equivalent for ``kwh`` of electricity from a grid emitting ``grid_g_per_kwh``."""
    if grid_g_per_kwh < 0:
        raise ConfigError(f"grid carbon intensity must be non-negative, got {grid_g_per_kwh}")
    return kwh * grid_g_per_kwh / 1000.0


def estimate(runs: list[RunCost], power_watts: float, grid_g_per_kwh: float, pue: float = 1.0) -> list[dict[str, Any]]:
    """Each run with its energy (Wh) and carbon (g CO2e) under the stated assumptions; a run without a
    recorded wall time gets None, not a guess."""
    rows = []
    for run in runs:
        kwh = energy_kwh(run.wall_s, power_watts, pue) if run.wall_s is not None else None
        rows.append({**run.to_dict(), "energy_Wh": None if kwh is None else kwh * 1000,
                     "carbon_g": None if kwh is None else carbon_kg(kwh, grid_g_per_kwh) * 1000})
    return rows


# ---------------------------------------------------------------------------------------------
# Measuring this chapter's own work
# ---------------------------------------------------------------------------------------------


class ForwardMeter:
    """Counts the tokens a model's forward passes process, and the wall time, while active.

    FLOPs are an upper bound: every token is charged attention over a full window (2·N + 4·L·C·T with
    T = block_size), although a short context costs less.
    """

    def __init__(self, model: GPT) -> None:
        self.model = model
        self.tokens = 0
        self.wall_s = 0.0
        c = model.config
        n = model.num_parameters(non_embedding=True) + (c.vocab_size * c.n_embd if c.tie_weights else 0)
        self.flops_per_token = forward_flops_per_token(n, c.n_layer, c.n_embd, c.block_size)

        self._handle = None
        self._started = 0.0

    @property
    def flops(self) -> float:
        return float(self.tokens * self.flops_per_token)

    def _count(self, _module, args) -> None:
        if args:
            self.tokens += int(args[0].numel())  # idx (B, T)

    def start(self) -> ForwardMeter:
        """Start counting (again); a meter already running is left as it is."""
        if self._handle is None:
            self._handle = self.model.register_forward_pre_hook(self._count)
            self._started = time.perf_counter()
        return self

    def stop(self) -> ForwardMeter:
        """Stop counting; tokens and wall time so far are kept."""
        if self._handle is not None:
            self._handle.remove()
            self._handle = None
            self.wall_s += time.perf_counter() - self._started
        return self

    @contextmanager
    def measure(self) -> Iterator[ForwardMeter]:
        """Count while the block runs."""
        self.start()
        try:
            yield self
        finally:
            self.stop()

    def as_run(self, name: str, device: str) -> RunCost:
        """What was measured, as a row of the cost table (kind "evaluation": forward passes only)."""
        n = self.model.num_parameters()
        return RunCost(name=name, kind="evaluation", parameters=n, trained_parameters=0, steps=None,
                       tokens=self.tokens, tokens_exact=True, flops_per_token=self.flops_per_token, flops=self.flops,
                       wall_s=self.wall_s, device=device, source="measured while this chapter ran (upper bound on FLOPs)")


# ---------------------------------------------------------------------------------------------
# Published figures for large models
# ---------------------------------------------------------------------------------------------

# Numbers as their sources publish them; None where the source gives none. Energy and emissions of
# training runs (not of development, not of use).
PUBLISHED: tuple[dict[str, Any], ...] = (
    {"model": "GPT-3 175B", "parameters": 175e9, "training FLOPs": 3.14e23, "energy MWh": 1287.0, "tCO2e": 552.0,
     "notes": "FLOPs: Brown et al. 2020, Table D.1; energy and emissions (V100 GPUs, 429 gCO2e/kWh implied): "
              "Patterson et al. 2021",
     "source": "Brown et al. 2020, 'Language Models are Few-Shot Learners'; Patterson et al. 2021, "
               "'Carbon Emissions and Large Neural Network Training'"},
    {"model": "BLOOM 176B", "parameters": 176e9, "training FLOPs": None, "energy MWh": 433.0, "tCO2e": 24.7,
     "notes": "24.7 t from the GPUs' dynamic power on France's grid (about 57 gCO2e/kWh); 50.5 t when idle "
              "power and hardware manufacturing are included",
     "source": "Luccioni, Viguier & Ligozat 2022, 'Estimating the Carbon Footprint of BLOOM, a 176B Parameter "
               "Language Model'"},
    {"model": "Transformer (big) + neural architecture search", "parameters": None, "training FLOPs": None,
     "energy MWh": None, "tCO2e": 626155 * 0.45359237 / 1000,
     "notes": "626,155 lbs CO2e for the whole search, an estimate later revised by Patterson et al. 2021",
     "source": "Strubell, Ganesh & McCallum 2019, 'Energy and Policy Considerations for Deep Learning in NLP', "
               "ACL 2019"},
)
