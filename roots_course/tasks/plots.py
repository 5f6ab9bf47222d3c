"""Chapter 4's figures: each method's score on each task, and fine-tuning curves."""

from __future__ import annotations

from matplotlib.figure import Figure

from roots_course.course.plots import finish, label, new_figure


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
