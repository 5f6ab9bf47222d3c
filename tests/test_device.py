"""Device selection, precision, seeding and threads (CPU here; the CUDA branches are still exercised)."""

import os
import random
import re
import subprocess
import sys

import pytest
import torch

from roots_course import _offline as dev_offline
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


# --- the OpenMP wait policy, chosen before torch loads --------------------------------------------

def test_wait_policy_is_active_only_when_the_threads_fit_the_idle_cores():
    assert dev_offline.decide_wait_policy(load=0.2, cores=2, threads=2)[0] == "ACTIVE"     # a quiet machine
    assert dev_offline.decide_wait_policy(load=1.0, cores=2, threads=2)[0] == "PASSIVE"    # one core taken
    assert dev_offline.decide_wait_policy(load=1.0, cores=2, threads=1)[0] == "ACTIVE"     # one thread fits
    assert dev_offline.decide_wait_policy(load=6.0, cores=8, threads=2)[0] == "ACTIVE"
    policy, why = dev_offline.decide_wait_policy(load=5.13, cores=2, threads=2)
    assert policy == "PASSIVE" and why == "2 threads vs load 5.13 on 2 cores"


def _policy_in_a_fresh_process(**env: str) -> str:
    """describe(cpu) as a new process prints it, with ``env`` on top of a cleaned environment."""
    clean = {k: v for k, v in os.environ.items()
             if k not in ("OMP_WAIT_POLICY", "ROOTS_OMP_WAIT_POLICY", "ROOTS_OMP_WAIT_POLICY_CHOSEN")}
    code = ("import os, roots_course, torch; from roots_course.core.device import describe; "
            "print(describe(torch.device('cpu')), os.environ['OMP_WAIT_POLICY'], sep='|')")
    done = subprocess.run([sys.executable, "-c", code], env={**clean, **env}, capture_output=True, text=True,
                          check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_wait_policy_overrides_are_obeyed_and_printed():
    assert _policy_in_a_fresh_process(ROOTS_OMP_WAIT_POLICY="active", OMP_WAIT_POLICY="PASSIVE").endswith(
        "OMP_WAIT_POLICY=ACTIVE: set by ROOTS_OMP_WAIT_POLICY)|ACTIVE")
    assert _policy_in_a_fresh_process(OMP_WAIT_POLICY="PASSIVE").endswith(
        "OMP_WAIT_POLICY=PASSIVE: set by OMP_WAIT_POLICY)|PASSIVE")
    chosen = _policy_in_a_fresh_process()                # from the evidence: cores, threads, load
    assert re.search(r"OMP_WAIT_POLICY=(ACTIVE|PASSIVE): \d+ threads vs load [\d.]+ on \d+ cores\)\|(ACTIVE|PASSIVE)$",
                     chosen), chosen
    # a policy chosen by a parent process (the pipeline's kernels inherit its environment) is decided afresh
    inherited = _policy_in_a_fresh_process(OMP_WAIT_POLICY="PASSIVE", ROOTS_OMP_WAIT_POLICY_CHOSEN="PASSIVE")
    assert "threads vs load" in inherited
    bad = subprocess.run([sys.executable, "-c", "import roots_course"], capture_output=True, text=True,
                         env={**os.environ, "ROOTS_OMP_WAIT_POLICY": "sometimes"}, check=False)
    assert bad.returncode != 0 and "ROOTS_OMP_WAIT_POLICY must be one of ACTIVE, PASSIVE, got 'SOMETIMES'" in bad.stderr
