"""The course's profiles (smoke | cpu | gpu), read from the top-level ``_config.yml`` into typed objects.

Each part of the course owns the dataclass of its settings (``GPTConfig`` in ``core.model``,
``TrainConfig`` in ``core.train``, the chapters' sections below). One declarative pydantic model,
``ProfileSettings``, checks a whole profile: every key, type and range, at once, with a message that
names the full key and what is allowed (``profiles.cpu.train.steps must be int, got 'many'``), rather
than twenty minutes into a training run.

- The chapters' sections are pydantic dataclasses whose annotations carry the rules (``Count``, ``OneOf``).
- The ``model`` and ``train`` sections mirror ``GPTConfig`` and ``TrainConfig``: their pydantic models
  are derived from those dataclasses' fields (``_mirror``), never written twice, and their values are
  then checked by the dataclasses' own ``validate()`` (``core`` does not depend on pydantic).
- Types are strict, as YAML gives them (``"5"`` is not an integer, nor is ``true``); an integer is
  accepted where a number is expected. Each rule carries its wording, so errors read like sentences.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import operator
import os
import types
import typing
from collections.abc import Callable, Iterable
from dataclasses import field
from pathlib import Path
from typing import Annotated, Any

import pydantic
import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, Strict, StrictFloat, StrictInt, StrictStr

from roots_course._offline import PROJECT_ROOT
from roots_course.core.data import CORPUS_KINDS
from roots_course.core.device import DEVICE_CHOICES
from roots_course.core.model import GPTConfig
from roots_course.core.tokenizer_kinds import TOKENIZER_KINDS
from roots_course.core.train import TrainConfig
from roots_course.errors import ConfigError

CONFIG_PATH = PROJECT_ROOT / "_config.yml"
DEFAULT_PROFILE = "cpu"
_CHECKED = ConfigDict(extra="forbid")       # an unknown key is an error, never silently ignored


# --- the rules, as annotations ---------------------------------------------------------------------

def _rule(test: Callable[[Any], bool], allowed: str) -> AfterValidator:
    """A check on one value; a failure reads ``<key> must be <allowed>, got <value>``."""
    def check(value: Any) -> Any:
        if not test(value):
            raise ValueError(f"must be {allowed}")
        return value
    return AfterValidator(check)


def OneOf(choices: Iterable[str], name: Callable[[str], str] = lambda v: v) -> Any:
    """A string among ``choices`` (``name`` picks the part compared, e.g. ``cuda`` of ``cuda:1``)."""
    choices = tuple(choices)
    return Annotated[StrictStr, _rule(lambda v: name(v) in choices, f"one of {', '.join(choices)}")]


Count = Annotated[StrictInt, _rule(lambda v: v > 0, "a positive integer")]
CountOrNull = Annotated[StrictInt | None, _rule(lambda v: v is None or v > 0, "a positive integer or null")]
NonNegative = Annotated[StrictInt, _rule(lambda v: v >= 0, "a non-negative integer")]
Positive = Annotated[StrictFloat, _rule(lambda v: v > 0, "a positive number")]
Fraction = Annotated[StrictFloat, _rule(lambda v: 0 < v < 1, "a number between 0 and 1")]


def Sizes(minimum: int, at_least: int = 1) -> Any:
    """A list (a tuple once read) of at least ``at_least`` integers of at least ``minimum``."""
    allowed = f"a list of at least {at_least} integers" if at_least > 1 else "a non-empty list of integers"
    return Annotated[tuple[StrictInt, ...], _rule(lambda v: len(v) >= at_least and all(x >= minimum for x in v),
                                                  f"{allowed}, each at least {minimum}")]


CorpusKind = OneOf(CORPUS_KINDS)
TokenizerKind = OneOf(TOKENIZER_KINDS)
Device = OneOf(DEVICE_CHOICES, name=lambda v: v.split(":")[0])        # "cuda:1" is a cuda device
VocabSizes = Sizes(minimum=257)                                       # a byte-level BPE has 256 bytes and more
Widths = Sizes(minimum=1, at_least=2)                                 # a scaling law needs two points at least
NgramSizes = Sizes(minimum=1)
ModuleCount = Annotated[StrictInt, _rule(lambda v: v >= 2, "at least 2 (modules to choose from)")]
TopP = Annotated[StrictFloat, _rule(lambda v: 0 < v <= 1, "in (0, 1]")]


# --- the sections each chapter owns ----------------------------------------------------------------

@pydantic.dataclasses.dataclass(frozen=True, config=_CHECKED)
class CorpusConfig:
    kind: CorpusKind = "python_docs"
    max_chars: CountOrNull = None
    path: StrictStr | None = None          # kind "text": a UTF-8 file or a folder
    name: StrictStr | None = None          # kind "hub": a dataset name, for online users only
    n_stories: CountOrNull = None          # kind "grammar"

    @pydantic.model_validator(mode="after")
    def _source_named(self) -> CorpusConfig:
        if self.kind == "text" and not self.path:
            raise ValueError("path is required when corpus.kind is 'text'")
        if self.kind == "hub" and not self.name:
            raise ValueError("name is required when corpus.kind is 'hub'")
        return self


@pydantic.dataclasses.dataclass(frozen=True, config=_CHECKED)
class TokenizerConfig:
    kind: TokenizerKind = "fast_bpe"
    vocab_size: Count = 2048

    @pydantic.model_validator(mode="after")
    def _room_for_bytes(self) -> TokenizerConfig:
        if self.kind != "char" and not 257 <= self.vocab_size <= 1_000_000:
            raise ValueError(f"vocab_size must be between 257 and 1000000 for a byte-level BPE, got {self.vocab_size}")
        return self


@pydantic.dataclasses.dataclass(frozen=True, config=_CHECKED)
class RepresentationConfig:
    """Sizes of chapter 1's side experiments (the ``representation:`` section of a profile)."""

    bpe_slice_chars: Count = 200_000            # the from-scratch BPE trains on this much text
    vocab_sizes: VocabSizes = (260, 512, 1024, 2048)   # vocabulary size vs sequence length
    demo_steps: Count = 200                     # a short training run when no checkpoint exists yet


