"""``python -m roots_course doctor``: what is wrong with this setup, in one look.

Every dependency is reported with its version and its group of pyproject.toml: the course itself (the
default install) or an extra (``lab``: JupyterLab; ``test``: the test suite). A missing piece names the
command that installs its group. A CUDA build of torch on a machine without a GPU is reported too.

Each check prints OK, WARN or FAIL with the value it saw and, when something is off, what to do.
The exit code is 1 when any check fails, so scripts and CI can use it too.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

# distribution name: (import name, version prefix the course expects, or None)
PACKAGES = {
    "torch": ("torch", "2.13"),
    "numpy": ("numpy", None),
    "pandas": ("pandas", None),
    "pyyaml": ("yaml", None),
    "regex": ("regex", None),
    "pydantic": ("pydantic", "2."),
    "filelock": ("filelock", None),
    "safetensors": ("safetensors", None),
    "tokenizers": ("tokenizers", "0.23"),
    "transformers": ("transformers", "5."),
    "datasets": ("datasets", None),
    "matplotlib": ("matplotlib", None),
    "tqdm": ("tqdm", None),
    "jupyter-book": ("jupyter_book", "1."),
    "django-static-mathjax": ("mathjax", None),
    "papermill": ("papermill", None),
    "ipykernel": ("ipykernel", None),
    "prefect": ("prefect", "3."),
    "jupyterlab": ("jupyterlab", None),
    "pytest": ("pytest", None),
    "nbval": ("nbval", None),
    "selenium": ("selenium", None),
    "websocket-client": ("websocket", None),
}
# The groups of pyproject.toml (a test keeps them equal): what to install when a piece is missing,
# and how bad its absence is (the course itself cannot run without its group; the extras are optional).
GROUPS = {
    "course": ("pip install -e .", "FAIL", [
        "torch", "numpy", "pandas", "pyyaml", "regex", "pydantic", "filelock", "safetensors", "tokenizers",
        "transformers", "datasets", "matplotlib", "tqdm", "jupyter-book", "django-static-mathjax", "papermill",
        "ipykernel", "prefect"]),
    "lab": ("pip install -e '.[lab]'", "WARN", ["jupyterlab"]),
    "test": ("pip install -e '.[test]'", "WARN", ["pytest", "nbval", "jupyterlab", "selenium", "websocket-client"]),
}
BROWSER = ("chromium", "chromedriver")   # Debian's, for tests/test_book_site.py
CPU_TORCH = 'pip install --force-reinstall "torch==2.13.*" --index-url https://download.pytorch.org/whl/cpu'
OFFLINE_VARIABLES = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")


@dataclass
class Check:
    name: str
    status: str        # OK | WARN | FAIL
    detail: str


def package_checks() -> list[Check]:
    """One check per dependency (its version), then one per group saying what to install for what is missing."""
    checks: list[Check] = []
    seen: dict[str, bool] = {}
    for group, (install, severity, dists) in GROUPS.items():
        for dist in dists:
            if dist not in seen:
                check, seen[dist] = _package_check(dist, group, install, severity)
                checks.append(check)
        missing = [d for d in dists if not seen[d]]
        what = {"course": "the course", "lab": "JupyterLab", "test": "the tests"}[group]
        checks.append(Check(f"[{group}]", "OK" if not missing else severity,
                            f"{len(dists) - len(missing)} of {len(dists)} packages for {what}" +
                            (f"; missing {', '.join(missing)}: {install}" if missing else "")))
    return checks


def _package_check(dist: str, group: str, install: str, severity: str) -> tuple[Check, bool]:
    """The check of one package, and whether it is installed."""
    module, prefix = PACKAGES[dist]
    try:
        found = metadata.version(dist)
    except metadata.PackageNotFoundError:
        return Check(dist, severity, f"not installed [{group}]: {install} in the project folder"), False
    try:
        __import__(module)
    except Exception as exc:  # noqa: BLE001  (an installed package that fails to import is the worst case)
        return Check(dist, "FAIL", f"{found} installed but `import {module}` fails: {exc}"), True
    ok = prefix is None or found.startswith(prefix)
    detail = f"{found} [{group}]" + ("" if ok else f" (the course expects {prefix}*)")
    return Check(dist, "OK" if ok else "WARN", detail), True


def run_checks() -> list[Check]:
    checks: list[Check] = []
    add = checks.append

    version = sys.version.split()[0]
    add(Check("python", "OK" if sys.version_info[:2] == (3, 11) else "WARN",
              f"{version}" + ("" if sys.version_info[:2] == (3, 11) else " (the course is tested on 3.11)")))

    checks.extend(package_checks())
    missing = [name for name in BROWSER if shutil.which(name) is None]
    add(Check("browser", "WARN" if missing else "OK",
              f"{' and '.join(missing)} not found: tests/test_book_site.py will skip (Debian: apt-get install "
              "chromium chromium-driver)" if missing else f"chromium and chromedriver at {shutil.which('chromium')}"
              f", {shutil.which('chromedriver')} (for the site test)"))

    try:
        import torch

        from roots_course.core.device import describe, pick_device
        device = pick_device("auto")
        cuda_build = torch.version.cuda or "none"
        add(Check("device", "OK", f"{describe(device)}; torch CUDA build: {cuda_build}"))
        if torch.version.cuda and not torch.cuda.is_available():
            add(Check("torch build", "WARN", f"a CUDA {torch.version.cuda} build of torch on a machine with no "
                      f"usable GPU: gigabytes of GPU libraries for nothing. The small CPU build: {CPU_TORCH}"))
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
        from pydoc_data import topics
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
