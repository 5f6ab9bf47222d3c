"""Plots for the chapters: one look for all of them, labelled axes with units, saved figures readable
in the book. Each function takes data the library computed and returns the matplotlib Figure, so a
notebook shows it and the book keeps it.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

COURSE_STYLE = {
    "figure.figsize": (7.0, 4.0),
    "figure.dpi": 110,
    "savefig.dpi": 150,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.titlesize": 12,
    "axes.labelsize": 11,
    "legend.frameon": False,
}


def use_course_style() -> None:
    """Apply the course's matplotlib settings (called by setup_chapter)."""
    plt.rcParams.update(COURSE_STYLE)


def new_figure(ncols: int = 1, nrows: int = 1, width: float | None = None, height: float | None = None):
    """A figure and its axes, sized for the book's text column."""
    w = width or (7.0 if ncols == 1 else 4.2 * ncols)
    h = height or 4.0 * nrows
    return plt.subplots(nrows, ncols, figsize=(w, h), squeeze=False if ncols * nrows > 1 else True,
                        constrained_layout=True)


def label(ax, xlabel: str, ylabel: str, title: str | None = None) -> None:
    """Every axis gets a label with its unit: the rule for every plot of the course."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)


def finish(fig: Figure) -> Figure:
    """Close the figure in pyplot's registry (no duplicate display) and return it for the notebook."""
    plt.close(fig)
    return fig


# --- chapter 1: representation ----------------------------------------------------------------------

def draw_heatmap(ax, matrix, *, title: str, xlabel: str, ylabel: str, colorbar: str | None = None,
                 xticklabels=None, yticklabels=None, annotate: bool = False, cmap: str = "viridis",
                 centered: bool = False, vmin: float | None = None, vmax: float | None = None, norm=None):
    """Draw matrix (rows, cols) on `ax` as an image: row 0 at the top, labelled axes, optional colour bar
    (its label gives the unit) and, with `annotate`, each value printed in its cell."""
    import numpy as np

    data = np.asarray(matrix, dtype=float)
    if centered:
        limit = float(np.nanmax(np.abs(data[np.isfinite(data)]))) if np.isfinite(data).any() else 1.0
        vmin, vmax, cmap = -limit, limit, "RdBu_r"
    colours = plt.get_cmap(cmap).copy()
    colours.set_bad("0.9")  # cells that are -inf (masked positions) or NaN show light grey
    limits = {"norm": norm} if norm is not None else {"vmin": vmin, "vmax": vmax}
    image = ax.imshow(np.ma.masked_invalid(data), cmap=colours, aspect="auto", interpolation="nearest", **limits)
    ax.grid(False)
    label(ax, xlabel, ylabel, title)
    if xticklabels is not None:
        ax.set_xticks(range(len(xticklabels)), xticklabels, rotation=90, fontsize=8)
    if yticklabels is not None:
        ax.set_yticks(range(len(yticklabels)), yticklabels, fontsize=8)
    if annotate:
        finite = data[np.isfinite(data)]
        middle = (finite.max() + finite.min()) / 2 if finite.size else 0.0
        for (i, j), value in np.ndenumerate(data):
            text = "−∞" if value == -np.inf else f"{value:.2f}"
            colour = "white" if np.isfinite(value) and value < middle and cmap != "RdBu_r" else "black"
            ax.text(j, i, text, ha="center", va="center", fontsize=8, color=colour)
    if colorbar:
        ax.figure.colorbar(image, ax=ax, label=colorbar, shrink=0.85)
    return image


def plot_vocab_tradeoff(vocab_sizes, tokens_per_char, bytes_per_token, title: str) -> Figure:
    """Sequence length (tokens per character) against vocabulary size, each point labelled with its
    bytes per token."""
    fig, ax = new_figure()
    ax.plot(vocab_sizes, tokens_per_char, marker="o")
    for v, t, b in zip(vocab_sizes, tokens_per_char, bytes_per_token):
        ax.annotate(f"{b:.2f} bytes/token", (v, t), textcoords="offset points", xytext=(6, 6), fontsize=8)
    ax.set_xscale("log", base=2)
    ax.set_ylim(bottom=0)
    label(ax, "vocabulary size (tokens, log scale)", "sequence length (tokens per character)", title)
    return finish(fig)