@pydantic.dataclasses.dataclass(frozen=True, config=_CHECKED)
class OptimizationConfig:
    """Sizes of chapter 2's side experiments (the ``optimization:`` section of a profile)."""

    compare_steps: Count = 150                  # each optimizer / learning rate in the comparisons
    floor_stories: Count = 2000                 # the grammar corpus of known entropy
    floor_steps: Count = 300
    scaling_widths: Widths = (32, 64)           # model widths of the scaling study
    scaling_steps: Count = 200
    compare_n_embd: CountOrNull = None          # width of the model of the comparisons (None: the profile's)
    compare_n_layer: CountOrNull = None         # its depth (None: the profile's)
    compare_block_size: CountOrNull = None      # its context in tokens (None: the profile's)
    floor_n_embd: Count = 64                    # the character-level model trained on the grammar corpus
    floor_n_layer: Count = 2
    floor_block_size: Count = 128               # characters of context: about half a story
    floor_lr: Fraction = 0.01                   # peak learning rate of that model
    scaling_n_layer: Count = 2                  # depth of every model of the scaling study
    finetune_steps: Count = 30                  # continued training of the pretrained model on a few texts


@pydantic.dataclasses.dataclass(frozen=True, config=_CHECKED)
class TasksConfig:
    """Sizes of chapter 4's experiments (the ``tasks:`` section of a profile)."""

    n_train: Count = 400                        # training examples per task (at most; QA has as many as its entities)
    n_test: Count = 60                          # held-out test examples per task
    qa_modules: ModuleCount = 10                # standard-library modules in the question-answering knowledge base
    shots: NonNegative = 3                      # demonstrations per few-shot prompt (fewer when the window is full)
    batch_size: Count = 16                      # prompt-answer pairs per fine-tuning step
    finetune_steps: Count = 150                 # full fine-tuning and LoRA, per task
    finetune_lr: Fraction = 1e-3                # peak learning rate of full fine-tuning
    lora_rank: Count = 4                        # r: the rank of each low-rank update
    lora_alpha: Positive = 8.0                  # the update is scaled by alpha / r
    lora_lr: Fraction = 5e-3                    # LoRA trains few parameters from zero: a larger step
    instruct_steps: Count = 300                 # the one model trained on all tasks at once
    classify_steps: Count = 150                 # the classification head
    bootstrap_samples: Count = 1000             # resamples per confidence interval


