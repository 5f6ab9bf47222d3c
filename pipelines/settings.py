"""Keep Prefect local and quiet: its home, its results and its start-up limit live in this project.

``pipelines/__init__.py`` calls ``keep_prefect_local()`` before anything imports prefect, because
Prefect reads these variables once, when it is first imported. A value the user already set wins.
"""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
PREFECT_DIR = PROJECT_ROOT / ".prefect"


def prefect_defaults(home: Path = PREFECT_DIR) -> dict[str, str]:
    """Prefect's environment for a Prefect home at ``home``: its state and results kept inside the project,
    no analytics sent, a temporary server given time to start and listening on this machine only."""
    return {
        "PREFECT_HOME": str(home),
        "PREFECT_RESULTS_LOCAL_STORAGE_PATH": str(home / "storage"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
        # a busy 2-core machine can need more than the 20 s default to start a temporary server
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
        # `prefect server start` listens on this machine only unless told otherwise (the API has no login)
        "PREFECT_SERVER_API_HOST": "127.0.0.1",
    }


def keep_prefect_local() -> None:
    """Set the defaults above unless the user set them; results go inside whichever home is in force."""
    home = Path(os.environ.get("PREFECT_HOME") or PREFECT_DIR)
    for key, value in prefect_defaults(home).items():
        os.environ.setdefault(key, value)
