"""The other way to use a pretrained model: read its hidden states and put a classifier on top.

Generation asks the model to *write* the answer, token by token, from an open vocabulary. For a task
with a fixed set of answers (K labels) we can instead take the vector the last layer computes for the
input, (C,), and map it to K scores with one linear layer, the **head**, as GPT-1 did for its
classification tasks (Radford et al. 2018, §3.3):

    tokens (B, T) ─► GPT without lm_head ─► hidden states (B, T, C) ─► pool ─► (B, C) ─► head ─► (B, K)

Pooling picks one vector per input:
- **last**: the vector of the last real token. In a causal model it is the only position that has
  seen the whole input, so it is the natural summary.
- **mean**: the average over the real tokens. Early positions have seen only the beginning, but the
  average is less sensitive to what the last token happens to be.

The head can train alone on frozen features (a *linear probe*: what do the pretrained vectors already
contain?), or together with the whole model (fine-tuning with a head). A head can only ever answer one
of its K labels: it cannot misspell a module name, nor name one outside the list.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from roots_course.store.artifacts import atomic_write_json, load_tensors, read_json, save_tensors
from roots_course.errors import CheckpointError, ConfigError, DataError
from roots_course.core.model import GPT, GPTConfig
from roots_course.core.tokenizer import Tokenizer
from roots_course.core.train import TrainConfig, lr_at, make_optimizer
from roots_course.core.modes import evaluating

POOLINGS = ("last", "mean")


def encode_texts(tokenizer: Tokenizer, texts: Sequence[str], block_size: int) -> tuple[Tensor, Tensor]:
    """Texts as right-padded ids (N, T) and their lengths (N,); a text longer than block_size keeps
    its last tokens."""
    if not texts:
        raise DataError("no texts to encode")
    ids = [tokenizer.encode(t)[-block_size:] for t in texts]
    if any(len(i) == 0 for i in ids):
        raise DataError("an empty text has no hidden state to classify")
    lengths = torch.tensor([len(i) for i in ids])
    x = torch.zeros(len(ids), int(lengths.max()), dtype=torch.long)
    for row, i in enumerate(ids):
        x[row, : len(i)] = torch.tensor(i)
    return x, lengths


def pool(hidden: Tensor, lengths: Tensor, how: str = "last") -> Tensor:
    """hidden (B, T, C), lengths (B,) -> (B, C): the last real position's vector, or the mean over
    the real positions. Padding (positions >= length) never enters: the model is causal, so padding
    to the right cannot change the vectors of the positions before it either."""
    if how not in POOLINGS:
        raise ConfigError(f"pooling must be one of {POOLINGS}, got {how!r}")
    lengths = lengths.to(hidden.device)
    if how == "last":
        return hidden[torch.arange(hidden.size(0), device=hidden.device), lengths - 1]  # (B, C)
    mask = (torch.arange(hidden.size(1), device=hidden.device)[None] < lengths[:, None]).to(hidden.dtype)  # (B, T)
    return (hidden * mask[..., None]).sum(dim=1) / lengths[:, None].to(hidden.dtype)  # (B, C)


class GPTClassifier(nn.Module):
    """A pretrained GPT's hidden states, pooled, then a linear head to K class scores."""

    def __init__(self, backbone: GPT, n_classes: int, pooling: str = "last") -> None:
        super().__init__()
        if n_classes < 2:
            raise ConfigError(f"a classifier needs at least two classes, got {n_classes}")
        if pooling not in POOLINGS:
            raise ConfigError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
        self.backbone, self.pooling = backbone, pooling
        p = backbone.tok_emb.weight
        self.head = nn.Linear(backbone.config.n_embd, n_classes, device=p.device, dtype=p.dtype)
        nn.init.normal_(self.head.weight, std=0.02)
        nn.init.zeros_(self.head.bias)

    def features(self, idx: Tensor, lengths: Tensor) -> Tensor:
        """idx (B, T), lengths (B,) -> pooled hidden states (B, C)."""
        return pool(self.backbone.hidden_states(idx), lengths, self.pooling)

    def forward(self, idx: Tensor, lengths: Tensor) -> Tensor:
        """idx (B, T), lengths (B,) -> class scores (B, K)."""
        return self.head(self.features(idx, lengths))

    def freeze_backbone(self) -> None:
        for p in self.backbone.parameters():
            p.requires_grad_(False)


def extract_features(model: GPT, x: Tensor, lengths: Tensor, pooling: str = "last", batch_size: int = 128) -> Tensor:
    """Pooled hidden states of every row, (N, C), computed once (for a linear probe)."""
    device = model.tok_emb.weight.device
    out = []
    with evaluating(model):
        for start in range(0, x.size(0), batch_size):
            xb, lb = x[start : start + batch_size], lengths[start : start + batch_size]
            xb = xb[:, : int(lb.max())].to(device)
            out.append(pool(model.hidden_states(xb), lb, pooling).float().cpu())
    return torch.cat(out)


