"""N-gram language models with add-k smoothing: the baselines a neural model has to beat.

An order-n model predicts each symbol (a character or a token id) from the n - 1 symbols before it,
with probabilities that are nothing but counts from the training text::

    P(w | context) = (count(context, w) + k) / (count(context) + k · V)

``k`` (add-k, or Laplace smoothing when k = 1) gives every symbol a little probability even after a
context it never followed in training; without it one unseen pair would make the loss infinite. A
context never seen at all gets the uniform distribution 1/V. ``k`` is a hyperparameter: ``choose_k``
picks it on a held-out tail of the *training* text, never on the validation text the model is
judged on.

Order 1 is the unigram model (no context: symbol frequencies), order 2 the bigram, and so on. Higher
orders see more context but split the same counts over exponentially many contexts: with add-k alone
they overfit, since a rare context has nothing to fall back on. ``InterpolatedNGram`` mixes every
order with the one below it (Witten–Bell interpolation), so a higher order can only add information.

Positions before the start of a text (the first n - 1 symbols have a short context) are filled with
an extra padding symbol, so every symbol of a text is scored and models of every order are judged on
exactly the same symbols. Units: ``cross_entropy`` is in nats per symbol; ``bits`` in bits per symbol.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from roots_course.errors import ConfigError, DataError

K_GRID = (1.0, 0.3, 0.1, 0.03, 0.01, 3e-3, 1e-3, 3e-4, 1e-4, 3e-5, 1e-5)


def _as_array(ids: Sequence[int] | np.ndarray, vocab_size: int, what: str) -> np.ndarray:
    if hasattr(ids, "numpy") and not isinstance(ids, np.ndarray):   # a torch tensor
        ids = ids.detach().cpu().numpy()
    arr = np.asarray(ids)
    if arr.ndim != 1:
        raise DataError(f"{what} must be a 1-D sequence of symbol ids, got shape {arr.shape}")
    if arr.size == 0:
        raise DataError(f"{what} is empty: an n-gram model needs at least one symbol")
    if not np.issubdtype(arr.dtype, np.integer):
        raise DataError(f"{what} must hold integer ids, got dtype {arr.dtype}")
    arr = arr.astype(np.int64)
    if arr.min() < 0 or arr.max() >= vocab_size:
        raise DataError(f"{what} has ids outside range(0, {vocab_size}): min {arr.min()}, max {arr.max()}")
    return arr


class NGramModel:
    """An order-``order`` model over ``vocab_size`` symbols with add-``k`` smoothing.

    >>> m = NGramModel(order=2, vocab_size=3, k=0.1).fit([0, 1, 2, 0, 1, 2, 0, 1])
    >>> round(m.prob([0], 1), 3)        # after 0 the training text always had 1
    0.939
    """

    def __init__(self, order: int, vocab_size: int, k: float = 1.0) -> None:
        if not isinstance(order, int) or isinstance(order, bool) or order < 1:
            raise ConfigError(f"order must be a positive integer, got {order!r}")
        if not isinstance(vocab_size, int) or vocab_size < 1:
            raise ConfigError(f"vocab_size must be a positive integer, got {vocab_size!r}")
        if not (isinstance(k, (int, float)) and k > 0 and math.isfinite(k)):
            raise ConfigError(f"k must be a positive number (k = 0 would give unseen pairs probability 0), "
                              f"got {k!r}")
        base = vocab_size + 1       # the ids plus one padding symbol for 'before the start'
        if (order - 1) * math.log2(base) + math.log2(vocab_size) > 62:
            raise ConfigError(f"order {order} over {vocab_size} symbols does not fit a 64-bit key; "
                              f"use a lower order")
        self.order, self.vocab_size, self.k = order, vocab_size, float(k)
        self._base = base
        self._joint_keys = self._joint_counts = None
        self._ctx_keys = self._ctx_counts = None
        self.n_train = 0

    # --- keys: a context of n - 1 symbols (and the next symbol) packed into one integer ----------
    def _keys(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(context key, joint key) for every position of ``ids``; (N,) int64 each."""
        n = self.order
        padded = np.concatenate([np.full(n - 1, self.vocab_size, dtype=np.int64), ids])  # (N + n - 1,)
        ctx = np.zeros(ids.size, dtype=np.int64)
        for j in range(n - 1):            # the symbol j places back from the predicted one, oldest first
            ctx = ctx * self._base + padded[j: j + ids.size]
        return ctx, ctx * self.vocab_size + ids

    def fit(self, ids: Sequence[int] | np.ndarray) -> NGramModel:
        """Count every (context, symbol) pair of the training ids; return self."""
        arr = _as_array(ids, self.vocab_size, "training ids")
        ctx, joint = self._keys(arr)
        self._joint_keys, self._joint_counts = np.unique(joint, return_counts=True)
        self._ctx_keys, self._ctx_counts = np.unique(ctx, return_counts=True)
        self.n_train = int(arr.size)
        return self

    @staticmethod
    def _lookup(keys: np.ndarray, counts: np.ndarray, query: np.ndarray) -> np.ndarray:
        where = np.searchsorted(keys, query)
        where = np.minimum(where, keys.size - 1)
        return np.where(keys[where] == query, counts[where], 0)

    def log_probs(self, ids: Sequence[int] | np.ndarray, k: float | None = None) -> np.ndarray:
        """ln P(ids[i] | the order - 1 ids before it) for every position i: (N,) float64, in nats."""
        if self._joint_keys is None:
            raise ConfigError("this NGramModel has not been fitted: call fit(train_ids) first")
        k = self.k if k is None else float(k)
        arr = _as_array(ids, self.vocab_size, "ids")
        ctx, joint = self._keys(arr)
        c_joint = self._lookup(self._joint_keys, self._joint_counts, joint)
        c_ctx = self._lookup(self._ctx_keys, self._ctx_counts, ctx)
        return np.log(c_joint + k) - np.log(c_ctx + k * self.vocab_size)

    def prob(self, context: Sequence[int], symbol: int) -> float:
        """P(symbol | context): only the last order - 1 ids of ``context`` matter; a shorter context
        is the start of a text (padded)."""
        return float(math.exp(self.log_probs(np.array([*context, symbol], dtype=np.int64))[-1]))

    def cross_entropy(self, ids: Sequence[int] | np.ndarray, k: float | None = None) -> float:
        """Mean -ln P over every symbol of ``ids``, in nats per symbol."""
        return float(-self.log_probs(ids, k).mean())

    def bits(self, ids: Sequence[int] | np.ndarray, k: float | None = None) -> float:
        """The same in bits per symbol (nats / ln 2)."""
        return self.cross_entropy(ids, k) / math.log(2)


