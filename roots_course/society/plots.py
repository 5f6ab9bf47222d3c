"""Chapter 5's figures: overlap with the training data, membership inference, extraction, pronoun
shares and co-occurrences, training cost, and calibration."""

from __future__ import annotations

from matplotlib.figure import Figure

from roots_course.course.plots import finish, label, new_figure


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


def plot_log_ratios(ratios, title: str, a: str = "he", b: str = "she") -> Figure:
    """One horizontal bar per template: log(P(a) / P(b)) in nats, right of zero when the model prefers
    ``a``; the dotted line is the mean over templates. ratios: template -> log-ratio."""
    names = list(ratios)
    values = [float(ratios[n]) for n in names]
    fig, ax = new_figure(width=8.0, height=0.9 + 0.38 * len(names))
    ax.barh(range(len(names)), values, color=["C0" if v >= 0 else "C3" for v in values])
    ax.axvline(0.0, color="black", linewidth=0.8)
    ax.axvline(sum(values) / len(values), color="0.4", linestyle=":", label="mean over templates")
    ax.set_yticks(range(len(names)), names, fontsize=8)
    ax.invert_yaxis()
    ax.legend(fontsize=8, loc="lower right")
    label(ax, f"log(P({a}) / P({b})) [nats]: right prefers '{a}', left '{b}'; ±2.3 is 10 : 1", "", title)
    return finish(fig)