def plot_token_costs(rows, title: str) -> Figure:
    """Bars: tokens per character of each text (rows from token_stats.script_costs)."""
    fig, ax = new_figure(height=3.2)
    names = [r["text"] for r in rows]
    values = [r["tokens per character"] for r in rows]
    bars = ax.bar(names, values, color=["C0", "C3", "C2", "C1", "C4"][: len(rows)])
    ax.bar_label(bars, [f"{v:.2f}" for v in values], fontsize=9)
    label(ax, "text", "tokens per character", title)
    return finish(fig)


def plot_zipf(curves, fits, title: str) -> Figure:
    """Rank-frequency curves on log-log axes, with the fitted straight lines dashed over their ranges.

    curves: name -> counts sorted most frequent first; fits: name -> token_stats.ZipfFit."""
    import torch

    fig, ax = new_figure()
    for i, (name, counts) in enumerate(curves.items()):
        ranks = torch.arange(1, len(counts) + 1)
        fit = fits.get(name)
        legend = name if fit is None else f"{name} (slope {fit.slope:.2f} over ranks {fit.lo}–{fit.hi})"
        ax.loglog(ranks, counts, color=f"C{i}", label=legend)
        if fit is not None:
            span = torch.arange(fit.lo, fit.hi + 1)
            ax.loglog(span, fit.predict(span), color=f"C{i}", linestyle="--", linewidth=1)
    ax.legend(fontsize=9)
    label(ax, "rank (1 = most frequent, log scale)", "occurrences in the training split (log scale)", title)
    return finish(fig)


def plot_embedding_map(coords, labels, explained, title: str, groups=None, annotate=None) -> Figure:
    """Tokens placed by their first two principal coordinates.

    groups: optional dict group name -> row indices, each drawn in its own colour (other rows grey);
    annotate: row indices whose label (the token's text) is written next to the point."""
    fig, ax = new_figure(width=7.0, height=5.5)
    ax.scatter(coords[:, 0], coords[:, 1], s=6, color="0.8")
    for k, (group, rows) in enumerate((groups or {}).items()):
        ax.scatter(coords[rows, 0], coords[rows, 1], s=12, color=f"C{k}", label=f"{group} ({len(rows)})")
    for r in annotate or []:
        ax.annotate(labels[r], (float(coords[r, 0]), float(coords[r, 1])), fontsize=8,
                    textcoords="offset points", xytext=(3, 3))
    if groups:
        ax.legend(fontsize=9, loc="best", markerscale=1.5)
    label(ax, f"principal direction 1 ({100 * float(explained[0]):.1f}% of variance; embedding units)",
          f"principal direction 2 ({100 * float(explained[1]):.1f}% of variance; embedding units)", title)
    return finish(fig)


def plot_position_tables(table, similarity, title: str, what: str = "sinusoidal",
                         measure: str = "dot product") -> Figure:
    """Left: a position table (positions × dimensions). Right: `measure` between its rows."""
    fig, axes = new_figure(ncols=2, width=10.0, height=4.2)
    axes = axes.ravel()
    draw_heatmap(axes[0], table, title=f"{what} position vectors", xlabel="dimension (index)",
                 ylabel="position (token index)", colorbar="value", centered=True)
    draw_heatmap(axes[1], similarity, title="similarity between positions", xlabel="position j (token index)",
                 ylabel="position i (token index)", colorbar=f"{measure} of the two position vectors")
    fig.suptitle(title)
    return finish(fig)


def plot_attention_weights(weights, row_labels, col_labels, title: str, colorbar: str = "attention weight",
                           vmin: float | None = 0.0) -> Figure:
    """One attention matrix (queries × keys), each cell annotated with its value (−∞ cells grey)."""
    size = max(3.5, 0.55 * len(col_labels) + 2.5)
    fig, ax = new_figure(width=size, height=max(2.5, 0.45 * len(row_labels) + 1.8))
    draw_heatmap(ax, weights, title=title, xlabel="key (the token looked at)", ylabel="query (the token looking)",
                 colorbar=colorbar, xticklabels=col_labels, yticklabels=row_labels, annotate=True, vmin=vmin)
    return finish(fig)


