"""Fine-tuning on prompt → answer pairs, with the loss on the answer tokens only.

Pretraining scores every next token of a text. A task is different: the prompt is given, and only the
answer has to be produced. So each pair becomes one training row in which the prompt's positions are
*ignored*:

    tokens   [ prompt tokens ............ | answer tokens ... | stop ]
    inputs x   p0  p1  ...  p(n-2) p(n-1)  a0  a1  ...  a(m-1)
    targets y  -100 -100 ... -100   a0     a1  a2  ...  stop

GPT.forward skips positions whose target is -100 (``ignore_index`` of the cross-entropy), so the loss is
the mean over answer tokens (and the stop token, which teaches the model where to end). Without the
mask the model would spend most of its effort learning to reproduce prompts it is always given.

The prompt and the answer are tokenized **separately** and concatenated, because that is exactly what
happens at test time: the prompt is encoded alone and the model generates the answer's tokens after it.
Encoding the joined text could merge a token across the boundary that the model never sees in use.

The same loop serves full fine-tuning (every parameter trains) and LoRA (``roots_course.core.lora`` freezes
the model and adds small trainable matrices): the optimizer only receives parameters with
``requires_grad``. Weight decay is 0: it would pull the weights toward zero, not toward the pretrained
values that fine-tuning starts from.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from roots_course.core.checkpoint import save_checkpoint
from roots_course.core.model import GPT
from roots_course.core.device import autocast_context
from roots_course.errors import ConfigError, DataError
from roots_course.core.tokenizer import Tokenizer
from roots_course.core.train import TrainConfig, lr_at, make_optimizer
from roots_course.core.modes import evaluating

IGNORE = -100
STOP = "\n"  # every answer ends with a newline; generation stops there


@dataclass
class Pairs:
    """Prompt-answer pairs as padded tensors. Row i holds lengths[i] real positions, then padding."""

    x: Tensor  # (N, T) inputs, padded with 0
    y: Tensor  # (N, T) targets: -100 on prompt positions and padding, answer tokens elsewhere
    lengths: Tensor  # (N,) real positions per row

    def __len__(self) -> int:
        return self.x.size(0)

    def rows(self, index: Tensor) -> tuple[Tensor, Tensor]:
        """Rows ``index`` cut to the longest of them: (B, T_b) inputs and targets."""
        T = int(self.lengths[index].max())
        return self.x[index, :T], self.y[index, :T]

    @property
    def answer_tokens(self) -> int:
        return int((self.y != IGNORE).sum())


def encode_pairs(tokenizer: Tokenizer, prompts: Sequence[str], answers: Sequence[str], block_size: int,
                 stop: str = STOP) -> Pairs:
    """Tokenize prompt and answer + stop separately, join them, and build (x, y) with the prompt masked.

    A row longer than block_size + 1 tokens loses tokens from the *start* of its prompt (the end of the
    prompt, next to the answer, matters most); an answer that alone does not fit raises DataError.
    """
    if len(prompts) != len(answers) or not prompts:
        raise DataError(f"need as many prompts as answers, at least one; got {len(prompts)} and {len(answers)}")
    rows = []
    for prompt, answer in zip(prompts, answers):
        p, a = tokenizer.encode(prompt), tokenizer.encode(answer + stop)
        if len(a) > block_size:
            raise DataError(f"the answer {answer!r} has {len(a)} tokens; the model's window is {block_size}")
        p = p[max(0, len(p) + len(a) - (block_size + 1)):]  # keep the end of the prompt
        if not p:
            raise DataError(f"prompt {prompt!r} is empty after tokenization; the model needs context")
        rows.append((p, a))
    T = max(len(p) + len(a) - 1 for p, a in rows)
    x = torch.zeros(len(rows), T, dtype=torch.long)
    y = torch.full((len(rows), T), IGNORE, dtype=torch.long)
    lengths = torch.zeros(len(rows), dtype=torch.long)
    for i, (p, a) in enumerate(rows):
        seq = p + a
        n = len(seq) - 1
        x[i, :n] = torch.tensor(seq[:-1])
        y[i, len(p) - 1 : n] = torch.tensor(a)  # position len(p)-1 (the prompt's last token) predicts a0
        lengths[i] = n
    return Pairs(x, y, lengths)


@dataclass
class FinetuneResult:
    """What a fine-tuning run did: losses per logged step, time, and what trained."""

    steps: int
    trainable_parameters: int
    total_parameters: int
    wall_s: float
    history: list[dict[str, float]] = field(default_factory=list)  # {"step", "lr", "loss"} rows
    optimizer: torch.optim.Optimizer | None = None
    config: TrainConfig | None = None

    @property
    def final_loss(self) -> float:
        return self.history[-1]["loss"]

    def to_dict(self) -> dict[str, Any]:
        return {"steps": self.steps, "trainable_parameters": self.trainable_parameters,
                "total_parameters": self.total_parameters, "wall_s": self.wall_s, "history": self.history}


def random_init_like(model: GPT, seed: int) -> GPT:
    """A GPT of the same shape (the same GPTConfig) with fresh random weights, on the same device: the
    control that shows what pretraining buys when both are fine-tuned alike. The global random state is
    left as it was."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        fresh = GPT(model.config)
    return fresh.to(model.tok_emb.weight.device)


