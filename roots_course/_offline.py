"""Keep every cache inside the project and every hub client offline unless the user says otherwise."""

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def keep_caches_local() -> None:
    """Set the environment variables of design.md §6, without overriding what the user set."""
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
