"""The book's "How this book was made" page, written at each publish from the run's own records.

It lives in ``chapters/`` beside the published notebooks so that it is swapped in with them, in the
same atomic step, and can never describe a run other than the one whose chapters the book shows.
Sources: each chapter's run record (``executed/<name>.run.json``), the library's sections of
``manifest.json`` (the pretrained model's summary) and the model cards chapter 5 wrote.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from roots_course.society.model_card import demote_headings

PAGE = "how_this_book_was_made.md"


def _cell(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def _seconds(value: Any) -> str:
    if not isinstance(value, (int, float)):
        return "unknown"
    return f"{value:.0f} s" if value < 120 else f"{value / 60:.1f} min"


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _chapters_table(records: list[dict[str, Any]]) -> list[str]:
    rows = ["| chapter | executed (UTC) | wall time | device | commit | uncommitted changes |",
            "| --- | --- | ---: | --- | --- | --- |"]
    for record in records:
        git = (record.get("provenance") or {}).get("git") or {}
        commit = (git.get("commit") or "unknown")[:12]
        dirty = {True: "yes", False: "no"}.get(git.get("dirty"), "unknown")
        rows.append(f"| {{doc}}`{record['name']}` | {_cell(record.get('finished'))} | {_seconds(record.get('wall_s'))} "
                    f"| {_cell(record.get('device'))} | `{commit}` | {dirty} |")
    total = sum(r["wall_s"] for r in records if isinstance(r.get("wall_s"), (int, float)))
    return rows + ["", f"All chapters together: **{_seconds(total)}** of notebook execution."]


PRETRAINED_ROWS = (
    ("parameters", "parameters", "{:,}"),
    ("non_embedding_parameters", "parameters outside the embedding table", "{:,}"),
    ("vocab_size", "vocabulary (BPE tokens)", "{:,}"),
    ("train_tokens", "training tokens", "{:,}"),
    ("validation_tokens", "validation tokens", "{:,}"),
    ("steps", "optimizer steps", "{:,}"),
    ("train_loss", "final training loss (nats/token)", "{:.3f}"),
    ("val_loss", "validation loss (nats/token)", "{:.3f}"),
    ("val_perplexity", "validation perplexity", "{:.1f}"),
    ("tokens_per_s", "training throughput (tokens/s)", "{:,.0f}"),
    ("train_wall_s", "training wall time (s)", "{:,.0f}"),
    ("device", "device", "{}"),
)


def _pretrained_table(summary: dict[str, Any]) -> list[str]:
    rows = ["| what | value |", "| --- | --- |"]
    for key, label, fmt in PRETRAINED_ROWS:
        if summary.get(key) is not None:
            rows.append(f"| {label} | {_cell(fmt.format(summary[key]))} |")
    return rows


def page_markdown(records: list[dict[str, Any]], profile_dir: Path) -> str:
    """The page, for the chapters whose run ``records`` are being published, in chapter order."""
    records = sorted(records, key=lambda r: r.get("chapter", 0))
    first = records[0] if records else {}
    params = first.get("parameters") or {}
    prov = first.get("provenance") or {}
    commits = sorted({((r.get("provenance") or {}).get("git") or {}).get("commit") or "unknown" for r in records})
    profile, seed = params.get("profile", "?"), params.get("seed", "?")
    lines = [
        "# How this book was made",
        "",
        ("Nothing in this book was typed in by hand: every number, table and figure in the chapters is an output "
        f"of the course's own code, executed by the ROOTS pipeline with the `{profile}` profile and seed {seed}. "
        "This page is written by the same pipeline each time it publishes the book, from the records the run left "
        f"in `artifacts/{profile}/`, so it always describes the chapters you are reading."),
        "",
        "To make the same book on your machine (see {doc}`/intro` for setting up):",
        "",
        "```bash",
        f"git checkout {commits[0] if len(commits) == 1 else '<the commit of each chapter below>'}",
        f"python -m pipelines run --profile {profile} --seed {seed}",
        "```",
        "",
        ("On another machine the numbers will be close but not bit-identical: thread counts, CPU instruction sets "
        "and library versions change the order of floating-point sums."),
        "",
        "## The chapters",
        "",
        *_chapters_table(records),
    ]
    summary = (_read_json(profile_dir / "manifest.json").get("pretrained") or {}).get("summary") or {}
    if summary:
        lines += ["", "## The pretrained model", "",
                  "Chapter 2 trains it; every later chapter starts from it.", "", *_pretrained_table(summary)]
    cards = sorted((profile_dir / "model_cards").glob("*.md"))
    if cards:
        lines += ["", "## Model cards", "",
                  "Chapter 5 writes a card for each model the course trained, from the same records."]
        for card in cards:
            lines += ["", demote_headings(card.read_text(encoding="utf-8").strip(), levels=2)]
    packages = prov.get("packages") or {}
    if packages or prov.get("python"):
        lines += ["", "## Software", "", "| package | version |", "| --- | --- |",
                  f"| Python | {_cell(prov.get('python'))} |",
                  *(f"| {_cell(name)} | {_cell(version)} |" for name, version in packages.items() if version),
                  "", f"Machine: {_cell(prov.get('platform'))}, {prov.get('cpu_count')} CPU cores."]
    lines += ["", (f"The complete records: `artifacts/{profile}/manifest.json` and "
                  f"`artifacts/{profile}/executed/*.run.json`.")]
    return "\n".join(lines) + "\n"
