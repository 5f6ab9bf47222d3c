"""What the environment must hold before any library loads: caches kept inside the project, hub clients
offline, and the way OpenMP threads wait for work (read once, when torch starts its thread pool).

Nothing here overrides what the user set.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent

WAIT_POLICIES = ("ACTIVE", "PASSIVE")
_CHOSEN = "ROOTS_OMP_WAIT_POLICY_CHOSEN"     # marks a policy this module set, so a child process re-decides
_decision: tuple[str, str] | None = None


def keep_caches_local() -> None:
    """Keep the Hugging Face and matplotlib caches under ``.cache/`` and the hub clients offline."""
    cache = PROJECT_ROOT / ".cache"
    defaults = {
        "HF_HOME": str(cache / "huggingface"),
        "HF_DATASETS_OFFLINE": "1",
        "HF_HUB_OFFLINE": "1",
        "DO_NOT_TRACK": "1",
        "MPLCONFIGDIR": str(cache / "matplotlib"),
    }
    for key, value in defaults.items():
        os.environ.setdefault(key, value)


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:          # macOS, Windows
        return os.cpu_count() or 1


def decide_wait_policy(load: float, cores: int, threads: int) -> tuple[str, str]:
    """ACTIVE when the run's ``threads`` fit the cores left idle by the 1-minute ``load`` average, else
    PASSIVE; return (policy, the evidence in words).

    A spinning (ACTIVE) OpenMP thread answers the next parallel region at once: measured up to 2.5x
    faster on a quiet 2-core machine (benchmarks/README.md). On a loaded machine it burns the core
    another process needs while it waits, and both slow down (a step measured 6-8x slower); PASSIVE
    threads sleep instead. Half a core of slack absorbs the background noise of an idle machine.
    """
    idle = cores - load
    policy = "ACTIVE" if threads <= idle + 0.5 else "PASSIVE"
    return policy, f"{threads} threads vs load {load:.2f} on {cores} cores"


def choose_wait_policy() -> tuple[str, str]:
    """Set ``OMP_WAIT_POLICY`` for this process unless the user did; return (policy, why).

    Order: ``ROOTS_OMP_WAIT_POLICY`` (ACTIVE or PASSIVE), then an ``OMP_WAIT_POLICY`` the user set, then
    the evidence (``decide_wait_policy``). It must run before torch is imported: the OpenMP runtime
    reads the variable once, when it starts; if torch came first, nothing is set and the reason says so.
    A policy this function chose in a parent process (the pipeline's kernels inherit its environment) is
    decided afresh, on the load of now.
    """
    global _decision
    if _decision is not None:
        return _decision
    wanted = os.environ.get("ROOTS_OMP_WAIT_POLICY", "").strip().upper()
    inherited = os.environ.get("OMP_WAIT_POLICY", "").strip().upper()
    if "torch" in sys.modules:          # too late: the OpenMP runtime read its settings when torch loaded
        _decision = (inherited or "default", "torch was imported before roots_course")
        return _decision
    if wanted:
        if wanted not in WAIT_POLICIES:
            raise ValueError(f"ROOTS_OMP_WAIT_POLICY must be one of {', '.join(WAIT_POLICIES)}, got {wanted!r}")
        policy, why = wanted, "set by ROOTS_OMP_WAIT_POLICY"
    elif inherited and inherited != os.environ.get(_CHOSEN):
        policy, why = inherited, "set by OMP_WAIT_POLICY"
    else:
        cores = usable_cores()
        threads = _int_env("OMP_NUM_THREADS") or cores
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
        policy, why = decide_wait_policy(load, cores, threads)
    os.environ["OMP_WAIT_POLICY"] = policy
    os.environ[_CHOSEN] = policy
    _decision = (policy, why)
    return _decision


def _int_env(name: str) -> int | None:
    try:
        value = int(os.environ.get(name, ""))
    except ValueError:
        return None
    return value if value > 0 else None
