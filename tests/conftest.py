"""Shared test setup: import roots_course first, so that its environment settings (caches inside the
project, hubs offline, passive OpenMP waiting) are in place before anything loads torch."""

# ruff: noqa: I001  (roots_course must be imported before torch)
import roots_course  # noqa: F401

import pytest
import torch


@pytest.fixture(autouse=True)
def one_thread_seeded():
    """Every test runs torch on one thread from seed 0: repeatable numbers, and no two test processes
    fighting over the 2 cores of a CI machine. A test that needs more threads sets them itself."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    yield
    torch.set_num_threads(before)
