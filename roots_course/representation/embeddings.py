"""Embedding tables: what the lookup is, which tokens sit close together, and a 2-D view of them.

- `one_hot_lookup`: an embedding lookup written as a matrix product (one-hot rows @ table), the
  same numbers `nn.Embedding` returns;
- `cosine_neighbours`: the tokens whose vectors point the most in the same direction as a token's;
- `pca_2d`: the two directions along which the vectors vary most (PCA by singular value
  decomposition, no scikit-learn), for a scatter plot;
- `similarity`: dot products or cosines between every pair of rows (e.g. of a position table);
- `model_to_inspect`: the trained model a chapter looks inside: the course's pretrained checkpoint
  when it exists and matches the profile, else a short training run that says so.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from roots_course.store.artifacts import read_json
from roots_course.core.checkpoint import has_checkpoint, load_checkpoint
from roots_course.errors import CheckpointError, DataError
from roots_course.core.model import GPT
from roots_course.core.tokenizer import Tokenizer
from roots_course.course.pretraining import prepare_data, pretrain
from roots_course.representation.token_stats import readable

Say = Callable[[str], None]
DEMO_CHECKPOINT = "representation_demo"


def one_hot_lookup(table: Tensor, ids: Tensor) -> Tensor:
    """Rows `ids` of `table` (V, C), computed as one_hot(ids) @ table: ids (...) -> (..., C).

    A one-hot row has a single 1, so the product picks one row of the table: the embedding lookup
    is a matrix multiplication that skips the zeros.
    """
    return F.one_hot(ids.long(), table.size(0)).to(table.dtype) @ table


def similarity(rows: Tensor, cosine: bool = False) -> Tensor:
    """(N, C) -> (N, N): dot products between every pair of rows, or cosines when `cosine`."""
    if cosine:
        rows = F.normalize(rows, dim=-1)
    return rows @ rows.T


@dataclass(frozen=True)
class Neighbour:
    token_id: int
    cosine: float


def cosine_neighbours(table: Tensor, token_id: int, k: int = 5,
                      allowed: Tensor | None = None) -> list[Neighbour]:
    """The k rows of `table` (V, C) with the highest cosine similarity to row `token_id`, itself left out.

    `allowed` (V,) bool restricts the candidates, e.g. to tokens that occur in the training data
    (a token never seen in training keeps its random initial vector and is noise).
    """
    if not 0 <= token_id < table.size(0):
        raise DataError(f"token id {token_id} is outside the table's {table.size(0)} rows")
    cos = F.normalize(table, dim=-1) @ F.normalize(table[token_id], dim=0)  # (V,)
    cos = cos.clone()
    cos[token_id] = float("-inf")
    if allowed is not None:
        cos[~allowed] = float("-inf")
    k = min(k, int(torch.isfinite(cos).sum()))
    values, ids = cos.topk(k)
    return [Neighbour(int(i), float(v)) for i, v in zip(ids, values)]


@dataclass(frozen=True)
class Projection:
    """Rows projected on their first two principal directions."""

    coords: Tensor  # (N, 2)
    directions: Tensor  # (2, C) unit vectors
    explained: Tensor  # (2,) share of the total variance along each direction

    @property
    def explained_total(self) -> float:
        return float(self.explained.sum())


def pca_2d(rows: Tensor) -> Projection:
    """PCA of rows (N, C) by singular value decomposition of the centred matrix.

    Centred X = U S Vᵀ: the rows of Vᵀ are the principal directions, ordered by the variance S²/(N-1)
    along them; the coordinates of the rows are X Vᵀ[:2]ᵀ = U[:, :2] S[:2].
    """
    if rows.dim() != 2 or rows.size(0) < 2:
        raise DataError(f"pca_2d needs a matrix of at least 2 rows, got shape {tuple(rows.shape)}")
    x = rows.double() - rows.double().mean(dim=0, keepdim=True)
    _, s, vh = torch.linalg.svd(x, full_matrices=False)
    variance = s**2
    coords = x @ vh[:2].T  # (N, 2)
    return Projection(coords.float(), vh[:2].float(), (variance[:2] / variance.sum()).float())


def mean_cosine(table: Tensor, ids: Tensor | list[int]) -> float:
    """Mean cosine similarity over all pairs of distinct rows `ids` of `table`: how tightly a group
    of tokens (e.g. the ten digits) clusters. Random vectors in C dimensions give about 0 (± 1/√C)."""
    ids = torch.as_tensor(ids, dtype=torch.long)
    n = ids.numel()
    if n < 2:
        raise DataError("mean_cosine needs at least two rows")
    rows = F.normalize(table[ids].double(), dim=-1)
    sims = rows @ rows.T  # (n, n), ones on the diagonal
    return float((sims.sum() - sims.diagonal().sum()) / (n * n - n))


def neighbour_agreement(table: Tensor, ids: Tensor | list[int], groups: list[str]) -> tuple[float, float]:
    """How often the nearest neighbour (by cosine, among `ids`) of a row of `table` is in the same
    group, and how often that would happen by chance (Σ share² over the groups).

    ids (N,) rows of `table` to compare; groups: N labels, one per row (e.g. token_stats.token_kind).
    """
    ids = torch.as_tensor(ids, dtype=torch.long)
    if ids.numel() != len(groups) or ids.numel() < 2:
        raise DataError("neighbour_agreement needs at least two rows and one group label per row")
    rows = F.normalize(table[ids].double(), dim=-1)
    sims = rows @ rows.T
    sims.fill_diagonal_(float("-inf"))
    nearest = sims.argmax(dim=1).tolist()
    agreement = sum(groups[i] == groups[j] for i, j in enumerate(nearest)) / len(groups)
    shares = [groups.count(g) / len(groups) for g in set(groups)]
    return agreement, sum(p * p for p in shares)


def seen_tokens(ids: Tensor, vocab_size: int) -> Tensor:
    """(vocab_size,) bool: which token ids occur in `ids` (the training tokens)."""
    return torch.bincount(ids.reshape(-1).long(), minlength=vocab_size)[:vocab_size] > 0


# --------------------------------------------------------------------------------------------------
# Which trained model to look inside
# --------------------------------------------------------------------------------------------------


@dataclass
class InspectedModel:
    model: GPT
    source: str  # "pretrained" or DEMO_CHECKPOINT
    steps: int  # optimizer steps it was trained for
    val_loss: float | None
    note: str  # one sentence a chapter can print


def _matches(directory: Path, expected: dict, tokenizer_file: Path) -> bool:
    """The checkpoint has the expected model configuration and is newer than the tokenizer file
    (a tokenizer rebuilt after training would give its ids other meanings)."""
    try:
        saved = read_json(directory / "config.json").get("model", {})
        newer = (directory / "model.safetensors").stat().st_mtime >= tokenizer_file.stat().st_mtime
    except (CheckpointError, OSError):
        return False
    return newer and saved == json.loads(json.dumps(expected))


def model_to_inspect(run, demo_steps: int, device: torch.device | str = "cpu", say: Say = print) -> InspectedModel:
    """The course's pretrained model for `run`'s profile if its checkpoint exists and has the
    profile's shape and vocabulary; otherwise a short training run of `demo_steps` steps, saved as
    the checkpoint DEMO_CHECKPOINT (never as "pretrained", which chapter 2 writes).

    A demo checkpoint left by an earlier run with the same settings is reused.
    """
    tokenizer, _, _ = prepare_data(run, say)
    expected = run.profile.model_config(tokenizer.vocab_size).to_dict()
    pretrained = run.paths.checkpoint("pretrained")
    demo = run.paths.checkpoint(DEMO_CHECKPOINT)
    if has_checkpoint(pretrained) and _matches(pretrained, expected, run.paths.tokenizer):
        source, directory = "pretrained", pretrained
    else:
        why = "no pretrained checkpoint" if not has_checkpoint(pretrained) else \
            "the pretrained checkpoint does not match this profile's model and tokenizer"
        directory, source = demo, DEMO_CHECKPOINT
        state_steps = _saved_steps(demo) if has_checkpoint(demo) and _matches(demo, expected, run.paths.tokenizer) else None
        if state_steps == demo_steps:
            say(f"{why}; reusing the {demo_steps}-step demonstration model in {demo}")
        else:
            say(f"{why} at {pretrained} (chapter 2 trains it): training a {demo_steps}-step demonstration "
                f"model into {demo} instead")
            pretrain(run, steps=demo_steps, device=str(device), checkpoint_name=DEMO_CHECKPOINT, say=say,
                     progress=False)
    model, _, state = load_checkpoint(directory, device)
    model.eval()
    val = [row["val_loss"] for row in state["history"] if row.get("val_loss") is not None]
    val_loss = val[-1] if val else None
    steps = int(state["step"])
    kind = "the course's pretrained model" if source == "pretrained" else "a short demonstration run"
    loss = f", validation loss {val_loss:.3f} nats/token" if val_loss is not None else ""
    note = f"looking inside {kind}: {model.num_parameters() / 1e6:.2f} M parameters, {steps} steps{loss}"
    return InspectedModel(model, source, steps, val_loss, note)


def _saved_steps(directory: Path) -> int | None:
    try:
        return int(read_json(directory / "state.json")["step"])
    except (CheckpointError, KeyError, TypeError, ValueError):
        return None


def token_label(tokenizer: Tokenizer, token_id: int) -> str:
    """A short readable label for a token (see token_stats.readable)."""
    return readable(tokenizer.token_bytes(token_id))