@pydantic.dataclasses.dataclass(frozen=True, config=_CHECKED)
class OutputConfig:
    """Sizes of chapter 3's measurements (the ``output:`` section of a profile)."""

    max_new_tokens: Count = 32                  # tokens every decoding strategy writes per prompt
    prose_prompts: Count = 8                    # held-out documents whose first words are prompts
    prompt_words: Count = 4                     # words in each prose prompt
    rounds: Count = 2                           # continuations per prompt of each sampling strategy
    top_k: Count = 40
    top_p: TopP = 0.9
    beam_width: Count = 4
    repetition_penalty: Positive = 1.3
    entropy_positions: Count = 256              # validation positions of the temperature study
    kv_points: Count = 4                        # generation lengths of the KV-cache timing
    kv_repeats: Count = 3                       # timings per point; the fastest is kept
    kv_demo_n_layer: Count = 4                  # a larger untrained model timed the same way (shape sets speed)
    kv_demo_n_embd: Count = 128
    kv_demo_block_size: CountOrNull = 256       # null: no larger model
    eval_chars: CountOrNull = None              # characters of each text in the domain comparison (null: all)


@pydantic.dataclasses.dataclass(frozen=True, config=_CHECKED)
class SocietyConfig:
    """Sizes of chapter 5's measurements (the ``society:`` section of a profile)."""

    ngram_sizes: NgramSizes = (1, 2, 3, 4, 6, 8, 12, 16)   # n of the verbatim-overlap index
    samples: Count = 64                         # texts the model writes for the overlap measurement
    sample_prompt_tokens: Count = 8             # each starts from this many tokens of a validation document
    sample_tokens: Count = 48                   # and writes this many (prompt + these must fit the window)
    extraction_prompts: Count = 200             # prompts from each split for the extraction test
    extraction_prompt_tokens: Count = 32        # tokens of document before the continuation
    extraction_tokens: Count = 16               # tokens the model must reproduce
    membership_windows: Count = 256             # windows of each split scored for membership inference
    api_modules: Count = 30                     # standard-library modules asked about (fabricated APIs)
    top_k: Count = 40                           # the sampled texts: top-k at temperature 0.8, as in chapter 2
    temperature: Positive = 0.8


# --- the sections that mirror a core dataclass --------------------------------------------------------

