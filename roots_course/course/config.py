"""The course's profiles (smoke | cpu | gpu), read from the top-level ``_config.yml`` into typed objects.

Each part of the course owns the dataclass of its settings (``GPTConfig`` in ``model``, ``TrainConfig``
in ``train``); this module reads the file, checks every key and value, and builds those objects.
Anything unknown or out of range fails here, at once, with a message that names the key and what is
allowed, rather than twenty minutes into a training run.
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from roots_course._offline import PROJECT_ROOT
from roots_course.core.data import CORPUS_KINDS as CORPUS_BUILDERS
from roots_course.core.device import DEVICE_CHOICES
from roots_course.errors import ConfigError
from roots_course.core.model import GPTConfig
from roots_course.core.tokenizer import TOKENIZER_KINDS
from roots_course.core.train import TrainConfig

CONFIG_PATH = PROJECT_ROOT / "_config.yml"
DEFAULT_PROFILE = "cpu"
CORPUS_KINDS = tuple(CORPUS_BUILDERS)


@dataclass(frozen=True)
class CorpusConfig:
    kind: str = "python_docs"
    max_chars: int | None = None
    path: str | None = None          # kind "text": a UTF-8 file or a folder
    name: str | None = None          # kind "hub": a dataset name, for online users only
    n_stories: int | None = None     # kind "grammar"

    def validate(self) -> None:
        if self.kind not in CORPUS_KINDS:
            raise ConfigError(f"corpus.kind must be one of {', '.join(CORPUS_KINDS)}, got {self.kind!r}")
        if self.max_chars is not None and self.max_chars <= 0:
            raise ConfigError(f"corpus.max_chars must be a positive integer or null, got {self.max_chars}")
        if self.kind == "text" and not self.path:
            raise ConfigError("corpus.path is required when corpus.kind is 'text'")
        if self.kind == "hub" and not self.name:
            raise ConfigError("corpus.name is required when corpus.kind is 'hub'")


@dataclass(frozen=True)
class TokenizerConfig:
    kind: str = "fast_bpe"
    vocab_size: int = 2048

    def validate(self) -> None:
        if self.kind not in TOKENIZER_KINDS:
            raise ConfigError(f"tokenizer.kind must be one of {', '.join(TOKENIZER_KINDS)}, got {self.kind!r}")
        if self.kind != "char" and not 257 <= self.vocab_size <= 1_000_000:
            raise ConfigError(f"tokenizer.vocab_size must be between 257 and 1000000 for a byte-level BPE, "
                              f"got {self.vocab_size}")


@dataclass(frozen=True)
class RepresentationConfig:
    """Sizes of chapter 1's side experiments (the ``representation:`` section of a profile)."""

    bpe_slice_chars: int = 200_000            # the from-scratch BPE trains on this much text
    vocab_sizes: tuple[int, ...] = (260, 512, 1024, 2048)   # vocabulary size vs sequence length
    demo_steps: int = 200                     # a short training run when no checkpoint exists yet

    def validate(self) -> None:
        if self.bpe_slice_chars <= 0 or self.demo_steps <= 0:
            raise ConfigError("bpe_slice_chars and demo_steps must be positive integers")
        if not self.vocab_sizes or any(v < 257 for v in self.vocab_sizes):
            raise ConfigError(f"vocab_sizes must be a non-empty list of sizes of at least 257, got {self.vocab_sizes}")


