"""Tests of the corpora: offline sources, the split rule, errors that name the culprit."""

import ast
import inspect
import json
import time
from dataclasses import dataclass

import datasets
import pytest
import torch
from datasets import Dataset, DatasetDict

from roots_course.core import corpus_split, data, stdlib_corpus
from roots_course.errors import DataError
from roots_course.core.grammar import StoryGrammar


def _chars(ds: Dataset) -> int:
    return sum(len(t) for t in ds["text"])


def _check_shape(ds: DatasetDict) -> None:
    assert set(ds) == {"train", "validation"}
    for split in ds.values():
        assert split.column_names == ["text", "source"]
        assert split.num_rows > 0


# ---- the split rule -------------------------------------------------------------------------------
def test_split_rule_is_by_document_deterministic_and_hits_the_char_fraction():
    rows = [(f"doc{i}", "x" * (50 + (i * 37) % 400)) for i in range(300)]
    train, val = corpus_split.split_rows(rows, 0.1, seed=0, what="test")
    assert sorted(train + val) == sorted(rows)  # every document exactly once
    assert {s for s, _ in train}.isdisjoint({s for s, _ in val})
    total = sum(len(t) for _, t in rows)
    assert sum(len(t) for _, t in val) / total == pytest.approx(0.1, abs=0.005)
    # Depends on the names, not on the order they are listed in; the seed changes it.
    again = corpus_split.split_rows(list(reversed(rows)), 0.1, seed=0, what="test")
    assert sorted(again[1]) == sorted(val)
    other = corpus_split.split_rows(rows, 0.1, seed=1, what="test")
    assert sorted(other[1]) != sorted(val)


def test_split_rule_keeps_both_splits_with_few_documents():
    rows = [("big", "x" * 1000), ("small", "y" * 10)]
    train, val = corpus_split.split_rows(rows, 0.1, seed=0, what="test")
    assert train and val
    with pytest.raises(DataError, match="at least 2"):
        corpus_split.split_rows(rows[:1], 0.1, seed=0, what="test")
    with pytest.raises(DataError, match="val_fraction"):
        corpus_split.split_rows(rows, 0.0, seed=0, what="test")


# ---- the default corpus -----------------------------------------------------------------------
def test_python_docs_slice_is_small_deterministic_and_split_by_module():
    ds = stdlib_corpus.python_docs_corpus(max_chars=60_000)
    _check_shape(ds)
    train, val = ds["train"], ds["validation"]
    assert 50_000 < _chars(train) + _chars(val) <= 60_000
    assert 0.05 < _chars(val) / (_chars(train) + _chars(val)) < 0.2
    assert set(train["source"]).isdisjoint(val["source"])  # one row per module: no module in both
    again = stdlib_corpus.python_docs_corpus(max_chars=60_000)
    assert again["validation"]["source"] == val["source"]
    assert again["train"]["text"] == train["text"]


def test_full_python_docs_corpus_is_unique_split_and_cached(tmp_path, monkeypatch):
    start = time.perf_counter()
    ds = stdlib_corpus.python_docs_corpus(cache_dir=tmp_path)
    assert time.perf_counter() - start < 30  # measured about 3 s on a 2-core machine
    _check_shape(ds)
    train, val = ds["train"], ds["validation"]
    total = _chars(train) + _chars(val)
    assert 1_500_000 < total < 4_000_000  # about 2.1 M characters on Python 3.11
    assert _chars(val) / total == pytest.approx(0.1, abs=0.01)
    sources = list(train["source"]) + list(val["source"])
    assert len(sources) == len(set(sources))
    assert any(s.startswith("pydoc:") for s in sources) and "json" in sources
    # A docstring appears once in the whole corpus, though json re-exports it.
    text = data.corpus_text(train) + data.corpus_text(val)
    doc = inspect.cleandoc(json.dumps.__doc__).strip()
    assert text.count(doc) == 1

    # The second call loads the saved copy and never extracts again.
    def no_extraction():
        raise AssertionError("the cache was not used")

    monkeypatch.setattr(stdlib_corpus, "_python_docs_rows", no_extraction)
    cached = stdlib_corpus.python_docs_corpus(cache_dir=tmp_path)
    assert cached["validation"]["source"] == val["source"]
    assert cached["train"]["text"] == train["text"]


