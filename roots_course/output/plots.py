"""Chapter 3's figures: next-token probabilities and temperature, nucleus sizes, quality against
diversity of decoders, and the speed-up of the KV cache."""

from __future__ import annotations

from matplotlib.figure import Figure

from roots_course.course.plots import finish, label, new_figure, plain_log_ticks


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
    plain_log_ticks(ax.xaxis)
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
    plain_log_ticks(ax.yaxis)
    ax.legend(fontsize=8)
    label(ax, "tokens generated (after a short prompt)", "generation speed (tokens/s, log scale)", title)
    return finish(fig)