def _strict(annotation: Any) -> Any:
    """``annotation`` with int, float, str and bool made strict, inside tuples and unions too."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is tuple:
        return tuple[tuple(a if a is Ellipsis else _strict(a) for a in args)]
    if origin in (typing.Union, types.UnionType):
        return functools.reduce(operator.or_, (_strict(a) for a in args))
    return Annotated[annotation, Strict()] if annotation in (int, float, str, bool) else annotation


def _mirror(cls: type, exclude: tuple[str, ...] = ()) -> type[BaseModel]:
    """A pydantic model with the fields of dataclass ``cls`` (types strict, same defaults, same required)."""
    hints = typing.get_type_hints(cls)
    fields: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.name in exclude:
            continue
        default = ... if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING \
            else Field(default=f.default) if f.default is not dataclasses.MISSING \
            else Field(default_factory=f.default_factory)
        fields[f.name] = (_strict(hints[f.name]), default)
    return pydantic.create_model(f"{cls.__name__}Settings", __config__=_CHECKED, **fields)


ModelSettings = _mirror(GPTConfig, exclude=("vocab_size",))   # the tokenizer decides vocab_size
TrainSettings = _mirror(TrainConfig)


class ProfileSettings(BaseModel):
    """One profile of ``_config.yml``, checked whole."""

    model_config = _CHECKED

    seed: NonNegative = 1337
    device: Device = "auto"
    threads: CountOrNull = None
    corpus: CorpusConfig = CorpusConfig()
    tokenizer: TokenizerConfig = TokenizerConfig()
    model: ModelSettings = Field(default_factory=dict, validate_default=True)   # block_size etc. are required
    train: TrainSettings = Field(default_factory=dict, validate_default=True)
    representation: RepresentationConfig = RepresentationConfig()
    optimization: OptimizationConfig = OptimizationConfig()
    tasks: TasksConfig = TasksConfig()
    output: OutputConfig = OutputConfig()
    society: SocietyConfig = SocietyConfig()


@dataclasses.dataclass(frozen=True)
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
    representation: RepresentationConfig = field(default_factory=RepresentationConfig)
    optimization: OptimizationConfig = field(default_factory=OptimizationConfig)
    tasks: TasksConfig = field(default_factory=TasksConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    society: SocietyConfig = field(default_factory=SocietyConfig)
    paths: dict[str, Path] = field(default_factory=dict)

    def model_config(self, vocab_size: int) -> GPTConfig:
        return GPTConfig(vocab_size=vocab_size, **self.model).validate()

    def to_dict(self) -> dict[str, Any]:
        plain = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "paths"}
        return {key: dataclasses.asdict(value) if dataclasses.is_dataclass(value) else
                dict(value) if isinstance(value, dict) else value for key, value in plain.items()}

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
    settings = copy.deepcopy(profiles[name])
    if not isinstance(settings, dict):
        raise ConfigError(f"profiles.{name} must be a mapping of settings, got {type(settings).__name__}")
    for dotted, value in (overrides or {}).items():
        _set_dotted(settings, dotted, value, profile=name)
    if isinstance(settings.get("train", {}), dict):          # training is seeded by the profile's seed
        settings["train"] = {"seed": settings.get("seed", 1337), **settings.get("train", {})}

    where = f"profiles.{name}"
    try:
        checked = ProfileSettings.model_validate(settings)
    except pydantic.ValidationError as exc:
        raise _explain(exc.errors()[0], where) from None
    given = checked.model.model_dump()
    model = {key: given[key] for key in settings.get("model", {})}      # the keys given, in the file's order
    try:
        GPTConfig(vocab_size=max(checked.tokenizer.vocab_size, 2), **model).validate()
    except ConfigError as exc:
        raise ConfigError(f"{where}.model: {exc}") from exc
    try:
        train = TrainConfig(**checked.train.model_dump()).validate()
    except ConfigError as exc:
        raise ConfigError(f"{where}.train: {exc}") from exc

    root = Path(path).resolve().parent
    raw_paths = raw.get("paths", {})
    paths = {key: root / str(raw_paths.get(key, key)) for key in ("artifacts", "notebooks", "book")}
    if os.environ.get("ROOTS_ARTIFACTS_DIR"):
        paths["artifacts"] = Path(os.environ["ROOTS_ARTIFACTS_DIR"])
    return Profile(name=name, seed=checked.seed, device=checked.device, threads=checked.threads,
                   corpus=checked.corpus, tokenizer=checked.tokenizer, model=model, train=train,
                   representation=checked.representation, optimization=checked.optimization,
                   tasks=checked.tasks, output=checked.output, society=checked.society, paths=paths)


# --- helpers ------------------------------------------------------------------------------------

_TYPE_NAMES = {"int_type": "int", "float_type": "float", "string_type": "str", "bool_type": "bool",
               "tuple_type": "a list"}
_NOT_A_SECTION = {"model_type", "dataclass_type"}


def _keys(section: tuple[str | int, ...]) -> tuple[list[str], list[str]]:
    """The allowed and the required keys of the profile (``()``) or of one of its sections (``("train",)``)."""
    cls = ProfileSettings.model_fields[section[0]].annotation if section else ProfileSettings
    fields = cls.__pydantic_fields__            # pydantic models and pydantic dataclasses alike
    return sorted(fields), [name for name, info in fields.items() if info.is_required()]


def _explain(error: Any, where: str) -> ConfigError:
    """One pydantic error as a sentence naming the full key and what it allows."""
    loc, kind, value = error["loc"], error["type"], error.get("input")
    if kind == "missing" and loc and isinstance(loc[-1], int):      # a list shorter than its fixed length
        loc, kind = loc[:-1], "too_short"
    key = where + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc)
    if kind in ("too_short", "too_long"):
        return ConfigError(f"{key} has the wrong number of items, got {value!r}")
    if kind in ("extra_forbidden", "unexpected_keyword_argument"):
        return ConfigError(f"unknown key {key}; allowed keys: {', '.join(_keys(loc[:-1])[0])}")
    if kind in ("missing", "missing_keyword_argument"):
        return ConfigError(f"missing key {key}; required keys: {', '.join(_keys(loc[:-1])[1])}")
    if kind in _NOT_A_SECTION:
        return ConfigError(f"{key} must be a mapping of settings, got {type(value).__name__} {value!r}")
    if kind in _TYPE_NAMES:
        return ConfigError(f"{key} must be {_TYPE_NAMES[kind]}, got {value!r}")
    if kind == "value_error":
        reason = str(error["ctx"]["error"])
        # a rule on one value says "must be ..."; a rule across a section's values starts with the field
        return ConfigError(f"{key} {reason}, got {value!r}" if reason.startswith("must be ") else f"{key}.{reason}")
    return ConfigError(f"{key}: {error['msg']}, got {value!r}")


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


def _set_dotted(settings: dict[str, Any], dotted: str, value: Any, profile: str) -> None:
    *parents, leaf = dotted.split(".")
    node = settings
    for part in parents:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"cannot override {dotted!r} in profile {profile!r}: {part!r} is not a section")
    node[leaf] = value
