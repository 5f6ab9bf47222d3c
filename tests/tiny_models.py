"""The tiny GPT and the tiny tokenizer the tests share, in one place.

`tests/conftest.py` offers them as fixtures (`tiny_gpt`, `char_tokenizer`, `tiny_config`); the builders
here are for the places a fixture cannot reach (module-level constants, `parametrize`) and for tests that
change one field (`tiny_gpt(position="rope")`). A test that needs a particular shape on purpose (a
vocabulary sized to its own text, a width that makes FLOP counts distinct) builds its own and says why.
"""

from __future__ import annotations

import torch

from roots_course.core.model import GPT, GPTConfig
from roots_course.core.tokenizer import CharTokenizer

# 2 layers of width 16, 2 heads, a window of 16 over 40 symbols: a forward pass takes well under a millisecond
TINY_GPT = {"vocab_size": 40, "block_size": 16, "n_layer": 2, "n_head": 2, "n_embd": 16}

# lower-case letters, digits, space, newline and a little punctuation: 44 symbols
TINY_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789 \n.,?!=_"


def tiny_config(**overrides) -> GPTConfig:
    """The tiny GPT's configuration, with any field replaced."""
    return GPTConfig(**{**TINY_GPT, **overrides})


def tiny_gpt(**overrides) -> GPT:
    """A freshly initialised tiny GPT (in training mode, weights from torch's current seed)."""
    return GPT(tiny_config(**overrides))


def sharp_tiny_gpt(**overrides) -> GPT:
    """The tiny GPT with its weights scaled up from the N(0, 0.02) init, so that decoding choices are
    clear-cut rather than near ties."""
    model = tiny_gpt(**overrides)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(10)
    return model


def char_tokenizer(text: str = TINY_ALPHABET) -> CharTokenizer:
    """A character tokenizer over the symbols of ``text`` (by default the tiny alphabet)."""
    return CharTokenizer.train(text)
