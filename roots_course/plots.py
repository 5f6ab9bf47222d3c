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
