"""Our tokenizers as `tokenizers` / `transformers` tokenizers that give the same ids.

Tokenizers: "fast_bpe" is already a `tokenizers` object and is written as it is. The from-scratch
"bpe" is rewritten as the library's byte-level BPE (the same pre-tokenisation; each byte spelled with
its stand-in character, see ``fast_bpe.byte_level_alphabet``; merges in learning order, which the
library applies by rank, as ``ByteBPETokenizer._encode_word`` does). The "char" tokenizer becomes a
word-level model over single characters whose unknown token decodes to U+FFFD as ours does.
"""

from __future__ import annotations

from typing import Any

from roots_course.core.bpe import ByteBPETokenizer
from roots_course.core.fast_bpe import FastBPETokenizer, byte_level_alphabet
from roots_course.core.tokenizer import CharTokenizer, Tokenizer
from roots_course.errors import ExportError

# English, Chinese, code and odd whitespace: the texts on which an exported tokenizer must give our ids.
PROBE_TEXTS = (
    "The cat sat on the mat. It didn't move; we'll see.",
    "语言模型计算一个句子出现的概率。猫坐在垫子上。",
    "def area(r: float) -> float:\n\treturn 3.14159 * r ** 2  # πr²\n\n\n",
    "  spaces,\u00a0NBSP and emoji 🙂 at 10:45 ½",
)


def library_tokenizer(tokenizer: Tokenizer) -> Any:
    """Our tokenizer as a `tokenizers.Tokenizer` that gives the same ids (checked by export_model)."""
    from tokenizers import Regex, decoders, models, pre_tokenizers
    from tokenizers import Tokenizer as LibTokenizer

    if isinstance(tokenizer, FastBPETokenizer):
        return LibTokenizer.from_str(tokenizer._tok.to_str())  # already one: a copy of it
    if isinstance(tokenizer, CharTokenizer):
        vocab = {ch: i for i, ch in enumerate(tokenizer.chars)}
        vocab[tokenizer.UNK_TOKEN] = tokenizer.unk_id
        tok = LibTokenizer(models.WordLevel(vocab=vocab, unk_token=tokenizer.UNK_TOKEN))
        tok.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")  # every character alone
        # Decoding: the unknown token reads as U+FFFD (as ours), and the pieces join without spaces.
        tok.decoder = decoders.Sequence([decoders.Replace(tokenizer.UNK_TOKEN, tokenizer.UNK_TEXT), decoders.Fuse()])
        return tok
    if isinstance(tokenizer, ByteBPETokenizer):
        alphabet = byte_level_alphabet()

        def spell(b: bytes) -> str:
            return "".join(alphabet[x] for x in b)

        strings = [spell(tokenizer.token_bytes(i)) for i in range(tokenizer.vocab_size)]
        vocab: dict[str, int] = {}
        for i, s in enumerate(strings):
            if s in vocab:
                raise ExportError(f"the bpe tokenizer has two ids ({vocab[s]} and {i}) for the bytes "
                                  f"{tokenizer.token_bytes(i)!r}; a `tokenizers` vocabulary holds each string once")
            vocab[s] = i
        merges = [(strings[a], strings[b]) for a, b in tokenizer.merges]
        tok = LibTokenizer(models.BPE(vocab=vocab, merges=merges))
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
        tok.decoder = decoders.ByteLevel()
        return tok
    raise ExportError(f"no `tokenizers` equivalent is known for a {type(tokenizer).__name__}")


def to_transformers_tokenizer(tokenizer: Tokenizer, model_max_length: int) -> Any:
    """A PreTrainedTokenizerFast around ``library_tokenizer(tokenizer)``: no special tokens, no
    clean-up of spaces when decoding (ours has none), `model_max_length` = the model's block_size."""
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(tokenizer_object=library_tokenizer(tokenizer), model_max_length=model_max_length,
                                   clean_up_tokenization_spaces=False)


def tokenizer_mismatches(tokenizer: Tokenizer, hf_tokenizer: Any, texts: tuple[str, ...] = PROBE_TEXTS) -> list[str]:
    """The probe texts on which the two tokenizers give different ids or decode differently."""
    problems = []
    for text in texts:
        ours, theirs = tokenizer.encode(text), hf_tokenizer(text)["input_ids"]
        if ours != theirs:
            problems.append(f"{text!r}: ids {ours[:12]}... vs {theirs[:12]}...")
        elif tokenizer.decode(ours) != hf_tokenizer.decode(theirs):
            problems.append(f"{text!r}: decodes to {tokenizer.decode(ours)!r} vs {hf_tokenizer.decode(theirs)!r}")
    return problems