def plot_attention_grid(maps, tokens, layers, title: str, max_heads: int = 6) -> Figure:
    """Attention weights of a trained model: one panel per (layer, head), queries down, keys across.

    maps: list over layers of tensors (H, T, T) for one sequence; layers: which layer indices to show.
    The colour scale is a square root, so that the many small weights of a long row stay visible."""
    from matplotlib.colors import PowerNorm

    heads = min(max_heads, maps[0].size(0))
    fig, axes = new_figure(ncols=heads, nrows=len(layers), width=2.6 * heads + 1.0, height=2.6 * len(layers) + 0.6)
    import numpy as np

    axes = np.asarray(axes, dtype=object).reshape(len(layers), heads)
    image = None
    for row, layer in enumerate(layers):
        for h in range(heads):
            ax = axes[row, h]
            image = draw_heatmap(ax, maps[layer][h].float().cpu(), title=f"layer {layer + 1}, head {h + 1}",
                         xlabel="key token" if row == len(layers) - 1 else "",
                         ylabel="query token" if h == 0 else "", norm=PowerNorm(0.5, 0.0, 1.0), cmap="magma",
                         xticklabels=tokens if row == len(layers) - 1 else None,
                         yticklabels=tokens if h == 0 else None)
            if row != len(layers) - 1:
                ax.set_xticks([])
            if h != 0:
                ax.set_yticks([])
    fig.colorbar(image, ax=list(axes.ravel()), label="attention weight (square-root scale)", shrink=0.8)
    fig.suptitle(title)
    return finish(fig)


# --- chapter 2: optimization ------------------------------------------------------------------------

def _tick_text(v: float) -> str:
    if v == 0 or 1e-3 <= abs(v) < 1e5:
        return f"{v:g}"
    exponent = int(f"{v:e}".split("e")[1])
    mantissa = v / 10 ** exponent
    return f"$10^{{{exponent}}}$" if abs(mantissa - 1) < 1e-9 else f"${mantissa:g}\\times10^{{{exponent}}}$"


def readable_log_axis(axis, lo: float, hi: float) -> None:
    """Tick labels a reader can take in on a log axis: a few plain numbers over a narrow range,
    1-2-5 steps over a few decades, powers of ten over many; no labels on the minor ticks."""
    from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter

    lo, hi = min(lo, hi), max(lo, hi)
    axis.set_minor_formatter(NullFormatter())
    if lo > 0 and hi / lo < 3:
        axis.set_major_locator(MaxNLocator(6))
    elif lo > 0 and hi / lo < 300:
        axis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    else:
        axis.set_major_locator(LogLocator())
    axis.set_major_formatter(FuncFormatter(lambda v, _: _tick_text(v)))


def draw_lines(ax, series, *, xlabel: str, ylabel: str, title: str | None = None, hlines=None,
               smooth_weight: float | None = None, logx: bool = False, logy: bool = False, markers: bool = False,
               legend_title: str | None = None, highlight: str | None = None) -> None:
    """Draw curves on `ax`. series: name -> (xs, ys). With `smooth_weight` each curve is drawn faint as
    measured and bold as an exponential moving average (noisy per-step losses). hlines: name -> y,
    dashed horizontal reference lines (baselines, floors, thresholds), each named at its left end; those
    whose name contains `highlight` in red.
    Log axes get plain tick labels (0.2, 0.5, 1, 2 rather than powers of ten)."""
    import math

    for k, (name, (xs, ys)) in enumerate(series.items()):
        colour = f"C{k % 10}"
        ys = [math.nan if y is None else float(y) for y in ys]
        if smooth_weight:
            ax.plot(xs, ys, color=colour, alpha=0.25, linewidth=0.8)
            avg, out = 0.0, []
            for i, y in enumerate(ys, start=1):   # bias-corrected EMA; NaN (diverged) stays NaN
                avg = smooth_weight * avg + (1 - smooth_weight) * y
                out.append(avg / (1 - smooth_weight ** i))
            ax.plot(xs, out, color=colour, linewidth=1.8, label=name)
        else:
            ax.plot(xs, ys, color=colour, linewidth=1.6, marker="o" if markers else None, markersize=4, label=name)
    for name, y in (hlines or {}).items():   # reference lines: named where they start, not in the legend
        colour = "C3" if highlight and highlight in name else "0.45"
        ax.axhline(y, color=colour, linestyle="--", linewidth=1.0)
        ax.annotate(name, xy=(0.01, y), xycoords=("axes fraction", "data"), xytext=(0, 2),
                    textcoords="offset points", fontsize=8, color=colour if colour != "0.45" else "0.3", va="bottom")
    if logx:
        ax.set_xscale("log")
        readable_log_axis(ax.xaxis, *ax.get_xlim())
    if logy:
        ax.set_yscale("log")
        readable_log_axis(ax.yaxis, *ax.get_ylim())
    label(ax, xlabel, ylabel, title)
    if series:
        ax.legend(fontsize=8, title=legend_title, title_fontsize=8)