def test_stdlib_source_rows_are_python_files():
    ds = stdlib_corpus.stdlib_source_corpus(max_chars=150_000)
    _check_shape(ds)
    assert _chars(ds["train"]) + _chars(ds["validation"]) <= 150_000
    ast.parse(ds["validation"]["text"][0])  # a whole module, parseable
    assert not any(".test." in s or s.startswith("test.") for s in ds["train"]["source"])


# ---- local files ------------------------------------------------------------------------------------
def test_text_file_is_split_on_a_line_boundary(tmp_path):
    lines = [f"line number {i} of the file\n" for i in range(200)]
    path = tmp_path / "book.txt"
    path.write_text("".join(lines), encoding="utf-8")
    ds = data.text_file_corpus(path)
    _check_shape(ds)
    train, val = ds["train"]["text"][0], ds["validation"]["text"][0]
    assert train + val == "".join(lines)  # training first, nothing lost
    assert train.endswith("\n") and val in "".join(lines[150:])
    assert len(val) / (len(train) + len(val)) == pytest.approx(0.1, abs=0.02)
    assert ds["train"]["source"] == [str(path)]


def test_text_folder_is_split_by_file(tmp_path):
    for i in range(12):
        (tmp_path / "sub").mkdir(exist_ok=True)
        (tmp_path / ("sub" if i % 2 else ".") / f"f{i}.{['txt', 'md', 'py'][i % 3]}").write_text(
            f"# file {i}\n" + "words and more words\n" * (5 + i), encoding="utf-8"
        )
    (tmp_path / "image.bin").write_bytes(b"\xff\xd8\xff")  # ignored: not a text extension
    (tmp_path / ".hidden").mkdir()
    (tmp_path / ".hidden" / "secret.txt").write_text("not me", encoding="utf-8")
    (tmp_path / "blank.txt").write_text("  \n", encoding="utf-8")  # skipped: blank
    ds = data.text_file_corpus(tmp_path)
    _check_shape(ds)
    sources = list(ds["train"]["source"]) + list(ds["validation"]["source"])
    assert len(sources) == 12 and len(set(sources)) == 12
    assert "sub/f1.md" in sources and not any("secret" in s or "blank" in s for s in sources)


@pytest.mark.parametrize("content", [b"", b"  \n\t\n"])
def test_empty_file_is_refused_by_name(tmp_path, content):
    path = tmp_path / "empty.txt"
    path.write_bytes(content)
    with pytest.raises(DataError, match="empty.txt.*empty"):
        data.text_file_corpus(path)


def test_empty_folder_and_missing_path_are_refused_by_name(tmp_path):
    with pytest.raises(DataError, match=str(tmp_path)):
        data.text_file_corpus(tmp_path)
    with pytest.raises(DataError, match="nowhere.txt"):
        data.text_file_corpus(tmp_path / "nowhere.txt")


def test_non_utf8_names_file_and_byte_offset(tmp_path):
    path = tmp_path / "latin1.txt"
    path.write_bytes("café ok\n".encode("utf-8") + "naïve\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"latin1\.txt.*not UTF-8.*0xef at byte offset 11"):
        data.text_file_corpus(path)
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "good.txt").write_text("fine\n" * 10, encoding="utf-8")
    path.rename(folder / "bad.md")
    with pytest.raises(DataError, match=r"bad\.md.*byte offset 11"):
        data.text_file_corpus(folder)


# ---- the hub -------------------------------------------------------------------------------------
def test_hub_offline_fails_at_once_with_instructions(monkeypatch):
    def must_not_be_called(*args, **kwargs):
        raise AssertionError("load_dataset must not be called when offline")

    monkeypatch.setattr(datasets, "load_dataset", must_not_be_called)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DataError, match=r"offline.*HF_HUB_OFFLINE.*HF_DATASETS_OFFLINE=0"):
        data.hub_corpus("some/corpus")


