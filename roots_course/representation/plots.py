"""Chapter 1's figures: tokenizer trade-offs, Zipf's law, embedding maps, position tables and
attention weights."""

from __future__ import annotations

from matplotlib.figure import Figure

from roots_course.course.plots import draw_heatmap, finish, label, new_figure


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
