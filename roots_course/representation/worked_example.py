"""The source document's worked example of self-attention (its §4.2), checked number by number.

The outline the course grew from (``seed/roots-seed.zh.md``) computes a context vector for "sat" in
"The cat sat on the mat" from six 3-dimensional word vectors and five attention scores, and states

    sat_context = 0.2·The + 0.3·cat + 0.4·on + 0.2·the + 0.5·mat = [0.35, 0.44, 0.53]

The vectors and scores are reproduced below as data (they are the example's numbers, not prose).
The functions recompute what the example claims and what it should have computed:

- `claimed_weighted_sum`: the sum with the example's own weights is [0.49, 0.65, 0.81], not its result;
- `claimed_weight_total`: the weights add up to 1.6, so the sum is not an average;
- `implied_weight_total`: no average of these vectors can be [0.35, 0.44, 0.53] at all;
- `dot_product_scores`: the scores are not the dot products they stand for (they even rank the
  words differently), and "sat" is missing from its own list;
- `attention_for`: the real computation, softmax(q·kᵀ / √d_k) over all six words including "sat",
  with or without learned projections W_Q, W_K, W_V.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from roots_course.representation.attention_steps import AttentionSteps, attention_steps
from roots_course.errors import DataError

WORDS: tuple[str, ...] = ("The", "cat", "sat", "on", "the", "mat")
# The example's word vectors, one row per word of WORDS: (6, 3).
VECTORS = torch.tensor([
    [0.1, 0.2, 0.3],
    [0.4, 0.5, 0.6],
    [0.7, 0.8, 0.9],
    [0.2, 0.3, 0.4],
    [0.1, 0.2, 0.3],
    [0.5, 0.6, 0.7],
], dtype=torch.float64)
QUERY = "sat"
# The example's attention scores of "sat" for the other five words (it lists no score for "sat").
CLAIMED_SCORES: dict[str, float] = {"The": 0.2, "cat": 0.3, "on": 0.4, "the": 0.2, "mat": 0.5}
# The context vector the example states.
CLAIMED_CONTEXT = torch.tensor([0.35, 0.44, 0.53], dtype=torch.float64)
D_K = VECTORS.size(1)


def vector(word: str) -> Tensor:
    """The example's vector for `word` (the first occurrence; "The" and "the" are distinct words)."""
    if word not in WORDS:
        raise DataError(f"{word!r} is not a word of the example; its words are {', '.join(WORDS)}")
    return VECTORS[WORDS.index(word)]


def claimed_weighted_sum() -> Tensor:
    """Σ score · vector with the example's own scores: what its formula actually evaluates to. (3,)"""
    return sum(score * vector(word) for word, score in CLAIMED_SCORES.items())


def claimed_weight_total() -> float:
    """The sum of the example's weights (an average needs 1)."""
    return float(sum(CLAIMED_SCORES.values()))


def claimed_normalised() -> Tensor:
    """The weighted sum divided by the total weight: the weighted average the text describes. (3,)"""
    return claimed_weighted_sum() / claimed_weight_total()


def component_steps(v: Tensor) -> Tensor:
    """Differences between neighbouring components: v[1] - v[0], v[2] - v[1]."""
    return v[..., 1:] - v[..., :-1]


def implied_weight_total(result: Tensor) -> float:
    """The total weight any weighted sum of the example's vectors must have to equal `result`.

    Every vector of the example climbs by exactly 0.1 from one component to the next
    ([a, a + 0.1, a + 0.2]), so Σ wᵢ vᵢ climbs by 0.1 · Σ wᵢ. The steps of `result` therefore
    reveal Σ wᵢ; DataError if its two steps differ (then no weights at all give `result`).
    """
    steps = component_steps(result)
    if not torch.allclose(steps, steps[0].expand_as(steps), atol=1e-9):
        raise DataError(f"{result.tolist()} has unequal steps {steps.tolist()}: no weighted sum of the "
                        f"example's vectors equals it")
    return float(steps.mean() / 0.1)


def dot_product_scores(query: str = QUERY, scale: bool = False) -> dict[str, float]:
    """q · k for `query` against every word, itself included (divided by √d_k when `scale`)."""
    q = vector(query)
    scores = VECTORS @ q  # (6,)
    if scale:
        scores = scores / D_K**0.5
    return {word: float(s) for word, s in zip(WORDS, scores)}


def ranking(scores: dict[str, float]) -> list[str]:
    """Words from highest to lowest score (ties keep sentence order)."""
    return sorted(scores, key=lambda w: -scores[w])


@dataclass
class WorkedAttention:
    """One query's row of scaled dot-product attention over the example's six words."""

    query: str
    scores: Tensor  # (6,)  q · k for every word
    scaled: Tensor  # (6,)  divided by √d_k
    weights: Tensor  # (6,)  softmax: non-negative, sums to 1
    context: Tensor  # (d_v,) Σ weights · values
    steps: AttentionSteps  # the whole (6, 6) computation this row comes from

    def table(self) -> list[dict[str, float | str]]:
        return [{"word": w, "q·k": round(float(s), 4), "q·k/√d_k": round(float(c), 4), "weight": round(float(p), 4)}
                for w, s, c, p in zip(WORDS, self.scores, self.scaled, self.weights)]


def attention_for(query: str = QUERY, w_q: Tensor | None = None, w_k: Tensor | None = None,
                  w_v: Tensor | None = None) -> WorkedAttention:
    """softmax(q Kᵀ / √d_k) V for `query` over all six words, itself included.

    Without projections Q = K = V = the example's vectors (d_k = 3); with them, Q = X W_Q etc.
    """
    steps = attention_steps(VECTORS, w_q, w_k, w_v, causal=False)
    i = WORDS.index(query)
    return WorkedAttention(query, steps.scores[i], steps.scaled[i], steps.weights[i], steps.output[i], steps)


def ordered_like_offsets(weights: Tensor, tol: float = 1e-12) -> bool:
    """True when `weights` (6,) rise or fall together with the words' offsets a (the first
    component of each vector): every vector is a·[1, 1, 1] + [0, 0.1, 0.2], so for ANY projections
    a score q·(W_K x) is an affine function of a, and the weights can only follow a up or down."""
    order = torch.argsort(VECTORS[:, 0], stable=True)
    a, w = VECTORS[order, 0], weights[order]
    rising = all(w[i + 1] >= w[i] - tol for i in range(len(w) - 1) if a[i + 1] > a[i])
    falling = all(w[i + 1] <= w[i] + tol for i in range(len(w) - 1) if a[i + 1] > a[i])
    return rising or falling


def random_projections(d_model: int = D_K, d_k: int = D_K, std: float = 1.0,
                       seed: int = 0) -> tuple[Tensor, Tensor, Tensor]:
    """W_Q, W_K, W_V (d_model, d_k), float64 normal with standard deviation `std`, from a generator
    seeded with `seed`: stand-ins for the projections a model learns."""
    g = torch.Generator().manual_seed(seed)
    return tuple(std * torch.randn(d_model, d_k, generator=g, dtype=torch.float64) for _ in range(3))
