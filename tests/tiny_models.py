"""Small models shared by the decoding tests."""

import torch

from roots_course.core.model import GPT, GPTConfig


def sharp_tiny_gpt(**overrides) -> GPT:
    """A 2-layer GPT of width 16 over 40 symbols, its weights scaled up from the N(0, 0.02) init so
    that decoding choices are clear-cut rather than near ties."""
    fields = {"vocab_size": 40, "block_size": 16, "n_layer": 2, "n_head": 2, "n_embd": 16, **overrides}
    model = GPT(GPTConfig(**fields))
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(10)
    return model
