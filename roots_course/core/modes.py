"""Switching a model between training and evaluation for the length of a block.

Scoring, probing and generating all want the same three things: no dropout (``model.eval()``), no
autograd bookkeeping, and afterwards the model back in whichever mode it was in, even when the block
raises. ``evaluating(model)`` does the three, so each caller writes one ``with`` line instead of a
try/finally of its own.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn


@contextmanager
def evaluating(model: nn.Module) -> Iterator[nn.Module]:
    """Eval mode and ``torch.inference_mode()`` inside the block; the model's previous mode restored after.

    Tensors made inside are inference tensors: fine to read, score and print, but they cannot take part
    in a later backward pass (clone them first if a caller ever needs that).
    """
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            yield model
    finally:
        model.train(was_training)
