"""Which chapter notebooks exist, and which chapters each one needs first.

The course's dependency graph (an arrow: the later chapter reads the earlier one's artifacts)::

    1 representation ─► 2 optimization ─┬─► 3 output ─┬─► 5 society
                                        └─► 4 tasks  ─┘

Chapters are found in the notebooks folder by name, ``NN_<slug>.ipynb``; the graph is kept by number,
so the pipeline works with however many chapters exist. When a chapter's direct upstream is missing,
it depends on that chapter's own upstream instead (5 without 3 and 4 depends on 2).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

# chapter number -> the chapters it reads artifacts from
DEPENDS_ON: dict[int, tuple[int, ...]] = {1: (), 2: (1,), 3: (2,), 4: (2,), 5: (3, 4),
                                      6: (2,)}  # 6: the appendix that exports the pretrained model

# the sub-flows and the chapters each one runs
GROUPS: dict[str, tuple[int, ...]] = {"pretrain": (1, 2), "finetune": (4,), "evaluate": (3, 5)}

NOTEBOOK_NAME = re.compile(r"^(\d{2})_([A-Za-z0-9_\-]+)\.ipynb$")


@dataclass(frozen=True)
class ChapterSpec:
    number: int
    notebook: Path                   # the clean notebook
    depends_on: tuple[int, ...]      # upstream chapters that exist, nearest first

    @property
    def name(self) -> str:
        """The notebook's stem, e.g. ``01_representation``: names executed files and book pages."""
        return self.notebook.stem

    def __str__(self) -> str:
        return f"chapter {self.number} ({self.notebook.name})"


def discover(notebooks_dir: str | Path) -> list[ChapterSpec]:
    """The chapters whose notebooks are in ``notebooks_dir``, in number order."""
    folder = Path(notebooks_dir)
    found: dict[int, Path] = {}
    if folder.is_dir():
        for path in sorted(folder.iterdir()):
            match = NOTEBOOK_NAME.match(path.name)
            if match and path.is_file():
                number = int(match.group(1))
                if number in found:
                    raise ValueError(f"two notebooks for chapter {number} in {folder}: "
                                     f"{found[number].name} and {path.name}")
                found[number] = path.resolve()
    return [ChapterSpec(n, found[n], _present_upstream(n, set(found))) for n in sorted(found)]


def _present_upstream(number: int, present: set[int]) -> tuple[int, ...]:
    """Direct upstream chapters that exist; a missing one is replaced by its own upstream.

    A chapter the graph does not know (a sixth one, say) depends on every chapter before it.
    """
    direct = DEPENDS_ON.get(number, tuple(n for n in sorted(present) if n < number))
    result: list[int] = []
    for dep in direct:
        for n in ((dep,) if dep in present else _present_upstream(dep, present)):
            if n not in result:
                result.append(n)
    return tuple(result)


def select(chapters: list[ChapterSpec], numbers: list[int] | tuple[int, ...] | None) -> list[ChapterSpec]:
    """The chapters with the given numbers (all when None), in dependency order.

    Raises ValueError naming the parameter when a number has no notebook.
    """
    if numbers is None:
        return list(chapters)
    by_number = {c.number: c for c in chapters}
    missing = [n for n in numbers if n not in by_number]
    if missing:
        available = ", ".join(str(n) for n in sorted(by_number)) or "none"
        raise ValueError(f"parameter 'chapters': no notebook for chapter {missing[0]}; "
                         f"chapters available: {available}")
    return [by_number[n] for n in sorted(set(numbers))]


def group(name: str) -> tuple[int, ...]:
    return GROUPS[name]
