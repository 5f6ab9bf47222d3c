"""Shared test setup: import roots_course first, so that its environment settings (caches inside the
project, hubs offline, OpenMP's wait policy) are in place before anything loads torch; run every test on
one thread from seed 0; and offer the tiny GPT and tokenizer of `tests/tiny_models.py` as fixtures."""

# ruff: noqa: I001  (roots_course must be imported before torch)
import roots_course  # noqa: F401

import pytest
import torch

import tiny_models
from roots_course.core.model import GPT, GPTConfig
from roots_course.core.tokenizer import CharTokenizer


@pytest.fixture(autouse=True)
def one_thread_seeded():
    """Every test runs torch on one thread from seed 0: repeatable numbers, and no two test processes
    fighting over the 2 cores of a CI machine. A test that needs more threads sets them itself."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def tiny_config() -> GPTConfig:
    """The tiny GPT's configuration (`tiny_models.TINY_GPT`)."""
    return tiny_models.tiny_config()


@pytest.fixture
def tiny_gpt(one_thread_seeded) -> GPT:
    """A tiny GPT initialised from seed 0, in training mode: 40 symbols, window 16, 2 layers of width 16."""
    return tiny_models.tiny_gpt()


@pytest.fixture(scope="session")
def char_tokenizer() -> CharTokenizer:
    """A character tokenizer over `tiny_models.TINY_ALPHABET` (letters, digits, space, newline, . , ? ! = _);
    session-wide, since a tokenizer does not change once trained."""
    return tiny_models.char_tokenizer()