@dataclass(frozen=True)
class OptimizationConfig:
    """Sizes of chapter 2's side experiments (the ``optimization:`` section of a profile)."""

    compare_steps: int = 150                  # each optimizer / learning rate in the comparisons
    floor_stories: int = 2000                 # the grammar corpus of known entropy
    floor_steps: int = 300
    scaling_widths: tuple[int, ...] = (32, 64)   # model widths of the scaling study
    scaling_steps: int = 200
    compare_n_embd: int | None = None         # width of the model of the comparisons (None: the profile's)
    compare_n_layer: int | None = None        # its depth (None: the profile's)
    compare_block_size: int | None = None     # its context in tokens (None: the profile's)
    floor_n_embd: int = 64                    # the character-level model trained on the grammar corpus
    floor_n_layer: int = 2
    floor_block_size: int = 128               # characters of context: about half a story
    floor_lr: float = 0.01                    # peak learning rate of that model
    scaling_n_layer: int = 2                  # depth of every model of the scaling study
    finetune_steps: int = 30                  # continued training of the pretrained model on a few texts

    def validate(self) -> None:
        for name in ("compare_steps", "floor_stories", "floor_steps", "scaling_steps", "floor_n_embd",
                     "floor_n_layer", "floor_block_size", "scaling_n_layer", "finetune_steps"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be a positive integer, got {getattr(self, name)}")
        for name in ("compare_n_embd", "compare_n_layer", "compare_block_size"):
            if getattr(self, name) is not None and getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be a positive integer or null, got {getattr(self, name)}")
        if not 0 < self.floor_lr < 1:
            raise ConfigError(f"floor_lr must be a number between 0 and 1, got {self.floor_lr}")
        if any(w <= 0 for w in self.scaling_widths):
            raise ConfigError(f"scaling_widths must be positive integers, got {self.scaling_widths}")
        if len(self.scaling_widths) < 2:
            raise ConfigError(f"scaling_widths needs at least two sizes, got {self.scaling_widths}")


@dataclass(frozen=True)
class TasksConfig:
    """Sizes of chapter 4's experiments (the ``tasks:`` section of a profile)."""

    n_train: int = 400                        # training examples per task (at most; QA has as many as its entities)
    n_test: int = 60                          # held-out test examples per task
    qa_modules: int = 10                      # standard-library modules in the question-answering knowledge base
    shots: int = 3                            # demonstrations per few-shot prompt (fewer when the window is full)
    batch_size: int = 16                      # prompt-answer pairs per fine-tuning step
    finetune_steps: int = 150                 # full fine-tuning and LoRA, per task
    finetune_lr: float = 1e-3                 # peak learning rate of full fine-tuning
    lora_rank: int = 4                        # r: the rank of each low-rank update
    lora_alpha: float = 8.0                   # the update is scaled by alpha / r
    lora_lr: float = 5e-3                     # LoRA trains few parameters from zero: a larger step
    instruct_steps: int = 300                 # the one model trained on all tasks at once
    classify_steps: int = 150                 # the classification head
    bootstrap_samples: int = 1000             # resamples per confidence interval

    def validate(self) -> None:
        for name in ("n_train", "n_test", "qa_modules", "batch_size", "finetune_steps", "lora_rank",
                     "instruct_steps", "classify_steps", "bootstrap_samples"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be a positive integer, got {getattr(self, name)}")
        if self.shots < 0:
            raise ConfigError(f"shots must be a non-negative integer, got {self.shots}")
        if self.qa_modules < 2:
            raise ConfigError(f"qa_modules needs at least two modules to choose from, got {self.qa_modules}")
        for name in ("finetune_lr", "lora_lr"):
            if not 0 < getattr(self, name) < 1:
                raise ConfigError(f"{name} must be a number between 0 and 1, got {getattr(self, name)}")
        if self.lora_alpha <= 0:
            raise ConfigError(f"lora_alpha must be a positive number, got {self.lora_alpha}")


@dataclass(frozen=True)
class OutputConfig:
    """Sizes of chapter 3's measurements (the ``output:`` section of a profile)."""

    max_new_tokens: int = 32                  # tokens every decoding strategy writes per prompt
    prose_prompts: int = 8                    # held-out documents whose first words are prompts
    prompt_words: int = 4                     # words in each prose prompt
    rounds: int = 2                           # continuations per prompt of each sampling strategy
    top_k: int = 40
    top_p: float = 0.9
    beam_width: int = 4
    repetition_penalty: float = 1.3
    entropy_positions: int = 256              # validation positions of the temperature study
    kv_points: int = 4                        # generation lengths of the KV-cache timing
    kv_repeats: int = 3                       # timings per point; the fastest is kept
    kv_demo_n_layer: int = 4                  # a larger untrained model timed the same way (shape sets speed)
    kv_demo_n_embd: int = 128
    kv_demo_block_size: int | None = 256      # null: no larger model
    eval_chars: int | None = None             # characters of each text in the domain comparison (null: all)

    def validate(self) -> None:
        for name in ("max_new_tokens", "prose_prompts", "prompt_words", "rounds", "top_k", "beam_width",
                     "entropy_positions", "kv_points", "kv_repeats", "kv_demo_n_layer", "kv_demo_n_embd"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be a positive integer, got {getattr(self, name)}")
        for name in ("kv_demo_block_size", "eval_chars"):
            if getattr(self, name) is not None and getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be a positive integer or null, got {getattr(self, name)}")
        if not 0 < self.top_p <= 1:
            raise ConfigError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.repetition_penalty <= 0:
            raise ConfigError(f"repetition_penalty must be a positive number, got {self.repetition_penalty}")


@dataclass(frozen=True)
class SocietyConfig:
    """Sizes of chapter 5's measurements (the ``society:`` section of a profile)."""

    ngram_sizes: tuple[int, ...] = (1, 2, 3, 4, 6, 8, 12, 16)   # n of the verbatim-overlap index
    samples: int = 64                         # texts the model writes for the overlap measurement
    sample_prompt_tokens: int = 8             # each starts from this many tokens of a validation document
    sample_tokens: int = 48                   # and writes this many (prompt + these must fit the window)
    extraction_prompts: int = 200             # prompts from each split for the extraction test
    extraction_prompt_tokens: int = 32        # tokens of document before the continuation
    extraction_tokens: int = 16               # tokens the model must reproduce
    membership_windows: int = 256             # windows of each split scored for membership inference
    api_modules: int = 30                     # standard-library modules asked about (fabricated APIs)
    top_k: int = 40                           # the sampled texts: top-k at temperature 0.8, as in chapter 2
    temperature: float = 0.8

    def validate(self) -> None:
        for name in ("samples", "sample_prompt_tokens", "sample_tokens", "extraction_prompts",
                     "extraction_prompt_tokens", "extraction_tokens", "membership_windows", "api_modules", "top_k"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be a positive integer, got {getattr(self, name)}")
        if not self.ngram_sizes or any(n <= 0 for n in self.ngram_sizes):
            raise ConfigError(f"ngram_sizes must be a non-empty list of positive integers, got {self.ngram_sizes}")
        if self.temperature <= 0:
            raise ConfigError(f"temperature must be a positive number, got {self.temperature}")


@dataclass(frozen=True)
class Profile:
    """Everything one profile fixes: data, tokenizer, model shape, training budget, machine."""

    name: str
    seed: int
    device: str
    threads: int | None
    corpus: CorpusConfig
    tokenizer: TokenizerConfig
    model: dict[str, Any]            # GPTConfig fields except vocab_size (the tokenizer decides it)
    train: TrainConfig
    representation: RepresentationConfig = RepresentationConfig()
    optimization: OptimizationConfig = OptimizationConfig()
    tasks: TasksConfig = TasksConfig()
    output: OutputConfig = OutputConfig()
    society: SocietyConfig = SocietyConfig()
    paths: dict[str, Path] = field(default_factory=dict)

    def model_config(self, vocab_size: int) -> GPTConfig:
        config = GPTConfig(vocab_size=vocab_size, **self.model)
        config.validate()
        return config

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "seed": self.seed, "device": self.device, "threads": self.threads,
            "corpus": dataclasses.asdict(self.corpus), "tokenizer": dataclasses.asdict(self.tokenizer),
            "model": dict(self.model), "train": dataclasses.asdict(self.train),
            "representation": dataclasses.asdict(self.representation),
            "optimization": dataclasses.asdict(self.optimization),
            "tasks": dataclasses.asdict(self.tasks),
            "output": dataclasses.asdict(self.output),
            "society": dataclasses.asdict(self.society),
        }

    @property
    def artifacts_dir(self) -> Path:
        return self.paths["artifacts"] / self.name


def profile_names(path: str | os.PathLike = CONFIG_PATH) -> list[str]:
    return list(_read(Path(path)).get("profiles", {}))


def default_profile_name() -> str:
    """The profile a notebook uses when none is given: ``$ROOTS_PROFILE``, else ``cpu``."""
    return os.environ.get("ROOTS_PROFILE") or DEFAULT_PROFILE


def load_profile(name: str | None = None, path: str | os.PathLike = CONFIG_PATH,
                 overrides: dict[str, Any] | None = None) -> Profile:
    """Read profile ``name`` (default: see default_profile_name) from ``path`` and validate it.

    ``overrides`` maps dotted keys to values, e.g. ``{"train.steps": 50, "device": "cpu"}``.
    """
    raw = _read(Path(path))
    name = name or default_profile_name()
    profiles = raw.get("profiles")
    if not isinstance(profiles, dict) or not profiles:
        raise ConfigError(f"{path}: the key 'profiles' must map profile names to settings")
    if name not in profiles:
        raise ConfigError(f"unknown profile {name!r}; allowed profiles: {', '.join(profiles)}")
    settings = _deep_copy(profiles[name])
    if not isinstance(settings, dict):
        raise ConfigError(f"profiles.{name} must be a mapping of settings, got {type(settings).__name__}")
    for dotted, value in (overrides or {}).items():
        _set_dotted(settings, dotted, value, profile=name)

    where = f"profiles.{name}"
    _check_keys(settings, {"seed", "device", "threads", "corpus", "tokenizer", "model", "train",
                           "representation", "optimization", "tasks", "output", "society"}, where)
    for section in ("corpus", "tokenizer", "model", "train", "representation", "optimization", "tasks", "output",
                    "society"):
        if not isinstance(settings.get(section, {}), dict):
            raise ConfigError(f"{where}.{section} must be a mapping of settings, "
                              f"got {type(settings[section]).__name__} {settings[section]!r}")
    seed = _check_type(settings.get("seed", 1337), int, f"{where}.seed")
    if seed < 0:
        raise ConfigError(f"{where}.seed must be a non-negative integer, got {seed}")
    device = _check_type(settings.get("device", "auto"), str, f"{where}.device")
    if device.split(":")[0] not in DEVICE_CHOICES:
        raise ConfigError(f"{where}.device must be one of {', '.join(DEVICE_CHOICES)}, got {device!r}")
    threads = _check_type(settings.get("threads"), int | None, f"{where}.threads")
    if threads is not None and threads < 1:
        raise ConfigError(f"{where}.threads must be a positive integer or null, got {threads}")

    corpus = _build(CorpusConfig, settings.get("corpus", {}), f"{where}.corpus")
    tokenizer = _build(TokenizerConfig, settings.get("tokenizer", {}), f"{where}.tokenizer")
    model = dict(settings.get("model", {}))
    model_fields = {f.name for f in dataclasses.fields(GPTConfig)} - {"vocab_size"}
    _check_keys(model, model_fields, f"{where}.model")
    _build(GPTConfig, {"vocab_size": max(tokenizer.vocab_size, 2), **model}, f"{where}.model")
    train = _build(TrainConfig, {"seed": seed, **settings.get("train", {})}, f"{where}.train")

    representation = _build(RepresentationConfig, settings.get("representation", {}), f"{where}.representation")
    optimization = _build(OptimizationConfig, settings.get("optimization", {}), f"{where}.optimization")
    tasks = _build(TasksConfig, settings.get("tasks", {}), f"{where}.tasks")
    output = _build(OutputConfig, settings.get("output", {}), f"{where}.output")
    society = _build(SocietyConfig, settings.get("society", {}), f"{where}.society")

    root = Path(path).resolve().parent
    raw_paths = raw.get("paths", {})
    paths = {key: root / str(raw_paths.get(key, key)) for key in ("artifacts", "notebooks", "book")}
    if os.environ.get("ROOTS_ARTIFACTS_DIR"):
        paths["artifacts"] = Path(os.environ["ROOTS_ARTIFACTS_DIR"])
    return Profile(name=name, seed=seed, device=device, threads=threads, corpus=corpus,
                   tokenizer=tokenizer, model=model, train=train, representation=representation,
                   optimization=optimization, tasks=tasks, output=output, society=society, paths=paths)


# --- helpers ------------------------------------------------------------------------------------

def _read(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"course configuration not found: {path}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return data


def _deep_copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _deep_copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_deep_copy(v) for v in value]
    return value


def _set_dotted(settings: dict[str, Any], dotted: str, value: Any, profile: str) -> None:
    *parents, leaf = dotted.split(".")
    node = settings
    for part in parents:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"cannot override {dotted!r} in profile {profile!r}: {part!r} is not a section")
    node[leaf] = value


def _check_keys(mapping: Any, allowed: set[str], where: str) -> None:
    if not isinstance(mapping, dict):
        raise ConfigError(f"{where} must be a mapping, got {type(mapping).__name__}")
    unknown = sorted(set(mapping) - allowed)
    if unknown:
        raise ConfigError(f"unknown key {where}.{unknown[0]}; allowed keys: {', '.join(sorted(allowed))}")


def _check_type(value: Any, expected: Any, where: str) -> Any:
    """Check ``value`` against a simple annotation (int, float, str, bool, tuple, X | None)."""
    options = typing.get_args(expected) if isinstance(expected, types.UnionType) or \
        typing.get_origin(expected) is typing.Union else (expected,)
    for option in options:
        if option is type(None) and value is None:
            return value
        origin = typing.get_origin(option) or option
        if origin is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if origin is int and isinstance(value, int) and not isinstance(value, bool):
            return value
        if origin is tuple and isinstance(value, (list, tuple)):
            item_types = [t for t in typing.get_args(option) if t is not Ellipsis] or [Any]
            try:
                return tuple(_check_type(v, item_types[min(i, len(item_types) - 1)], f"{where}[{i}]")
                             for i, v in enumerate(value))
            except ConfigError:
                continue
        if option is Any:
            return value
        if origin in (str, bool) and isinstance(value, origin):
            return value
    names = " or ".join("null" if o is type(None) else getattr(o, "__name__", str(o)) for o in options)
    raise ConfigError(f"{where} must be {names}, got {value!r}")


def _build(cls: type, mapping: Any, where: str) -> Any:
    """Build dataclass ``cls`` from ``mapping``: unknown keys, wrong types and bad values all fail."""
    hints = typing.get_type_hints(cls)
    fields = {f.name for f in dataclasses.fields(cls)}
    _check_keys(mapping, fields, where)
    kwargs = {key: _check_type(value, hints[key], f"{where}.{key}") for key, value in mapping.items()}
    required = [f.name for f in dataclasses.fields(cls)
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    missing = [name for name in required if name not in kwargs]
    if missing:
        raise ConfigError(f"missing key {where}.{missing[0]}; required keys: {', '.join(required)}")
    obj = cls(**kwargs)
    try:
        obj.validate()
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from exc
    return obj
