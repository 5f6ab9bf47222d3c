"""The "How this book was made" page is written from the run's records, not by hand."""

import json

from pipelines import made
from pipelines.publish import toc_with_chapters


def _record(name, number, wall, commit="a" * 40, dirty=False):
    return {"name": name, "chapter": number, "wall_s": wall, "finished": "2026-11-30T12:00:00+00:00",
            "device": "cpu (2 cores)", "parameters": {"profile": "cpu", "seed": 1337},
            "provenance": {"git": {"commit": commit, "dirty": dirty}, "python": "3.11.7",
                           "platform": "Linux-x86_64", "cpu_count": 2,
                           "packages": {"torch": "2.13.0+cpu", "absent": None}}}


def test_page_lists_every_chapter_the_model_the_cards_and_the_versions(tmp_path):
    (tmp_path / "model_cards").mkdir()
    (tmp_path / "model_cards" / "pretrained.md").write_text("# Model card: pretrained\n\n## Intended use\n\nLearning.\n")
    (tmp_path / "manifest.json").write_text(json.dumps(
        {"pretrained": {"summary": {"parameters": 3074496, "val_loss": 3.95561, "steps": 1200}}}))
    page = made.page_markdown([_record("02_optimization", 2, 700.0), _record("01_representation", 1, 90.5)], tmp_path)
    assert page.startswith("# How this book was made\n") and page.count("\n# ") == 0
    assert page.index("{doc}`01_representation`") < page.index("{doc}`02_optimization`")
    assert "| 11.7 min |" in page and "| 90 s |" in page and "13.2 min" in page
    assert f"git checkout {'a' * 40}" in page and "--profile cpu --seed 1337" in page
    assert "| parameters | 3,074,496 |" in page and "| validation loss (nats/token) | 3.956 |" in page
    assert "### Model card: pretrained" in page and "#### Intended use" in page
    assert "| torch | 2.13.0+cpu |" in page and "absent" not in page


def test_page_says_when_chapters_came_from_different_commits(tmp_path):
    page = made.page_markdown([_record("01_representation", 1, 10, "b" * 40, dirty=True),
                               _record("02_optimization", 2, 20, "c" * 40)], tmp_path)
    assert "<the commit of each chapter below>" in page and "| yes |" in page
    assert "## The pretrained model" not in page and "## Model cards" not in page


def test_page_is_listed_after_the_chapters_and_before_the_other_pages():
    toc = {"format": "jb-book", "root": "intro", "chapters": [{"file": "glossary"}, {"file": "references"}]}
    pages = ["chapters/01_representation", "chapters/02_optimization", "chapters/how_this_book_was_made"]
    assert [e["file"] for e in toc_with_chapters(toc, pages)["chapters"]] == pages + ["glossary", "references"]
