"""A run's parameters, checked before any work: an unknown profile, a wrong type, a device this
machine lacks or a chapter with no notebook stops the run at once with a message naming the parameter.

Where a run publishes: the committed book, ``book/``, shows the ``cpu`` profile's run, so only a ``cpu``
run publishes into it by default. A run of any other profile (``smoke`` to try the pipeline, ``gpu``)
publishes into a book of its own, ``artifacts/<profile>/book/``: a copy of ``book/``'s sources with that
run's chapters, built there, which never replaces a committed page. ``book_dir`` (``--book-dir book``)
asks for another folder, the committed book included.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipelines.chapters import ChapterSpec, discover, select
from roots_course.course.config import Profile, load_profile, profile_names
from roots_course.errors import ConfigError

# The profile whose run the committed book shows; every other profile publishes into its own book.
BOOK_PROFILE = "cpu"
OWN_BOOK = "book"      # artifacts/<profile>/book/: where a run of another profile publishes


class ParameterError(ValueError):
    """A parameter of a flow or of the command line is invalid; the message names it."""


@dataclass(frozen=True)
class RunParameters:
    profile: Profile
    device: str                      # as asked for (the profile's when not given): auto | cpu | cuda[:n] | mps
    resolved_device: str             # what ``device`` means on this machine: cpu | cuda | mps
    seed: int
    notebooks_dir: Path
    artifacts_root: Path             # artifacts/; the profile's folder goes inside
    book_dir: Path                   # where this run publishes
    book_sources: Path               # the book whose pages, settings and extensions it publishes with
    chapters: tuple[ChapterSpec, ...]   # the chapters to run, in dependency order
    all_chapters: tuple[ChapterSpec, ...]  # every chapter that has a notebook

    @property
    def profile_dir(self) -> Path:
        return self.artifacts_root / self.profile.name

    @property
    def executed_dir(self) -> Path:
        return self.profile_dir / "executed"

    @property
    def own_book(self) -> bool:
        """True when the run publishes into a copy of ``book_sources`` rather than into that book itself."""
        return self.book_dir != self.book_sources

    def notebook_parameters(self) -> dict[str, Any]:
        """What papermill injects into each notebook's ``parameters`` cell.

        ``artifacts_dir`` is written relative to the notebooks folder (the kernel's working directory)
        when the artifacts live in the same project, so published pages show no machine's paths.
        """
        root = self.artifacts_root.resolve()
        project = self.notebooks_dir.resolve().parent
        if root == project or project in root.parents:
            artifacts_dir = os.path.relpath(root, self.notebooks_dir.resolve())
        else:
            artifacts_dir = str(root)
        return {"profile": self.profile.name, "device": self.device, "seed": self.seed,
                "artifacts_dir": artifacts_dir}

    def key_parameters(self) -> dict[str, Any]:
        """What the cache key must see of the parameters: the settings, not where files go."""
        return {"profile": self.profile.to_dict(), "device": self.device,
                "resolved_device": self.resolved_device, "seed": self.seed}


def _fail(name: str, message: str) -> ParameterError:
    return ParameterError(f"parameter {name!r}: {message}")


def resolve(profile: Any = None, device: Any = None, seed: Any = None, chapters: Any = None,
            notebooks_dir: Any = None, artifacts_dir: Any = None, book_dir: Any = None,
            require_notebooks: bool = True, require_book: bool = False) -> RunParameters:
    """Check every parameter and resolve defaults; raise ParameterError naming the first bad one.

    ``require_book``: the run will publish, so ``book_dir`` must be a Jupyter Book folder.
    """
    if profile is None:
        from roots_course.course.config import default_profile_name
        profile = default_profile_name()
    if not isinstance(profile, str):
        raise _fail("profile", f"must be a string, got {type(profile).__name__} {profile!r}")
    allowed = profile_names()
    if profile not in allowed:
        raise _fail("profile", f"unknown profile {profile!r}; allowed profiles: {', '.join(allowed)}")
    if device is not None and not isinstance(device, str):
        raise _fail("device", f"must be a string (auto, cpu, cuda or mps), got {device!r}")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
        raise _fail("seed", f"must be a non-negative integer, got {seed!r}")
    for name, value in (("notebooks_dir", notebooks_dir), ("artifacts_dir", artifacts_dir),
                        ("book_dir", book_dir)):
        if value is not None and not isinstance(value, (str, os.PathLike)):
            raise _fail(name, f"must be a path, got {value!r}")

    overrides: dict[str, Any] = {}
    if device is not None:
        overrides["device"] = device
    if seed is not None:
        overrides["seed"] = seed
    try:
        loaded = load_profile(profile, overrides=overrides)
    except ConfigError as exc:
        name = "device" if ".device" in str(exc) else "seed" if ".seed" in str(exc) else "profile"
        raise _fail(name, str(exc)) from exc
    try:
        from roots_course.core.device import pick_device
        resolved = pick_device(loaded.device).type
    except ConfigError as exc:
        raise _fail("device", str(exc)) from exc

    notebooks = Path(notebooks_dir) if notebooks_dir is not None else loaded.paths["notebooks"]
    if require_notebooks and not notebooks.is_dir():
        raise _fail("notebooks_dir", f"{notebooks} is not a folder")
    found = discover(notebooks)
    numbers = _chapter_numbers(chapters)
    if require_notebooks and not found:
        raise _fail("notebooks_dir", f"no chapter notebooks (NN_name.ipynb) in {notebooks}")
    try:
        selected = select(found, numbers)
    except ValueError as exc:
        raise ParameterError(str(exc)) from exc
    artifacts_root = Path(artifacts_dir) if artifacts_dir is not None else loaded.paths["artifacts"]
    sources = Path(book_dir) if book_dir is not None else loaded.paths["book"]
    if require_book and not (sources / "_config.yml").is_file():
        raise _fail("book_dir", f"{sources} is not a Jupyter Book folder (it has no _config.yml)")
    book = default_book_dir(loaded.name, artifacts_root, sources) if book_dir is None else sources
    return RunParameters(profile=loaded, device=loaded.device, resolved_device=resolved, seed=loaded.seed,
                         notebooks_dir=notebooks.resolve(), artifacts_root=artifacts_root.resolve(),
                         book_dir=book.resolve(), book_sources=sources.resolve(), chapters=tuple(selected),
                         all_chapters=tuple(found))


def default_book_dir(profile: str, artifacts_root: Path, book: Path) -> Path:
    """Where a run of ``profile`` publishes when not told: ``book`` for the cpu profile, else its own book."""
    return book if profile == BOOK_PROFILE else artifacts_root / profile / OWN_BOOK


def _chapter_numbers(chapters: Any) -> list[int] | None:
    if chapters is None:
        return None
    if isinstance(chapters, (str, bytes)) or not isinstance(chapters, (list, tuple)):
        raise _fail("chapters", f"must be a list of chapter numbers, got {chapters!r}")
    if not chapters:
        raise _fail("chapters", "must name at least one chapter (leave it out to run them all)")
    for value in chapters:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _fail("chapters", f"must be a list of chapter numbers, got {value!r} in {list(chapters)}")
    return list(chapters)