def plot_lines(series, *, xlabel: str, ylabel: str, title: str, width: float | None = None,
               height: float | None = None, **options) -> Figure:
    """One panel of curves (see draw_lines for the options)."""
    fig, ax = new_figure(width=width, height=height)
    draw_lines(ax, series, xlabel=xlabel, ylabel=ylabel, title=title, **options)
    return finish(fig)


def plot_bars(values, *, ylabel: str, title: str, xlabel: str = "model", fmt: str = "{:.2f}",
              highlight: str | None = None) -> Figure:
    """One bar per named value (name -> number), each labelled with its value; `highlight` in another colour."""
    fig, ax = new_figure(height=3.6)
    names = list(values)
    bars = ax.bar(names, [values[n] for n in names], color=["C3" if n == highlight else "C0" for n in names])
    ax.bar_label(bars, [fmt.format(values[n]) for n in names], fontsize=9)
    ax.tick_params(axis="x", labelsize=9)
    label(ax, xlabel, ylabel, title)
    return finish(fig)


def plot_scaling(runs, fit_params, fit_compute, frontier, title: str) -> Figure:
    """Left: final validation loss against non-embedding parameters N, with the fitted power law.
    Right: validation loss along training against compute 6·N·D (one curve per model), with the
    compute frontier and its fitted power law. Both on log-log axes.

    runs: scaling.ScalingRun list; fit_*: scaling.PowerLaw; frontier: (compute, loss) points."""
    import numpy as np

    fig, axes = new_figure(ncols=2, width=11.0, height=4.4)
    left, right = axes.ravel()
    n = np.array([r.parameters for r in runs], dtype=float)
    for k, r in enumerate(runs):
        left.scatter([r.parameters], [r.final_loss], color=f"C{k}", zorder=3, s=40, label=f"width {r.width}")
    grid = np.geomspace(n.min() / 1.3, n.max() * 1.3, 50)
    left.plot(grid, fit_params(grid), color="0.3", linestyle="--", label=f"fit: slope {fit_params.slope:.3f}")
    left.set_xscale("log")
    left.set_yscale("log")
    readable_log_axis(left.xaxis, *left.get_xlim())
    readable_log_axis(left.yaxis, *left.get_ylim())
    left.legend(fontsize=8)
    label(left, "non-embedding parameters N (log scale)", "final validation loss (nats/token, log scale)",
          "loss against model size")
    for k, r in enumerate(runs):
        pts = r.points
        right.plot([6.0 * r.parameters * d for d, _ in pts], [v for _, v in pts], color=f"C{k}", marker="o",
                   markersize=3, label=f"width {r.width}")
    fc = np.array([c for c, _ in frontier])
    right.plot(fc, [v for _, v in frontier], color="black", linewidth=0, marker="s", markersize=6,
               markerfacecolor="none", label="frontier (best loss for a budget)")
    if len(fc) >= 2:
        cgrid = np.geomspace(fc.min() / 1.3, fc.max() * 1.3, 50)
        right.plot(cgrid, fit_compute(cgrid), color="0.3", linestyle="--", label=f"fit: slope {fit_compute.slope:.3f}")
    right.set_xscale("log")
    right.set_yscale("log")
    readable_log_axis(right.xaxis, *right.get_xlim())
    readable_log_axis(right.yaxis, *right.get_ylim())
    right.legend(fontsize=8)
    label(right, "training compute C = 6·N·D (FLOPs, log scale)", "validation loss (nats/token, log scale)",
          "loss against compute")
    fig.suptitle(title)
    return finish(fig)


# --- chapter 3: output ------------------------------------------------------------------------------

def _plain_log_ticks(axis) -> None:
    """Label a log-scaled axis with plain numbers (20, 50, 100) instead of 2×10¹, on minor ticks too."""
    from matplotlib.ticker import FuncFormatter, LogLocator

    plain = FuncFormatter(lambda value, _: f"{value:g}")
    axis.set_major_formatter(plain)
    axis.set_minor_locator(LogLocator(base=10, subs=(2.0, 5.0)))  # 20, 50, 200, 500 ...: readable, not crowded
    axis.set_minor_formatter(plain)
    axis.set_tick_params(which="minor", labelsize=8)


