"""Tests of roots_course.core.modes: evaluating() switches off dropout and autograd for a block and gives the
model back in the mode it found it in, also when the block raises."""

import pytest
import torch

from roots_course.core.modes import evaluating


@pytest.mark.parametrize("training", [True, False])
def test_evaluating_restores_the_mode_it_found(training):
    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Dropout(0.5)).train(training)
    with evaluating(model) as inside:
        assert inside is model and not model.training and not model[1].training
        assert torch.is_inference_mode_enabled()
        x = torch.ones(2, 4)
        assert torch.equal(model(x), model(x))  # no dropout: the same output twice
    assert model.training is training and model[1].training is training
    assert not torch.is_inference_mode_enabled()


def test_evaluating_restores_the_mode_when_the_block_raises():
    model = torch.nn.Linear(2, 2).train()
    with pytest.raises(RuntimeError, match="boom"):
        with evaluating(model):
            raise RuntimeError("boom")
    assert model.training