def test_hub_online_path_with_a_stand_in_loader(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    calls = []

    def fake_load_dataset(name, config=None, split=None, streaming=False):
        calls.append((name, config, split, streaming))
        rows = {"text": [f"document {i} " * 5 for i in range(40)] + [""], "id": list(range(41))}
        return list(Dataset.from_dict(rows)) if streaming else Dataset.from_dict(rows)

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    ds = data.hub_corpus("org/corpus", config="small")
    _check_shape(ds)
    assert ds["train"].num_rows + ds["validation"].num_rows == 40  # the blank row is dropped
    assert ds["train"]["source"][0].startswith("org/corpus/small:train:")
    ds = data.hub_corpus("org/corpus", max_rows=10)
    assert ds["train"].num_rows + ds["validation"].num_rows == 10
    assert calls[-1] == ("org/corpus", None, "train", True)
    with pytest.raises(DataError, match=r"no column 'body'.*'text', 'id'"):
        data.hub_corpus("org/corpus", text_column="body")


def test_hub_network_failure_becomes_a_data_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "0")

    def no_network(*args, **kwargs):
        raise ConnectionError("Failed to resolve 'huggingface.co'")

    monkeypatch.setattr(datasets, "load_dataset", no_network)
    with pytest.raises(DataError, match=r"org/corpus.*ConnectionError.*network"):
        data.hub_corpus("org/corpus")


# ---- the grammar corpus and the dispatcher -----------------------------------------------------
@pytest.mark.slow
def test_grammar_corpus_rows_floor_and_determinism():
    ds, floor = data.grammar_corpus(50, seed=3)
    _check_shape(ds)
    assert (ds["train"].num_rows, ds["validation"].num_rows) == (45, 5)
    assert ds["train"]["source"][:2] == ["story:0", "story:1"]
    assert ds["validation"]["source"][-1] == "story:49"
    assert floor == pytest.approx(StoryGrammar().entropy_bits_per_char())
    again, _ = data.grammar_corpus(50, seed=3)
    assert again["train"]["text"] == ds["train"]["text"]
    grammar = StoryGrammar()
    for story in ds["validation"]["text"]:
        grammar.parse(story)
    # Stories contain no separator, so the training string splits back into its stories.
    text = data.corpus_text(ds["train"], sep=grammar.separator)
    assert text.split(grammar.separator) == list(ds["train"]["text"])


def test_load_corpus_dispatches_and_names_bad_specs(tmp_path):
    ds = data.load_corpus({"kind": "grammar", "n_stories": 20, "seed": 1})
    assert ds["train"]["text"] == data.grammar_corpus(20, seed=1)[0]["train"]["text"]
    path = tmp_path / "t.txt"
    path.write_text("a line\n" * 30, encoding="utf-8")

    @dataclass
    class Spec:  # one spec class for all kinds: fields that do not apply are None
        kind: str
        path: str | None = None
        max_chars: int | None = None
        name: str | None = None

    assert data.load_corpus(Spec(kind="text", path=str(path)))["train"].num_rows == 1
    assert data.load_corpus({"kind": "python_docs", "max_chars": 5_000})["validation"].num_rows
    with pytest.raises(DataError, match="allowed kinds: grammar, hub, python_docs, python_docs_and_source, stdlib_source, text"):
        data.load_corpus({"kind": "wikipedia"})
    with pytest.raises(DataError, match="does not take colour"):
        data.load_corpus({"kind": "grammar", "n_stories": 5, "colour": "red"})
    with pytest.raises(DataError, match="needs path"):
        data.load_corpus({"kind": "text"})


# ---- helpers --------------------------------------------------------------------------------------
def test_corpus_text_joins_one_split():
    ds = DatasetDict({"train": Dataset.from_dict({"text": ["a", "b"], "source": ["x", "y"]})})
    assert data.corpus_text(ds["train"]) == "a\n\nb"
    assert data.corpus_text(ds["train"], sep="|") == "a|b"
    with pytest.raises(DataError, match="one split"):
        data.corpus_text(ds)


def test_unigram_entropy_bits():
    assert data.unigram_entropy_bits("aabb") == pytest.approx(1.0)
    assert data.unigram_entropy_bits("aaaa") == 0.0
    assert data.unigram_entropy_bits([0, 1, 2, 3]) == pytest.approx(2.0)
    assert data.unigram_entropy_bits(torch.tensor([[5, 5], [7, 7]])) == pytest.approx(1.0)
    with pytest.raises(DataError):
        data.unigram_entropy_bits([])