class InterpolatedNGram:
    """An order-``order`` model that interpolates every order with the one below it (Witten–Bell).

    ``P_1`` is the add-``k`` unigram; for m = 2 … order, with c the m − 1 symbols before w,
    ``P_m(w | c) = λ_c · count(c, w) / count(c) + (1 − λ_c) · P_{m−1}(w | shorter c)``, where
    ``λ_c = count(c) / (count(c) + T(c))`` and T(c) is the number of distinct symbols seen after c.
    A context seen often, followed by few distinct symbols, trusts its own counts; a rare or varied one
    leans on the shorter context; an unseen one (λ = 0) is the shorter context. No weight is tuned,
    and every distribution sums to 1 over the vocabulary.
    """

    def __init__(self, order: int, vocab_size: int, k: float = 1.0) -> None:
        self.models = [NGramModel(m, vocab_size, k if m == 1 else 1.0) for m in range(1, order + 1)]
        self.order, self.vocab_size, self.k = order, vocab_size, float(k)
        self._followers: list[tuple[np.ndarray, np.ndarray] | None] = []

    def fit(self, ids: Sequence[int] | np.ndarray) -> InterpolatedNGram:
        """Count every order's (context, symbol) pairs and each context's distinct followers."""
        arr = _as_array(ids, self.vocab_size, "training ids")
        self._followers = []
        for model in self.models:
            model.fit(arr)
            if model.order == 1:
                self._followers.append(None)
                continue
            ctx_of_pair = model._joint_keys // self.vocab_size          # each distinct pair's context
            self._followers.append(np.unique(ctx_of_pair, return_counts=True))
        return self

    def log_probs(self, ids: Sequence[int] | np.ndarray) -> np.ndarray:
        """ln P(ids[i] | the order − 1 ids before it), interpolated: (N,) float64, in nats."""
        if not self._followers:
            raise ConfigError("this InterpolatedNGram has not been fitted: call fit(train_ids) first")
        arr = _as_array(ids, self.vocab_size, "ids")
        prob = np.exp(self.models[0].log_probs(arr))                     # (N,) add-k unigram
        for model, (f_keys, f_counts) in zip(self.models[1:], self._followers[1:]):
            ctx, joint = model._keys(arr)
            c_joint = model._lookup(model._joint_keys, model._joint_counts, joint)
            c_ctx = model._lookup(model._ctx_keys, model._ctx_counts, ctx)
            followers = model._lookup(f_keys, f_counts, ctx)
            seen = c_ctx > 0
            lam = np.where(seen, c_ctx / np.maximum(c_ctx + followers, 1), 0.0)
            own = np.where(seen, c_joint / np.maximum(c_ctx, 1), 0.0)
            prob = lam * own + (1 - lam) * prob
        return np.log(prob)

    def prob(self, context: Sequence[int], symbol: int) -> float:
        """P(symbol | context), as ``NGramModel.prob``."""
        return float(math.exp(self.log_probs(np.array([*context, symbol], dtype=np.int64))[-1]))

    def cross_entropy(self, ids: Sequence[int] | np.ndarray) -> float:
        """Mean -ln P over every symbol of ``ids``, in nats per symbol."""
        return float(-self.log_probs(ids).mean())


