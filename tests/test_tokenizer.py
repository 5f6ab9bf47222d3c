"""Tests of the tokenizer interface, CharTokenizer, FastBPETokenizer, train_tokenizer and
load_tokenizer (the from-scratch BPE has its own file, test_bpe.py)."""

from __future__ import annotations

import json

import pydoc_data.topics
import pytest

from roots_course.core.bpe import ByteBPETokenizer, pre_tokenize
from roots_course.errors import CheckpointError, ConfigError, DataError
from roots_course.core.fast_bpe import FastBPETokenizer, _split_for_library, byte_level_alphabet
from roots_course.core.tokenizer import CharTokenizer, Tokenizer
from roots_course.core.tokenizer_kinds import TOKENIZER_KINDS, load_tokenizer, train_tokenizer

DOCS = "\n\n".join(pydoc_data.topics.topics[k] for k in sorted(pydoc_data.topics.topics))
TRAIN = DOCS[:40_000]

NASTY = [
    "",
    " ",
    "\n\n\n",
    "  leading and trailing  ",
    "tabs\t\tand\r\nCRLF",
    "中文分词：我们今天学习语言模型。",
    "emoji 👩‍👩‍👧‍👦 🇫🇷 👍🏽",
    "def f(x):\n    return x ** 2  # square\n",
    "naïve café ﬁ Ω ½² e\u0301",
    "\x00\x01\x7f \u200b\u2028\u00a0",
    "'s 're don't ''quoted''",
]


@pytest.fixture(scope="module")
def trained() -> dict[str, Tokenizer]:
    return {kind: train_tokenizer(kind, TRAIN, vocab_size=400) for kind in TOKENIZER_KINDS}


# --- the common interface -----------------------------------------------------------------------


def test_train_tokenizer_returns_each_kind(trained: dict[str, Tokenizer]) -> None:
    assert isinstance(trained["char"], CharTokenizer)
    assert isinstance(trained["bpe"], ByteBPETokenizer)
    assert isinstance(trained["fast_bpe"], FastBPETokenizer)
    for kind, tok in trained.items():
        assert tok.name == kind and tok.to_dict()["type"] == kind
    assert trained["bpe"].vocab_size == trained["fast_bpe"].vocab_size == 400
    assert train_tokenizer("bpe", TRAIN[:5000]).vocab_size == 512  # the default


def test_unknown_kind_names_the_allowed_kinds() -> None:
    with pytest.raises(ConfigError) as err:
        train_tokenizer("wordpiece", TRAIN)
    message = str(err.value)
    assert "wordpiece" in message and all(kind in message for kind in TOKENIZER_KINDS)


@pytest.mark.parametrize("kind", TOKENIZER_KINDS)
@pytest.mark.parametrize("empty", ["", [], ["", ""]])
def test_empty_text_is_a_data_error(kind: str, empty) -> None:
    with pytest.raises(DataError, match="empty"):
        train_tokenizer(kind, empty, vocab_size=300)


def test_bytes_are_rejected_with_a_hint() -> None:
    with pytest.raises(DataError, match="UTF-8"):
        train_tokenizer("bpe", b"some bytes")


@pytest.mark.parametrize("kind", ["bpe", "fast_bpe"])
def test_bpe_round_trips_anything(trained: dict[str, Tokenizer], kind: str) -> None:
    tok = trained[kind]
    for text in NASTY + [DOCS[-20_000:]]:
        ids = tok.encode(text)
        assert all(0 <= i < tok.vocab_size for i in ids)
        assert tok.decode(ids) == text
        assert b"".join(tok.token_bytes(i) for i in ids) == text.encode("utf-8")


@pytest.mark.parametrize("kind", TOKENIZER_KINDS)
def test_encode_batch_equals_encode(trained: dict[str, Tokenizer], kind: str) -> None:
    tok = trained[kind]
    texts = NASTY + [DOCS[:20_000]]
    assert tok.encode_batch(texts) == [tok.encode(t) for t in texts]


@pytest.mark.parametrize("kind", TOKENIZER_KINDS)
def test_save_load_gives_identical_encodings(
    trained: dict[str, Tokenizer], kind: str, tmp_path
) -> None:
    tok = trained[kind]
    path = tok.save(tmp_path / "sub" / "tokenizer.json")
    assert path.exists() and not list(path.parent.glob("*.tmp"))
    loaded = load_tokenizer(path)
    assert type(loaded) is type(tok) and loaded.vocab_size == tok.vocab_size
    assert loaded.to_dict() == tok.to_dict()
    for text in NASTY + [DOCS[-20_000:]]:
        assert loaded.encode(text) == tok.encode(text)


@pytest.mark.parametrize("kind", ["bpe", "fast_bpe"])
def test_bpe_compresses_unseen_prose(trained: dict[str, Tokenizer], kind: str) -> None:
    held_out = DOCS[-30_000:]
    assert trained[kind].bytes_per_token(held_out) > 1.5
    assert trained["char"].bytes_per_token(held_out) < 1.1  # about one id per (ASCII) character