def plot_next_token_probs(tokens, probs_by_temperature, title: str) -> Figure:
    """Grouped bars: the probability of each candidate next token (x) at each temperature (one colour each).

    probs_by_temperature: legend label -> probabilities in the order of `tokens`."""
    import numpy as np

    fig, ax = new_figure(width=8.0, height=3.8)
    n = len(probs_by_temperature)
    x = np.arange(len(tokens))
    width = 0.8 / n
    for k, (name, probs) in enumerate(probs_by_temperature.items()):
        ax.bar(x + (k - (n - 1) / 2) * width, probs, width, label=name, color=f"C{k}")
    ax.set_xticks(x, tokens, rotation=60, fontsize=9)
    ax.legend(fontsize=9)
    label(ax, "candidate next token (most likely at T = 1 first)", "probability", title)
    return finish(fig)


def plot_entropy_vs_temperature(temperatures, median, low, high, ceiling_bits: float, title: str,
                                band: str = "10th–90th percentile of positions") -> Figure:
    """Entropy of the next-token distribution against temperature (log x axis): the median over many
    contexts, a shaded band, and the ceiling log2(V) of a uniform distribution."""
    fig, ax = new_figure()
    ax.fill_between(temperatures, low, high, alpha=0.25, color="C0", label=band)
    ax.plot(temperatures, median, marker="o", markersize=3, color="C0", label="median over positions")
    ax.axhline(ceiling_bits, color="0.4", linestyle="--", linewidth=1, label=f"uniform: log2(V) = {ceiling_bits:.1f} bits")
    ax.axvline(1.0, color="C3", linestyle=":", linewidth=1, label="T = 1: the model's own distribution")
    ax.set_xscale("log")
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=9, loc="upper left")
    label(ax, "temperature T (log scale)", "entropy of the next-token distribution (bits)", title)
    return finish(fig)


def plot_nucleus_sizes(sizes, top_p: float, top_k: int, title: str) -> Figure:
    """Histogram of how many tokens top-p keeps at each position, against top-k's fixed number."""
    import numpy as np

    fig, ax = new_figure(height=3.6)
    sizes = np.asarray(sizes)
    bins = np.unique(np.round(np.logspace(0, np.log10(max(sizes.max(), 2) + 1), 30)))
    ax.hist(sizes, bins=bins, color="C2", alpha=0.8, label=f"top-p {top_p:g}: tokens kept at each position")
    ax.axvline(top_k, color="C1", linestyle="--", label=f"top-k: always {top_k} tokens")
    ax.set_xscale("log")
    ax.set_xlim(0.7 * min(sizes.min(), top_k), 1.4 * max(sizes.max(), top_k))
    _plain_log_ticks(ax.xaxis)
    ax.legend(fontsize=9)
    label(ax, "tokens kept (log scale)", "positions (count)", title)
    return finish(fig)


def plot_quality_diversity(rows, title: str, reference: str = "held-out text") -> Figure:
    """Each strategy as a point: perplexity of its outputs under the model (log x) against distinct-2.

    rows: dicts with "strategy", "perplexity", "distinct-2" (decoding_study.summarize); the row named
    `reference` (what really followed the prompts) is drawn as a star."""
    fig, ax = new_figure(width=7.5, height=4.6)
    markers = "osD^vP<>Xh"
    for k, row in enumerate(rows):
        is_ref = row["strategy"] == reference
        ax.scatter(row["perplexity"], row["distinct-2"], s=160 if is_ref else 50,
                   marker="*" if is_ref else markers[k % len(markers)], color="black" if is_ref else f"C{k % 10}",
                   zorder=3, label=row["strategy"])
    ax.set_xscale("log")
    ax.legend(fontsize=8, loc="lower right")
    label(ax, "perplexity of the outputs under the model (log scale; low = what the model expects)",
          "distinct-2 (share of different token pairs)", title)
    return finish(fig)


