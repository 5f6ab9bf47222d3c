"""Chapter 2's own figure: the scaling study (loss against parameters and against compute). Its
other figures are curves and bars drawn with the shared ``roots_course.course.plots``."""

from __future__ import annotations

from matplotlib.figure import Figure

from roots_course.course.plots import finish, label, new_figure, readable_log_axis


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
