"""Tests of roots_course.society.datasheet: counts computed from the data, and arithmetic that adds up."""

from datasets import Dataset, DatasetDict

from roots_course.society import datasheet as D


def corpus() -> DatasetDict:
    train = {"text": ["Return the value.\n>>> f(1)\n1", "Mail ann@example.org or see https://python.org/x.",
                      "Τα δεδομένα: 数据 café"],
             "source": ["pydoc:values", "json", "locale"]}
    val = {"text": ["Contact bob@lists.example.net.\n>>> g()"], "source": ["csv"]}
    return DatasetDict({"train": Dataset.from_dict(train), "validation": Dataset.from_dict(val)})


def test_counts_add_up_and_match_the_text():
    sheet = D.datasheet(corpus(), "python_docs", tokens={"train": 30, "validation": 10})
    tr, va, total = sheet["splits"]["train"], sheet["splits"]["validation"], sheet["total"]
    texts = list(corpus()["train"]["text"]) + list(corpus()["validation"]["text"])
    assert total["characters"] == sum(len(t) for t in texts) == tr["characters"] + va["characters"]
    assert total["utf8_bytes"] == sum(len(t.encode()) for t in texts) > total["characters"]
    assert (tr["documents"], va["documents"], total["tokens"]) == (3, 1, 40)
    assert tr["kinds"] == {"pydoc topic": 1, "module docstrings": 2} and sum(total["kinds"].values()) == 4
    assert (tr["doctest_lines"], va["doctest_lines"]) == (1, 1)
    assert (total["emails"], total["urls"]) == (2, 1)
    assert sheet["email_domains"] == {"example.org": 1, "lists.example.net": 1}
    assert sheet["url_hosts"] == {"python.org": 1}
    assert sum(sheet["character_classes"].values()) == total["characters"]
    assert sheet["validation_share_of_characters"] == va["characters"] / total["characters"]


def test_character_classes_name_writing_systems():
    assert D.character_class("a") == "ASCII letter" and D.character_class("7") == "ASCII digit"
    assert D.character_class(" ") == "whitespace" and D.character_class("%") == "ASCII punctuation or symbol"
    assert D.character_class("é") == "LATIN letter" and D.character_class("数") == "CJK letter"
    assert D.character_class("δ") == "GREEK letter" and D.character_class("’") == "non-ASCII punctuation"
    classes = D.character_classes("ab 数")
    assert classes == {"ASCII letter": 2, "whitespace": 1, "CJK letter": 1}


def test_license_and_markdown():
    sheet = D.datasheet(corpus(), "python_docs")
    assert "PSF" in sheet["license"] and "tokens" not in sheet["total"]
    info = sheet["license_file"]
    assert set(info) == {"path", "psf_license", "copyright", "sha256"}
    if info["path"] is not None:  # the running Python ships its license: it must be the PSF's
        assert info["psf_license"] and len(info["sha256"]) == 64
    text = D.datasheet_markdown(sheet)
    for needle in ("**License**", "| documents | 3 | 1 | 4 |", "e-mail addresses", "example.org"):
        assert needle in text, needle
    assert "own code" in D.datasheet(corpus(), "grammar")["license"]
    assert D.source_kind("story:3", "grammar") == "story" and D.source_kind("a.txt", "text") == "file"