def plot_kv_timing(curves, title: str) -> Figure:
    """Generation speed against the number of tokens generated, with (solid) and without (dashed) the
    KV cache. curves: model name -> rows of decoding_study.time_kv_cache."""
    fig, ax = new_figure()
    for k, (name, rows) in enumerate(curves.items()):
        n = [r["new tokens"] for r in rows]
        ax.plot(n, [r["tokens/s with cache"] for r in rows], marker="o", color=f"C{k}", label=f"{name}, with cache")
        ax.plot(n, [r["tokens/s without cache"] for r in rows], marker="s", linestyle="--", color=f"C{k}",
                label=f"{name}, without cache")
    ax.set_yscale("log")
    _plain_log_ticks(ax.yaxis)
    ax.legend(fontsize=8)
    label(ax, "tokens generated (after a short prompt)", "generation speed (tokens/s, log scale)", title)
    return finish(fig)


# --- chapter 4: tasks -------------------------------------------------------------------------------

def plot_task_scores(rows, title: str) -> Figure:
    """Grouped bars, one group per task, one bar per method. Left: the headline score (a fraction of the
    test examples) with its 95% bootstrap interval as an error bar. Right, when rows carry "answer_loss":
    the loss on the reference answers (nats per token), which moves even where the score is stuck at 0.
    rows: dicts with "task", "method", "metric", "value", "low", "high" (and optionally "answer_loss")."""
    tasks = list(dict.fromkeys(r["task"] for r in rows))
    methods = list(dict.fromkeys(r["method"] for r in rows))
    with_loss = all("answer_loss" in r for r in rows)
    width = 0.8 / len(methods)
    fig, axes = new_figure(ncols=2 if with_loss else 1, width=(13.0 if with_loss else 7.5), height=4.4)
    axes = list(axes.ravel()) if with_loss else [axes]
    metrics = {t: next(r["metric"] for r in rows if r["task"] == t) for t in tasks}
    for panel, ax in enumerate(axes):
        for k, method in enumerate(methods):
            mine = {r["task"]: r for r in rows if r["method"] == method}
            xs = [i + (k - (len(methods) - 1) / 2) * width for i, t in enumerate(tasks) if t in mine]
            shown = [mine[t] for t in tasks if t in mine]
            if panel == 0:
                values = [r["value"] for r in shown]
                errors = [[r["value"] - r["low"] for r in shown], [r["high"] - r["value"] for r in shown]]
                ax.bar(xs, values, width, yerr=errors, capsize=2, color=f"C{k}", label=method)
            else:
                ax.bar(xs, [r["answer_loss"] for r in shown], width, color=f"C{k}", label=method)
        if panel == 0:
            ax.set_xticks(range(len(tasks)), [f"{t}\n({metrics[t]})" for t in tasks])
            ax.set_ylim(0, 1.05)
            ax.legend(fontsize=8, ncol=min(3, len(methods)), loc="upper left")
            label(ax, "task (headline metric)", "score on the held-out test split (fraction, 95% CI)", "score")
        else:
            ax.set_xticks(range(len(tasks)), tasks)
            label(ax, "task", "loss on the test answers (nats per token)", "answer loss (lower is better)")
    fig.suptitle(title)
    return finish(fig)


def plot_finetune_curves(curves, title: str) -> Figure:
    """Training loss on answer tokens against step, one panel per task.

    curves: {task: {method: (steps, losses)}}."""
    tasks = list(curves)
    fig, axes = new_figure(ncols=len(tasks), width=3.3 * len(tasks) + 0.6, height=3.4)
    axes = list(axes.ravel()) if hasattr(axes, "ravel") else [axes]
    for ax, task in zip(axes, tasks):
        for k, (method, (steps, losses)) in enumerate(curves[task].items()):
            ax.plot(steps, losses, marker=".", color=f"C{k + 2}", label=method)
        ax.set_ylim(bottom=0)
        label(ax, "optimizer step", "loss (nats per answer token)" if ax is axes[0] else "", task)
        ax.legend(fontsize=8)
    fig.suptitle(title)
    return finish(fig)


# --- chapter 5: society -----------------------------------------------------------------------------

def plot_overlap(curves, title: str, baseline: str | None = None) -> Figure:
    """Verbatim overlap with the training split against n-gram length. curves: name -> {n: share};
    the curve named `baseline` (held-out text) is drawn dashed black."""
    fig, ax = new_figure()
    for k, (name, points) in enumerate(curves.items()):
        ns = sorted(points)
        style = {"color": "black", "linestyle": "--"} if name == baseline else {"color": f"C{k}"}
        ax.plot(ns, [points[n] for n in ns], marker="o", markersize=4, label=name, **style)
    ax.set_xscale("log", base=2)
    ticks = sorted({n for points in curves.values() for n in points})
    ax.set_xticks(ticks, [str(n) for n in ticks])
    ax.minorticks_off()
    ax.set_ylim(-0.02, 1.02)
    ax.legend(fontsize=8)
    label(ax, "n-gram length n (tokens, log scale)", "share of n-grams found in the training split", title)
    return finish(fig)