def finetune_config(steps: int, batch_size: int, lr: float, seed: int = 0) -> TrainConfig:
    """The schedule of a fine-tuning run: 10% warmup, cosine decay to lr / 10, no weight decay."""
    return TrainConfig(steps=steps, batch_size=batch_size, lr=lr, min_lr=lr / 10, warmup_steps=max(1, steps // 10),
                       weight_decay=0.0, grad_clip=1.0, seed=seed, log_every=max(1, steps // 10)).validate()


def finetune(model: nn.Module, pairs: Pairs, cfg: TrainConfig, device: torch.device | str | None = None,
             say=None) -> FinetuneResult:
    """Train ``model`` in place on random batches of ``pairs`` for ``cfg.steps`` steps.

    Batches are drawn with replacement from a generator seeded with ``cfg.seed``; each batch is cut to
    its longest row, so short prompts cost little. Only parameters with requires_grad are updated.
    A history row (mean loss since the previous row) is kept every ``cfg.log_every`` steps.
    """
    cfg.validate()
    device = torch.device(device) if device is not None else next(model.parameters()).device
    model.to(device)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    if trainable == 0:
        raise ConfigError("the model has no trainable parameters (every requires_grad is False)")
    total = sum(p.numel() for p in model.parameters())
    optimizer = make_optimizer(model, cfg, device)
    params = [p for group in optimizer.param_groups for p in group["params"]]
    sampler = torch.Generator().manual_seed(cfg.seed)
    history: list[dict[str, float]] = []
    loss_sum, in_row = torch.zeros((), device=device), 0
    model.train()
    started = time.perf_counter()
    for step in range(cfg.steps):
        lr = lr_at(step, cfg)
        for group in optimizer.param_groups:
            group["lr"] = lr
        index = torch.randint(len(pairs), (cfg.batch_size,), generator=sampler)  # (B,)
        x, y = (t.to(device) for t in pairs.rows(index))  # (B, T_b) each
        with autocast_context(device):
            loss = model(x, y).loss
        loss.backward()
        if cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        loss_sum += loss.detach()
        in_row += 1
        if (step + 1) % cfg.log_every == 0 or step + 1 == cfg.steps:
            history.append({"step": step + 1, "lr": lr, "loss": (loss_sum / in_row).item()})
            if say is not None:
                say(f"step {step + 1}/{cfg.steps}: answer loss {history[-1]['loss']:.3f}")
            loss_sum.zero_()
            in_row = 0
    model.eval()
    return FinetuneResult(cfg.steps, trainable, total, time.perf_counter() - started, history, optimizer, cfg)


def answer_losses(model: nn.Module, pairs: Pairs, batch_size: int = 64) -> Tensor:
    """Per-row (sum of answer-token losses in nats, number of answer tokens): a (N, 2) tensor.

    The mean over a test set is column 0 summed ÷ column 1 summed: nats per answer token, the quantity
    fine-tuning minimises, measured on answers it never trained on.
    """
    device = next(model.parameters()).device
    out = torch.zeros(len(pairs), 2, dtype=torch.float64)
    with evaluating(model):
        for start in range(0, len(pairs), batch_size):
            index = torch.arange(start, min(start + batch_size, len(pairs)))
            x, y = (t.to(device) for t in pairs.rows(index))  # (B, T_b)
            logits = model(x).logits  # (B, T_b, V)
            nll = F.cross_entropy(logits.float().transpose(1, 2), y, ignore_index=IGNORE, reduction="none")  # (B, T_b)
            out[index, 0] = nll.sum(dim=1).double().cpu()
            out[index, 1] = (y != IGNORE).sum(dim=1).double().cpu()
    return out


def mean_answer_loss(model: nn.Module, pairs: Pairs, batch_size: int = 64) -> float:
    """Nats per answer token over all rows of ``pairs``."""
    losses = answer_losses(model, pairs, batch_size)
    return float(losses[:, 0].sum() / losses[:, 1].sum())


def save_finetuned(directory: str | Path, model: nn.Module, result: FinetuneResult, **state: Any) -> Path:
    """Save a fine-tuned GPT as a course checkpoint (``roots_course.core.checkpoint``): weights, optimizer,
    configuration, and a state with the run's history plus any ``state`` given (task, method, scores)."""
    if result.optimizer is None:
        raise ConfigError("this FinetuneResult carries no optimizer to save")
    return save_checkpoint(directory, model, result.optimizer,
                           {"step": result.steps, "history": result.history, "wall_s": result.wall_s,
                            "trainable_parameters": result.trainable_parameters, **state},
                           train_config=result.config)
