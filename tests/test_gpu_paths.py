"""The CUDA paths, run where a GPU is present (skipped elsewhere). They caught a real bug: sampling with
the usual seeded CPU `torch.Generator` from a model on the GPU crashed at the end of `gpu` pretraining."""

import pytest
import torch

from roots_course.core.device import autocast_context
from roots_course.core.generate import generate, sequence_log_prob
from roots_course.core.model import GPT, GPTConfig

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def tiny_gpt(device: str) -> GPT:
    torch.manual_seed(0)
    config = GPTConfig(vocab_size=32, block_size=16, n_layer=2, n_head=2, n_embd=32, dropout=0.0)
    return GPT(config).to(device).eval()


def test_sampling_on_the_gpu_with_a_seeded_cpu_generator_is_repeatable():
    model = tiny_gpt("cuda")
    runs = [generate(model, [1, 2, 3], 20, temperature=1.0, top_k=8,
                     generator=torch.Generator().manual_seed(7)) for _ in range(2)]
    assert runs[0] == runs[1]
    assert len(runs[0]) == 20 and all(0 <= t < 32 for t in runs[0])


def test_gpu_and_cpu_give_the_same_log_probability():
    ids = [1, 5, 7, 2, 9, 4]
    on_cpu = sequence_log_prob(tiny_gpt("cpu"), ids, start=2)
    on_gpu = sequence_log_prob(tiny_gpt("cuda"), ids, start=2)
    assert on_gpu == pytest.approx(on_cpu, abs=1e-3)


def test_bf16_autocast_is_used_on_cuda():
    model = tiny_gpt("cuda")
    with autocast_context(torch.device("cuda")):
        out = model.lm_head(torch.randn(2, 32, device="cuda"))
    assert out.dtype == torch.bfloat16
