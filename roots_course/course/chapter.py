"""What every chapter notebook does first: resolve its parameters into a profile, a device and a place
for its artifacts, seed everything, and set up quiet logs and readable plots.

A chapter's ``parameters`` cell (which papermill overrides) holds plain values::

    profile = None        # smoke | cpu | gpu; None: $ROOTS_PROFILE, else cpu
    device = None         # auto | cpu | cuda | mps; None: the profile's
    seed = None           # None: the profile's
    artifacts_dir = None  # None: artifacts/ in the project; the profile's folder goes inside

and the next cell calls ``ch = setup_chapter(profile, device, seed, artifacts_dir)``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from roots_course._offline import PROJECT_ROOT
from roots_course.store.artifacts import shown
from roots_course.course.config import Profile, load_profile
from roots_course.core.device import describe, pick_device, seed_everything, set_threads
from roots_course.errors import ConfigError
from roots_course.course.plots import use_course_style
from roots_course.course.pretraining import Run
from roots_course.core.progress import quiet_environment


@dataclass
class Chapter:
    profile: Profile
    run: Run
    device: torch.device
    seed: int
    generator: torch.Generator

    @property
    def paths(self):
        return self.run.paths

    def say(self, message: str) -> None:
        """A line of narration from the library (what it built, what it reused), flushed at once; paths
        inside the project are shown relative to it."""
        print(f"[roots] {message.replace(str(PROJECT_ROOT) + '/', '')}", flush=True)

    @staticmethod
    def shown(path) -> str:
        """A path as the chapter prints it: relative to the project when inside it."""
        return shown(path)

    @property
    def progress(self) -> bool:
        """Progress bars in JupyterLab; quiet log lines under papermill, nbval and CI."""
        return not quiet_environment()


_PARAMETER_KINDS = {"profile": ((str,), "a profile name such as 'smoke'"), "device": ((str,), "auto, cpu, cuda or mps"),
                    "seed": ((int,), "a non-negative integer"), "threads": ((int,), "a positive integer"),
                    "artifacts_dir": ((str, os.PathLike), "a folder path")}


def check_parameters(**values: Any) -> None:
    """ConfigError naming the first notebook parameter of the wrong type or range (None means the default)."""
    for name, value in values.items():
        if value is None:
            continue
        kinds, what = _PARAMETER_KINDS[name]
        if isinstance(value, bool) or not isinstance(value, kinds) or \
                (name == "seed" and value < 0) or (name == "threads" and value < 1):
            raise ConfigError(f"notebook parameter {name!r} must be {what} (or None for the default), got {value!r}")
    folder = values.get("artifacts_dir")
    if folder is not None and Path(folder).exists() and not Path(folder).is_dir():
        raise ConfigError(f"notebook parameter 'artifacts_dir': {folder} is a file, not a folder")


def setup_chapter(profile: str | None = None, device: str | None = None, seed: int | None = None,
                  artifacts_dir: str | os.PathLike | None = None, threads: int | None = None,
                  overrides: dict[str, Any] | None = None) -> Chapter:
    """Resolve a notebook's parameters; fail at once, naming the parameter, when one is invalid."""
    check_parameters(profile=profile, device=device, seed=seed, artifacts_dir=artifacts_dir, threads=threads)
    settings = dict(overrides or {})
    if device is not None:
        settings["device"] = device
    if seed is not None:
        settings["seed"] = seed
    if threads is not None:
        settings["threads"] = threads
    loaded = load_profile(profile, overrides=settings)
    if artifacts_dir is not None:
        loaded.paths["artifacts"] = Path(artifacts_dir).resolve()
    set_threads(loaded.threads)
    torch_device = pick_device(loaded.device)
    generator = seed_everything(loaded.seed)
    use_course_style()
    chapter = Chapter(loaded, Run.for_profile(loaded), torch_device, loaded.seed, generator)
    chapter.say(f"profile {loaded.name!r} on {describe(torch_device)}, seed {loaded.seed}, "
                f"artifacts in {chapter.paths.dir}")
    return chapter
