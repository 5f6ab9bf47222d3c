"""What ``python -m pipelines serve`` offers a Prefect server: one deployment per flow and profile.

    regenerate/smoke  regenerate/cpu  regenerate/gpu      the whole course, then the book
    pretrain/<profile>  finetune/<profile>  evaluate/<profile>  publish/<profile>

Any parameter can still be changed per run: ``prefect deployment run 'regenerate/cpu' --param seed=7``.
For several machines (a GPU box running ``regenerate/gpu``), see ``prefect.yaml`` at the project root;
then serve only the others here (``--profiles smoke cpu``), so that ``regenerate/gpu`` stays the work pool's.
"""

from __future__ import annotations

import os
from typing import Any

from pipelines.settings import PROJECT_ROOT

PROFILES = ("smoke", "cpu", "gpu")
DEFAULT_API_URL = "http://127.0.0.1:4200/api"


def deployments(profiles: tuple[str, ...] = PROFILES) -> list[Any]:
    from prefect.deployments.runner import EntrypointType

    from pipelines.flows import evaluate, finetune, pretrain, publish_book, regenerate

    found = []
    for flow_ in (regenerate, pretrain, finetune, evaluate, publish_book):
        for profile in profiles:
            found.append(flow_.to_deployment(
                name=profile, parameters={"profile": profile}, tags=["roots", profile],
                description=f"{flow_.description.splitlines()[0]} (profile {profile})",
                # by module, not file: the runner then works from any directory
                entrypoint_type=EntrypointType.MODULE_PATH))
    return found


def api_url() -> str | None:
    from prefect.settings import PREFECT_API_URL
    return PREFECT_API_URL.value() or None


def server_is_healthy(url: str, timeout: float = 5.0) -> bool:
    import httpx
    try:
        return httpx.get(f"{url.rstrip('/')}/health", timeout=timeout).status_code == 200
    except httpx.HTTPError:
        return False


def serve(limit: int | None = None, profiles: tuple[str, ...] = PROFILES) -> None:
    """Serve every deployment until interrupted; the server is $PREFECT_API_URL, else 127.0.0.1:4200."""
    from prefect import serve as prefect_serve
    from prefect.settings import PREFECT_API_URL, temporary_settings

    url = api_url() or DEFAULT_API_URL
    if not server_is_healthy(url):
        raise SystemExit(f"no Prefect server answers at {url}. Start one first, in another shell:\n"
                         f"    prefect server start --host 127.0.0.1\n"
                         f"and point this shell at it: export PREFECT_API_URL={DEFAULT_API_URL}")
    os.chdir(PROJECT_ROOT)   # flow runs start here, so relative paths mean the project's
    with temporary_settings(updates={PREFECT_API_URL: url}):
        # no schedules to pause: a stopped server of deployments leaves them runnable when restarted
        prefect_serve(*deployments(profiles), limit=limit, pause_on_shutdown=False)
