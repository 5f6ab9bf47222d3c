"""Figure helpers every chapter's plots share: one look for the whole course (``use_course_style``),
figures sized for the book's text column, labelled axes with units, heat maps, curves and bars, and
readable tick labels on log axes. Each chapter's own figures live in ``roots_course/<chapter>/plots.py``
and are built from these; each plotting function takes data the library computed and returns the
matplotlib Figure, so a notebook shows it and the book keeps it.
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


def plain_log_ticks(axis) -> None:
    """Label a log-scaled axis with plain numbers (20, 50, 100) instead of 2×10¹, on minor ticks too."""
    from matplotlib.ticker import FuncFormatter, LogLocator

    plain = FuncFormatter(lambda value, _: f"{value:g}")
    axis.set_major_formatter(plain)
    axis.set_minor_locator(LogLocator(base=10, subs=(2.0, 5.0)))  # 20, 50, 200, 500 ...: readable, not crowded
    axis.set_minor_formatter(plain)
    axis.set_tick_params(which="minor", labelsize=8)
