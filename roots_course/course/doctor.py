"""``python -m roots_course doctor``: what is wrong with this setup, in one look.

Each check prints OK, WARN or FAIL with the value it saw and, when something is off, what to do.
The exit code is 1 when any check fails, so scripts and CI can use it too.
"""

from __future__ import annotations

import os
import sys
import tempfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

REQUIRED = {
    # distribution name: (import name, version prefix or None)
    "torch": ("torch", "2.13"),
    "numpy": ("numpy", None),
    "pyyaml": ("yaml", None),
    "safetensors": ("safetensors", None),
    "tokenizers": ("tokenizers", "0.23"),
    "transformers": ("transformers", "5."),
    "datasets": ("datasets", None),
    "matplotlib": ("matplotlib", None),
    "tqdm": ("tqdm", None),
    "jupyter-book": ("jupyter_book", "1."),
    "papermill": ("papermill", None),
    "prefect": ("prefect", "3."),
    "nbval": ("nbval", None),
    "ipykernel": ("ipykernel", None),
    "jupyterlab": ("jupyterlab", None),
    "pytest": ("pytest", None),
}
OFFLINE_VARIABLES = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")


@dataclass
class Check:
    name: str
    status: str        # OK | WARN | FAIL
    detail: str


def run_checks() -> list[Check]:
    checks: list[Check] = []
    add = checks.append

    version = sys.version.split()[0]
    add(Check("python", "OK" if sys.version_info[:2] == (3, 11) else "WARN",
              f"{version}" + ("" if sys.version_info[:2] == (3, 11) else " (the course is tested on 3.11)")))

    for dist, (module, prefix) in REQUIRED.items():
        try:
            found = metadata.version(dist)
        except metadata.PackageNotFoundError:
            add(Check(dist, "FAIL", "not installed: run `pip install -e .` in the project folder"))
            continue
        try:
            __import__(module)
        except Exception as exc:  # an installed package that fails to import is the worst case
            add(Check(dist, "FAIL", f"{found} installed but `import {module}` fails: {exc}"))
            continue
        ok = prefix is None or found.startswith(prefix)
        add(Check(dist, "OK" if ok else "WARN", found + ("" if ok else f" (the course expects {prefix}*)")))

    try:
        import torch

        from roots_course.core.device import describe, pick_device
        device = pick_device("auto")
        cuda_build = torch.version.cuda or "none"
        add(Check("device", "OK", f"{describe(device)}; torch CUDA build: {cuda_build}"))
        x = torch.randn(64, 64, device=device)
        torch.testing.assert_close((x @ torch.eye(64, device=device)).cpu(), x.cpu())
        add(Check("tensor math", "OK", f"a matmul on {device.type} gives the right answer"))
    except Exception as exc:
        add(Check("device", "FAIL", f"torch cannot run: {exc}"))

    for var in OFFLINE_VARIABLES:
        value = os.environ.get(var)
        add(Check(var, "OK" if value == "1" else "WARN",
                  f"{value!r}" + ("" if value == "1" else " (hub access is on: the default path never needs it)")))
    hf_home = os.environ.get("HF_HOME", "")
    from roots_course._offline import PROJECT_ROOT
    inside = hf_home.startswith(str(PROJECT_ROOT))
    add(Check("HF_HOME", "OK" if inside else "WARN", hf_home + ("" if inside else " (outside the project)")))

    try:
        from roots_course.course.config import load_profile, profile_names
        names = profile_names()
        for name in names:
            load_profile(name)
        add(Check("profiles", "OK", f"_config.yml: {', '.join(names)} all valid"))
    except Exception as exc:
        add(Check("profiles", "FAIL", str(exc)))

    try:
        import pydoc_data.topics as topics
        add(Check("default corpus", "OK", f"pydoc_data.topics has {len(topics.topics)} help topics"))
    except Exception as exc:
        add(Check("default corpus", "FAIL", f"pydoc_data is missing from this Python: {exc}"))

    artifacts = PROJECT_ROOT / "artifacts"
    try:
        artifacts.mkdir(exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=artifacts):
            pass
        add(Check("artifacts folder", "OK", f"{artifacts} is writable"))
    except OSError as exc:
        add(Check("artifacts folder", "FAIL", f"{artifacts}: {exc}"))

    kernels = Path(sys.prefix) / "share" / "jupyter" / "kernels" / "python3"
    add(Check("jupyter kernel", "OK" if kernels.exists() else "WARN",
              f"{kernels}" if kernels.exists() else "no python3 kernel in this environment: "
              "python -m ipykernel install --sys-prefix"))
    return checks


def main() -> int:
    checks = run_checks()
    width = max(len(c.name) for c in checks)
    for check in checks:
        print(f"{check.status:<4}  {check.name:<{width}}  {check.detail}")
    failed = [c.name for c in checks if c.status == "FAIL"]
    print(f"\n{len(checks) - len(failed)} of {len(checks)} checks passed without failure"
          + (f"; FAILED: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0