@pytest.mark.parametrize("kind", TOKENIZER_KINDS)
def test_decode_rejects_unknown_ids(trained: dict[str, Tokenizer], kind: str) -> None:
    tok = trained[kind]
    for bad in (tok.vocab_size, -1):
        with pytest.raises(DataError, match=str(bad)):
            tok.decode([0, bad])


# --- load_tokenizer errors name the file ----------------------------------------------------------


def test_missing_file(tmp_path) -> None:
    path = tmp_path / "nope.json"
    with pytest.raises(CheckpointError, match="nope.json.*not found"):
        load_tokenizer(path)


@pytest.mark.parametrize("kind", TOKENIZER_KINDS)
def test_truncated_file(trained: dict[str, Tokenizer], kind: str, tmp_path) -> None:
    path = trained[kind].save(tmp_path / "cut.json")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="cut.json.*not valid JSON"):
        load_tokenizer(path)


def test_unknown_type(tmp_path) -> None:
    path = tmp_path / "odd.json"
    path.write_text(json.dumps({"type": "sentencepiece", "format_version": 1}))
    with pytest.raises(CheckpointError) as err:
        load_tokenizer(path)
    assert "odd.json" in str(err.value) and "sentencepiece" in str(err.value)
    assert "fast_bpe" in str(err.value)
    path.write_text("[1, 2, 3]")
    with pytest.raises(CheckpointError, match="odd.json"):
        load_tokenizer(path)


def test_altered_contents(trained: dict[str, Tokenizer], tmp_path) -> None:
    cases = {
        "char": lambda d: d.update(chars=["a", "a"]),
        "bpe": lambda d: d.update(merges="not a list"),
        "fast_bpe": lambda d: d.update(tokenizer_json='{"model": 1}'),
    }
    for kind, alter in cases.items():
        data = trained[kind].to_dict()
        alter(data)
        path = tmp_path / f"altered_{kind}.json"
        path.write_text(json.dumps(data))
        with pytest.raises(CheckpointError, match=f"altered_{kind}.json"):
            load_tokenizer(path)
    data = trained["bpe"].to_dict() | {"format_version": 99}
    path = tmp_path / "future.json"
    path.write_text(json.dumps(data))
    with pytest.raises(CheckpointError, match="future.json.*format_version"):
        load_tokenizer(path)


# --- CharTokenizer ------------------------------------------------------------------------------


def test_char_vocabulary_is_sorted_characters_plus_unk_last() -> None:
    tok = CharTokenizer.train("hello world")
    assert tok.chars == sorted(set("hello world"))
    assert tok.unk_id == len(tok.chars) == tok.vocab_size - 1
    assert tok.encode("hello") == [tok.chars.index(c) for c in "hello"]
    assert tok.decode(tok.encode("hello world")) == "hello world"


def test_char_unknown_characters_map_to_unk_never_dropped() -> None:
    tok = CharTokenizer.train("abc")
    ids = tok.encode("abXcé😀")
    assert len(ids) == 6  # one id per character, nothing dropped
    assert ids == [0, 1, tok.unk_id, 2, tok.unk_id, tok.unk_id]
    assert tok.decode(ids) == "ab\ufffdc\ufffd\ufffd"
    assert tok.tokens("aX") == ["a", "\ufffd"]


def test_char_train_on_documents_and_nasty_round_trip() -> None:
    tok = CharTokenizer.train(NASTY)
    for text in NASTY:
        assert tok.decode(tok.encode(text)) == text
    with pytest.raises(ConfigError, match="single characters"):
        CharTokenizer(["ab"])


# --- FastBPETokenizer details -------------------------------------------------------------------


def test_byte_level_alphabet_is_the_librarys() -> None:
    from tokenizers import pre_tokenizers

    alphabet = byte_level_alphabet()
    assert len(set(alphabet)) == 256
    assert set(alphabet) == set(pre_tokenizers.ByteLevel.alphabet())
    assert alphabet[ord(" ")] == "\u0120" and alphabet[ord("A")] == "A"


def test_split_for_library_keeps_pre_tokens_whole() -> None:
    text = DOCS[:60_000]
    pieces = _split_for_library(text, size=1000)
    assert len(pieces) > 20 and "".join(pieces) == text
    assert [w for p in pieces for w in pre_tokenize(p)] == pre_tokenize(text)
    assert _split_for_library("中文" * 5000, size=1000) == ["中文" * 5000]  # no safe cut: whole


def test_fast_long_text_encodes_like_short_pieces(trained: dict[str, Tokenizer]) -> None:
    # encode() of a long text goes through _split_for_library and encode_batch; must not matter.
    fast = trained["fast_bpe"]
    text = DOCS[:50_000]
    whole = fast._tok.encode(text, add_special_tokens=False).ids
    assert fast.encode(text) == whole