def plot_membership(member_losses, other_losses, fpr, tpr, auc_value: float, title: str,
                    names: tuple[str, str] = ("training windows", "validation windows")) -> Figure:
    """Left: histograms of per-window loss for the two splits. Right: the ROC curve of the score
    −loss, with the chance diagonal and the area under the curve in the legend."""
    import numpy as np

    fig, axes = new_figure(ncols=2, width=10.5, height=4.0)
    left, right = axes.ravel()
    both = np.concatenate([np.asarray(member_losses), np.asarray(other_losses)])
    bins = np.linspace(both.min(), both.max(), 30)
    left.hist(member_losses, bins=bins, alpha=0.6, color="C0", label=names[0])
    left.hist(other_losses, bins=bins, alpha=0.6, color="C1", label=names[1])
    left.legend(fontsize=8)
    label(left, "mean loss of the window (nats/token)", "windows (count)", "loss per window")
    right.plot(fpr, tpr, color="C3", label=f"score = −loss (AUC {auc_value:.3f})")
    right.plot([0, 1], [0, 1], color="0.5", linestyle="--", label="chance (AUC 0.5)")
    right.set_xlim(0, 1)
    right.set_ylim(0, 1)
    right.legend(fontsize=8, loc="lower right")
    label(right, "false-positive rate (validation windows called members)",
          "true-positive rate (training windows found)", "ROC curve")
    fig.suptitle(title)
    return finish(fig)


def plot_extraction(curves, title: str) -> Figure:
    """Share of prompts whose greedy continuation reproduces the next S tokens exactly, against S.
    curves: name -> (lengths, shares)."""
    fig, ax = new_figure(height=3.6)
    for k, (name, (lengths, rates)) in enumerate(curves.items()):
        ax.plot(lengths, rates, marker="o", markersize=4, color=f"C{k}", label=name)
    ax.set_xscale("log", base=2)
    ticks = sorted({s for lengths, _ in curves.values() for s in lengths})
    ax.set_xticks(ticks, [str(s) for s in ticks])
    ax.minorticks_off()
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=8)
    label(ax, "continuation length S (tokens, log scale)", "share reproduced exactly", title)
    return finish(fig)


def plot_pronouns(corpus_counts, shares, title: str) -> Figure:
    """Left: occurrences of each pronoun group in the training split (log scale; zero drawn as an empty
    slot). Right: shares of the candidates (e.g. he, she, they) in the corpus and in the model's
    probabilities. shares: measure -> {candidate: share}."""
    import numpy as np

    fig, axes = new_figure(ncols=2, width=10.5, height=4.0)
    left, right = axes.ravel()
    names = list(corpus_counts)
    values = [corpus_counts[n] for n in names]
    left.set_yscale("log")
    bars = left.bar(range(len(names)), [v if v else float("nan") for v in values], color="C0")
    left.bar_label(bars, [f"{v:,}" if v else "" for v in values], fontsize=8)
    for k, v in enumerate(values):
        if not v:
            left.text(k, 0.8, "0", ha="center", va="bottom", fontsize=8)
    left.set_xticks(range(len(names)), names)
    left.set_xlim(-0.6, len(names) - 0.4)
    left.set_ylim(0.7, max(values + [1]) * 3)
    label(left, "pronoun group (all forms)", "occurrences in the training split (log scale)", "what the corpus holds")
    candidates = list(next(iter(shares.values())))
    x = np.arange(len(candidates))
    width = 0.8 / len(shares)
    for k, (measure, s) in enumerate(shares.items()):
        heights = [s[c] for c in candidates]
        b = right.bar(x + (k - (len(shares) - 1) / 2) * width, heights, width, color=f"C{k + 1}", label=measure)
        right.bar_label(b, [f"{h:.2f}" for h in heights], fontsize=7)
    right.set_xticks(x, candidates)
    right.set_ylim(0, 1.08)
    right.legend(fontsize=8, loc="upper left")
    label(right, "candidate pronoun", "share among the candidates", "corpus against model")
    fig.suptitle(title)
    return finish(fig)


