"""Model cards, generated from what the course recorded rather than written by hand.

Mitchell et al. ("Model Cards for Model Reporting", FAT* 2019) ask every released model to state what
it is for, what it was trained on, how it was evaluated, where it fails and what it cost. A card
written by hand drifts from the model; here each card is assembled from the checkpoint's own files
(``config.json``, ``state.json``), the manifest, the metrics files chapters 2 and 4 wrote, and the
measurements of chapter 5, so regenerating the artifacts regenerates the cards.

Every card has the sections of ``SECTIONS``; a number that was not recorded is written "not recorded",
never guessed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from roots_course.store.artifacts import ArtifactPaths, atomic_write_text

SECTIONS = ("Model details", "Intended use", "Training data", "Metrics", "Limitations", "Cost")
NOT_RECORDED = "not recorded"

KINDS = {"pretraining": "a language model pretrained from scratch (chapter 2)",
         "full fine-tuning": "fine-tuned on one task, every parameter trained (chapter 4)",
         "LoRA": "fine-tuned on one task with LoRA adapters, merged into the weights (chapter 4)",
         "instruction tuning": "instruction-tuned on all of the course's tasks at once (chapter 4)",
         "classifier": "a classification head on the pretrained model (chapter 4)"}

# checkpoint-name prefix -> the method name chapter 4 uses in metrics/tasks.json
_METHODS = {"finetuned_": "full fine-tuning", "lora_": "LoRA", "instruct": "instruction-tuned"}


@dataclass
class CardInputs:
    """Everything one card says; ``render`` turns it into Markdown."""

    name: str
    kind: str
    profile: str
    architecture: dict[str, Any]
    parameters: int | None
    trained_parameters: int | None
    base: str | None  # the checkpoint it was fine-tuned from
    provenance: dict[str, Any]  # created, commit, device
    intended: list[str]
    out_of_scope: list[str]
    data: str  # Markdown
    metrics: list[dict[str, Any]]  # rows: metric, value, measured on, source
    limitations: list[str]
    cost: dict[str, Any]  # from cost.estimate, plus the assumptions
    notes: list[str] = field(default_factory=list)


def _read(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None


def _fmt(value: Any, spec: str = ",", unit: str = "") -> str:
    """``value`` formatted with its unit, or "not recorded"."""
    if value is None:
        return NOT_RECORDED
    if isinstance(value, float) and spec == ",":
        text = f"{value:,.4g}"
    else:
        text = format(value, spec)
    return f"{text} {unit}" if unit else text


def task_of(name: str, state: Mapping[str, Any] | None) -> str | None:
    """The chapter-4 task a checkpoint was tuned for ('all' for the instruction-tuned model)."""
    if state and state.get("task"):
        return str(state["task"])
    for prefix in ("finetuned_", "lora_", "classifier_"):
        if name.startswith(prefix):
            return name[len(prefix):]
    return "all" if name == "instruct" else None


def task_metrics(tasks_summary: Mapping[str, Any] | None, name: str, task: str | None) -> list[dict[str, Any]]:
    """Rows of test scores for checkpoint ``name`` from chapter 4's ``metrics/tasks.json`` (empty when
    that file, the task or the method is missing)."""
    if not tasks_summary or not task:
        return []
    rows = []
    if name.startswith("classifier_"):
        for method, entry in (tasks_summary.get("classification") or {}).items():
            if method.startswith("fine-tuned") and isinstance(entry.get("accuracy"), Mapping):
                rows.append(_score_row(f"{task}: accuracy ({method})", entry["accuracy"]))
        return rows
    method = next((m for prefix, m in _METHODS.items() if name.startswith(prefix)), None)
    tasks = tasks_summary.get("tasks") or {}
    for t in (tasks if task == "all" else [task]):
        entry = ((tasks.get(t) or {}).get("methods") or {}).get(method) or {}
        for metric in (tasks.get(t) or {}).get("metrics", []):
            if isinstance(entry.get(metric), Mapping):
                rows.append(_score_row(f"{t}: {metric}", entry[metric]))
        if entry.get("answer_loss") is not None:
            rows.append({"metric": f"{t}: loss on test answers (nats/token)", "value": f"{entry['answer_loss']:.3f}",
                         "measured on": "held-out test split", "source": "metrics/tasks.json"})
    return rows


def _score_row(metric: str, score: Mapping[str, Any]) -> dict[str, Any]:
    interval = f" [{score['low']:.3f}, {score['high']:.3f}]" if "low" in score and "high" in score else ""
    return {"metric": metric, "value": f"{score['value']:.3f}{interval}",
            "measured on": f"held-out test split ({score.get('n', '?')} examples; 95% interval)",
            "source": "metrics/tasks.json"}


def intended_use(kind: str, task: str | None) -> tuple[list[str], list[str]]:
    """(intended uses, out-of-scope uses) of a course model of ``kind``."""
    common_out = ["Anything a person relies on: documentation, code to run, answers to questions, advice.",
                  "Decisions about people, and text that speaks for or about people.",
                  "Languages other than English, and text unlike Python's documentation."]
    if kind == "pretraining":
        return (["Teaching and study: how a language model is trained, how it generates, what it memorises, "
                 "what it costs.",
                 "A base model for the course's fine-tuning exercises (chapter 4)."], common_out)
    what = "all four of the course's tasks, told apart by their instruction line" if task == "all" else \
        f"the course's `{task}` task, in the prompt format chapter 4 trains it with"
    return ([f"Teaching: {what}.", "Comparing fine-tuning methods on exact, held-out metrics."],
            common_out + ["Any other task or prompt format: the model was trained on one narrow format."])


def render(card: CardInputs) -> str:
    """The card as Markdown, with every section of SECTIONS."""
    a = card.architecture
    p = card.provenance
    c = card.cost
    lines = [f"# Model card: `{card.name}`", "",
             f"*Generated by `roots_course.society.model_card` from the `{card.profile}` profile's artifacts: the "
             "checkpoint's configuration and state, the manifest and the metrics files. Nothing here is "
             "written by hand.*", "",
             "## Model details", "",
             f"- **Kind**: {KINDS.get(card.kind, card.kind)}" + (f", starting from `{card.base}`" if card.base else "") + ".",
             f"- **Architecture**: a decoder-only Transformer (GPT) with {a.get('n_layer')} layers, "
             f"{a.get('n_head')} heads, width {a.get('n_embd')}, a window of {a.get('block_size')} tokens, "
             f"a vocabulary of {a.get('vocab_size')} byte-level BPE tokens, {a.get('position')} positions.",
             f"- **Parameters**: {_fmt(card.parameters)}; trained in this run: {_fmt(card.trained_parameters)}.",
             f"- **Created**: {p.get('created') or NOT_RECORDED}; commit `{(p.get('commit') or NOT_RECORDED)[:12]}`; "
             f"trained on {p.get('device') or NOT_RECORDED}.",
             *[f"- {note}" for note in card.notes], "",
             "## Intended use", "",
             *[f"- {u}" for u in card.intended], "",
             "**Out of scope:**", "",
             *[f"- {u}" for u in card.out_of_scope], "",
             "## Training data", "", card.data, "",
             "## Metrics", ""]
    if card.metrics:
        lines += ["| metric | value | measured on | source |", "| --- | --- | --- | --- |"]
        lines += [f"| {r['metric']} | {r['value']} | {r['measured on']} | {r['source']} |" for r in card.metrics]
    else:
        lines.append(f"No metrics recorded for this model ({NOT_RECORDED}).")
    lines += ["", "## Limitations", "", *[f"- {x}" for x in card.limitations], "",
              "## Cost", "",
              f"- **Training compute**: {_fmt(c.get('flops'), '.3g', 'FLOPs')}"
              + (" (an upper bound: rows shorter than the window cost less)" if c.get("flops") and not c.get("tokens_exact")
                 else "") + f"; tokens: {_fmt(c.get('tokens'))}; steps: {_fmt(c.get('steps'))}.",
              f"- **Wall time**: {_fmt(c.get('wall_s'), ',.1f', 's')}; device: {c.get('device') or NOT_RECORDED}.",
              f"- **Energy and carbon (estimates)**: energy {_fmt(c.get('energy_Wh'), ',.3g', 'Wh')}, emissions "
              f"{_fmt(c.get('carbon_g'), ',.3g', 'g CO2e')}, assuming {c.get('power_watts')} W drawn, a PUE of "
              f"{c.get('pue')} and a grid emitting {c.get('grid_g_per_kwh')} g CO2e per kWh. These are "
              "assumptions, not measurements; change them and the estimate scales in proportion.", ""]
    return "\n".join(lines)


def demote_headings(markdown: str, levels: int = 2) -> str:
    """``markdown`` with every heading ``levels`` deeper (# -> ###), to show a card inside a page whose
    own headings it must not compete with."""
    return "\n".join("#" * levels + line if line.startswith("#") else line for line in markdown.splitlines())


def missing_sections(markdown: str) -> list[str]:
    """The sections of SECTIONS that ``markdown`` lacks (a '## ' heading each)."""
    headings = {line[3:].strip() for line in markdown.splitlines() if line.startswith("## ")}
    return [s for s in SECTIONS if s not in headings]


def build_cards(paths: ArtifactPaths, profile: str, cost_rows: Sequence[Mapping[str, Any]],
                assumptions: Mapping[str, float], data_markdown: str,
                pretrained_findings: Sequence[dict[str, Any]], limitations: Sequence[str]) -> dict[str, str]:
    """One Markdown card per trained GPT in ``cost_rows`` (from ``cost.estimate``).

    ``pretrained_findings``: metric rows this chapter measured on the pretrained model; ``limitations``:
    sentences backed by those measurements, shared by every card (a fine-tuned model inherits them).
    """
    manifest = _read(paths.manifest) or {}
    summary = _read(paths.metric("pretrained_summary")) or {}
    tasks_summary = _read(paths.metric("tasks"))
    cards = {}
    for row in cost_rows:
        name = row["name"]
        folder = paths.checkpoint(name)
        config = _read(folder / "config.json") or {}
        state = _read(folder / "state.json")
        kind = row["kind"]
        task = None if kind == "pretraining" else task_of(name, state)
        section = manifest.get(name) or (manifest.get("tasks") if kind != "pretraining" else None) or {}
        metrics: list[dict[str, Any]] = []
        if kind == "pretraining":
            for key, label in (("val_loss", "validation loss (nats/token)"), ("val_perplexity", "validation perplexity"),
                               ("train_loss", "training loss (nats/token)")):
                if summary.get(key) is not None:
                    metrics.append({"metric": label, "value": summary[key],
                                    "measured on": "validation split (modules never trained on)" if "val" in key
                                    else "training batches, last log row",
                                    "source": "metrics/pretrained_summary.json"})
            metrics += list(pretrained_findings)
            data = data_markdown
            notes = []
        else:
            metrics = task_metrics(tasks_summary, name, task)
            data = (f"Prompt–answer pairs of the course's `{task}` task" if task != "all" else
                    "Prompt–answer pairs of all four of the course's tasks") + \
                ", generated by `roots_course.tasks.task_data` (no third-party text); held-out test items never appear in " \
                "training. It starts from `pretrained`, whose data is described in that model's card."
            notes = [f"Method recorded in the checkpoint: {state.get('method')}." if state and state.get("method") else
                     "Method: a classification head on the pretrained model (chapter 4)." if kind == "classifier" else
                     "Method: not recorded."]
        if tasks_summary is None and kind != "pretraining":
            notes.append("Chapter 4's metrics file (metrics/tasks.json) was not found: run chapter 4 to fill in "
                         "the metrics.")
        intended, out = intended_use(kind, task)
        lims = list(limitations) if kind == "pretraining" else \
            list(limitations) + ["Fine-tuning teaches a format and a narrow skill; the model keeps every limitation "
                                 "of `pretrained` (see its card)."]
        cards[name] = render(CardInputs(
            name=name, kind=kind, profile=profile, architecture=config.get("model") or {},
            parameters=row.get("parameters"), trained_parameters=row.get("trained_parameters"),
            base=None if kind == "pretraining" else "pretrained",
            provenance={"created": section.get("created"), "commit": (section.get("git") or {}).get("commit"),
                        "device": row.get("device")},
            intended=intended, out_of_scope=out, data=data, metrics=metrics, limitations=lims,
            cost={**row, **assumptions}, notes=notes))
    return cards


def write_cards(paths: ArtifactPaths, cards: Mapping[str, str]) -> list[Path]:
    """Write each card to ``<artifacts>/<profile>/model_cards/<name>.md`` (atomically); return the paths."""
    folder = paths.dir / "model_cards"
    return [atomic_write_text(folder / f"{name}.md", text.rstrip() + "\n") for name, text in cards.items()]
