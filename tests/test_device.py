"""Device selection, precision, seeding and threads (CPU here; the CUDA branches are still exercised)."""

import random

import pytest
import torch

from roots_course.core import device as dev
from roots_course.errors import ConfigError


def test_auto_picks_cpu_without_accelerators(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert dev.pick_device("auto") == torch.device("cpu")


def test_auto_prefers_cuda_then_mps(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert dev.pick_device("auto").type == "cuda"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert dev.pick_device("auto").type == "mps"


def test_bad_and_missing_devices_fail_clearly(monkeypatch):
    with pytest.raises(ConfigError, match="device must be one of"):
        dev.pick_device("tpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError, match="no CUDA GPU"):
        dev.pick_device("cuda")


def test_autocast_is_bf16_on_cuda_and_off_on_cpu(monkeypatch):
    assert dev.autocast_dtype(torch.device("cpu")) is None
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)
    assert dev.autocast_dtype(torch.device("cuda")) is torch.bfloat16
    with dev.autocast_context(torch.device("cpu")):
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.float32


def test_seed_everything_makes_runs_repeat():
    g = dev.seed_everything(7)
    a = (torch.randn(3), random.random(), torch.randint(0, 100, (3,), generator=g))
    g = dev.seed_everything(7)
    b = (torch.randn(3), random.random(), torch.randint(0, 100, (3,), generator=g))
    torch.testing.assert_close(a[0], b[0])
    assert a[1] == b[1]
    torch.testing.assert_close(a[2], b[2])
    with pytest.raises(ConfigError, match="seed"):
        dev.seed_everything(-1)


def test_threads():
    before = torch.get_num_threads()
    try:
        assert dev.set_threads(1) == 1
        assert dev.set_threads(None) == 1
        with pytest.raises(ConfigError, match="threads"):
            dev.set_threads(0)
    finally:
        torch.set_num_threads(before)