def choose_k(train_ids: Sequence[int] | np.ndarray, order: int, vocab_size: int,
             grid: Sequence[float] = K_GRID, holdout: float = 0.1) -> float:
    """The k of ``grid`` with the lowest loss on the last ``holdout`` share of the training ids,
    fitting on the rest. The validation text is never looked at."""
    arr = _as_array(train_ids, vocab_size, "training ids")
    if not 0 < holdout < 1:
        raise ConfigError(f"holdout must be between 0 and 1, got {holdout!r}")
    cut = round(arr.size * (1 - holdout))
    if cut < 1 or cut >= arr.size:
        raise DataError(f"{arr.size} training ids are too few to hold out {holdout:.0%} of them")
    model = NGramModel(order, vocab_size).fit(arr[:cut])
    losses = [model.cross_entropy(arr[cut:], k) for k in grid]
    return float(grid[int(np.argmin(losses))])


@dataclass(frozen=True)
class Baseline:
    """One n-gram baseline: its order, the k chosen, and its loss on the evaluation ids."""

    name: str
    order: int
    k: float
    nats: float              # nats per symbol
    train_nats: float        # on the training ids themselves: the gap to ``nats`` is overfitting

    @property
    def bits(self) -> float:
        return self.nats / math.log(2)


ORDER_NAMES = {1: "unigram", 2: "bigram", 3: "trigram"}


def ngram_baselines(train_ids: Sequence[int] | np.ndarray, val_ids: Sequence[int] | np.ndarray,
                    vocab_size: int, orders: Sequence[int] = (1, 2, 3),
                    grid: Sequence[float] = K_GRID) -> list[Baseline]:
    """Fit an add-k n-gram of each order on ``train_ids`` (k chosen by ``choose_k``) and score it on
    ``val_ids``. Returns one Baseline per order, in the order given."""
    rows = []
    for order in orders:
        k = choose_k(train_ids, order, vocab_size, grid)
        model = NGramModel(order, vocab_size, k).fit(train_ids)
        rows.append(Baseline(ORDER_NAMES.get(order, f"{order}-gram"), order, k,
                             model.cross_entropy(val_ids), model.cross_entropy(train_ids)))
    return rows


def interpolated_baseline(train_ids: Sequence[int] | np.ndarray, val_ids: Sequence[int] | np.ndarray,
                          vocab_size: int, order: int = 3, grid: Sequence[float] = K_GRID) -> Baseline:
    """The Witten–Bell ``InterpolatedNGram`` of ``order`` fitted on ``train_ids`` (its unigram's k
    chosen by ``choose_k``), scored on ``val_ids`` and on the training ids."""
    k = choose_k(train_ids, 1, vocab_size, grid)
    model = InterpolatedNGram(order, vocab_size, k).fit(train_ids)
    name = f"{ORDER_NAMES.get(order, f'{order}-gram')} (interpolated)"
    return Baseline(name, order, k, model.cross_entropy(val_ids), model.cross_entropy(train_ids))