@dataclass
class ClassifierRun:
    """What training a head did: steps, trainable numbers, time and the loss history."""

    steps: int
    trainable_parameters: int
    wall_s: float
    history: list[float] = field(default_factory=list)


def train_probe(features: Tensor, labels: Tensor, n_classes: int, steps: int, lr: float = 0.05,
                batch_size: int = 64, seed: int = 0) -> tuple[nn.Linear, ClassifierRun]:
    """A linear head trained alone on fixed features (N, C): softmax regression with AdamW."""
    torch.manual_seed(seed)
    head = nn.Linear(features.size(1), n_classes)
    cfg = TrainConfig(steps=steps, batch_size=batch_size, lr=lr, min_lr=lr / 10, warmup_steps=0,
                      weight_decay=0.0, seed=seed).validate()
    return head, _fit(head, lambda index: head(features[index]), labels, cfg)


def train_classifier(model: GPTClassifier, x: Tensor, lengths: Tensor, labels: Tensor, steps: int, lr: float,
                     batch_size: int = 16, seed: int = 0) -> ClassifierRun:
    """Train the head and every backbone parameter that requires grad, on (x, lengths) -> labels."""
    device = model.head.weight.device

    def scores(index: Tensor) -> Tensor:
        lb = lengths[index]
        return model(x[index, : int(lb.max())].to(device), lb)

    cfg = TrainConfig(steps=steps, batch_size=batch_size, lr=lr, min_lr=lr / 10, warmup_steps=max(1, steps // 10),
                      weight_decay=0.0, seed=seed).validate()
    return _fit(model, scores, labels.to(device), cfg)


def _fit(module: nn.Module, scores, labels: Tensor, cfg: TrainConfig) -> ClassifierRun:
    optimizer = make_optimizer(module, cfg, next(module.parameters()).device)
    sampler = torch.Generator().manual_seed(cfg.seed)
    trainable = sum(p.numel() for p in module.parameters() if p.requires_grad)
    history = []
    module.train()
    started = time.perf_counter()
    for step in range(cfg.steps):
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, cfg)
        index = torch.randint(labels.size(0), (cfg.batch_size,), generator=sampler)  # (B,)
        loss = F.cross_entropy(scores(index), labels[index.to(labels.device)])
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        history.append(loss.item())
    module.eval()
    return ClassifierRun(cfg.steps, trainable, time.perf_counter() - started, history)


def predict(model: GPTClassifier, x: Tensor, lengths: Tensor, batch_size: int = 128) -> Tensor:
    """The predicted class of every row, (N,)."""
    device = model.head.weight.device
    out = []
    with evaluating(model):
        for start in range(0, x.size(0), batch_size):
            lb = lengths[start : start + batch_size]
            out.append(model(x[start : start + batch_size, : int(lb.max())].to(device), lb).argmax(-1).cpu())
    return torch.cat(out)


def save_classifier(directory: str | Path, model: GPTClassifier, labels: Sequence[str]) -> Path:
    """Write ``model.safetensors`` (backbone as in a GPT checkpoint, plus ``head.weight`` and ``head.bias``)
    and ``config.json`` (the GPT configuration, the pooling and the label names, in class order)."""
    directory = Path(directory)
    if len(labels) != model.head.out_features:
        raise ConfigError(f"{len(labels)} label names for a head with {model.head.out_features} classes")
    tensors = {k: v.detach().cpu() for k, v in model.backbone.state_dict_for_saving().items()}
    tensors.update({f"head.{k}": v.detach().cpu() for k, v in model.head.state_dict().items()})
    save_tensors(directory / "model.safetensors", tensors, metadata={"format": "roots_course.classifier"})
    atomic_write_json(directory / "config.json", {"model": model.backbone.config.to_dict(),
                                                  "pooling": model.pooling, "labels": list(labels)})
    return directory


def load_classifier(directory: str | Path, device: torch.device | str = "cpu") -> tuple[GPTClassifier, list[str]]:
    """Read what save_classifier wrote: the classifier and its label names."""
    directory = Path(directory)
    config = read_json(directory / "config.json")
    if not isinstance(config, dict) or not {"model", "pooling", "labels"} <= set(config):
        raise CheckpointError(f"{directory / 'config.json'}: expected 'model', 'pooling' and 'labels'")
    tensors = load_tensors(directory / "model.safetensors")
    model = GPTClassifier(GPT(GPTConfig.from_dict(config["model"])), len(config["labels"]), config["pooling"])
    head = {k.removeprefix("head."): v for k, v in tensors.items() if k.startswith("head.")}
    model.backbone.load_state_for_saving({k: v for k, v in tensors.items() if not k.startswith("head.")})
    try:
        model.head.load_state_dict(head)
    except RuntimeError as exc:
        raise CheckpointError(f"{directory / 'model.safetensors'}: the head does not fit ({exc})") from exc
    return model.to(device).eval(), list(config["labels"])