def plot_cooccurrence(table, title: str) -> Figure:
    """Sentences in which a role noun (rows) and a pronoun group (columns) occur together, annotated
    with the counts; colour on a log scale. table: noun -> {group: count}."""
    import numpy as np
    from matplotlib.colors import LogNorm

    rows, cols = list(table), list(next(iter(table.values())))
    data = np.array([[table[r][c] for c in cols] for r in rows], dtype=float)
    fig, ax = new_figure(width=1.0 * len(cols) + 3.0, height=0.38 * len(rows) + 1.6)
    shown = np.where(data > 0, data, np.nan)
    image = ax.imshow(np.ma.masked_invalid(shown), cmap="viridis", aspect="auto",
                      norm=LogNorm(vmin=1, vmax=max(2.0, float(np.nanmax(shown)) if np.isfinite(shown).any() else 2.0)))
    for (i, j), v in np.ndenumerate(data):
        ax.text(j, i, f"{int(v)}", ha="center", va="center", fontsize=8, color="white" if v else "0.4")
    ax.set_xticks(range(len(cols)), cols)
    ax.set_yticks(range(len(rows)), rows, fontsize=8)
    ax.grid(False)
    fig.colorbar(image, ax=ax, label="sentences (log scale; 0 left blank)", shrink=0.85)
    label(ax, "pronoun group", "noun (singular or plural)", title)
    return finish(fig)


def plot_cost(ours, published, title: str) -> Figure:
    """Three log-scale bar charts: training compute (FLOPs), energy (kWh) and emissions (kg CO2e), our runs
    (blue) next to published large models (red). ours, published: name -> (FLOPs, kWh, kg CO2e), each
    possibly None (no bar). Bars start at a common base two decades below the smallest value."""
    import math

    names = list(ours) + list(published)
    fig, axes = new_figure(ncols=3, width=13.0, height=0.34 * len(names) + 2.2)
    axes = axes.ravel()
    panels = (("training compute (FLOPs, log scale)", "compute"), ("energy (kWh, log scale)", "energy"),
              ("emissions (kg CO2e, log scale)", "emissions"))
    for column, (ax, (xlabel, what)) in enumerate(zip(axes, panels)):
        values = [(ours.get(n) or published.get(n))[column] for n in names]
        shown = [v for v in values if v]
        base = 10 ** (math.floor(math.log10(min(shown))) - 2) if shown else 1.0
        for i, (n, v) in enumerate(zip(names, values)):
            if v:
                ax.barh(i, v - base, left=base, color="C0" if n in ours else "C3")
                ax.text(v, i, f" {v:.2g}", va="center", fontsize=7)
            else:
                ax.text(base * 3, i, "not reported", va="center", fontsize=7, color="0.4")
        ax.set_xscale("log")
        ax.set_xlim(left=base)
        ax.set_yticks(range(len(names)), names if column == 0 else [""] * len(names), fontsize=8)
        ax.invert_yaxis()
        label(ax, xlabel, "", what)
    fig.suptitle(title + " (blue: the course's runs, estimated energy; red: published figures)")
    return finish(fig)


def plot_reliability(curves, title: str) -> Figure:
    """Reliability diagram: share of answers right against the model's confidence, one line per model,
    marker area by the number of answers in the bin; the diagonal is perfect calibration.
    curves: name -> rows of fabrication.reliability."""
    fig, ax = new_figure(width=5.8, height=4.6)
    ax.plot([0, 1], [0, 1], color="0.5", linestyle="--", label="calibrated")
    for k, (name, rows) in enumerate(curves.items()):
        pts = [r for r in rows if r["answers"]]
        ax.plot([r["mean confidence"] for r in pts], [r["share right"] for r in pts], color=f"C{k}", label=name)
        ax.scatter([r["mean confidence"] for r in pts], [r["share right"] for r in pts],
                   s=[8 + 4 * r["answers"] for r in pts], color=f"C{k}", alpha=0.6)
    ax.set_xlim(0, 1)
    ax.set_ylim(-0.02, 1.02)
    ax.legend(fontsize=8, loc="upper left")
    label(ax, "confidence: the model's probability of its answer", "share of answers that are right", title)
    return finish(fig)
