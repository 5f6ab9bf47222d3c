"""Run one chapter notebook with papermill, in this environment, quietly, with a log beside it.

The kernel is ``python3`` (jupyter_client starts it with this very interpreter), ``PAPERMILL=1`` tells
``roots_course`` to log plain lines instead of progress bars, and the notebook's ``parameters`` cell
is overridden with the run's profile, device, seed and artifacts folder.

Two kinds of failure, told apart because only one is worth retrying:
- ``NotebookError``: a cell raised (a bug, a failed check); the message names the notebook, the cell
  and the exception. Running it again would fail the same way.
- ``KernelDied``: the kernel died or never started (out of memory, killed); transient, retried.
"""

from __future__ import annotations

import os
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import nbformat

KERNEL_NAME = "python3"
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


class NotebookError(RuntimeError):
    """A cell of a chapter notebook raised an exception. Not retried."""

    def __init__(self, message: str, *, notebook: Path, cell_index: int | None, ename: str, evalue: str):
        super().__init__(message)
        self.notebook = notebook
        self.cell_index = cell_index
        self.ename = ename
        self.evalue = evalue


class KernelDied(RuntimeError):
    """The kernel died or did not start: a transient failure the pipeline retries."""


@dataclass(frozen=True)
class Execution:
    notebook: Path          # the clean notebook that was run
    executed: Path          # the executed copy
    log: Path               # its log: cell by cell, with everything the cells printed
    wall_s: float


def ensure_kernel(name: str = KERNEL_NAME) -> None:
    """Make sure a kernelspec ``name`` exists; install ipykernel's into this environment if not."""
    from jupyter_client.kernelspec import KernelSpecManager

    if name in KernelSpecManager().find_kernel_specs():
        return
    from ipykernel.kernelspec import install

    install(kernel_name=name, prefix=sys.prefix)   # the environment running the pipeline


def parameters_cell_index(nb: nbformat.NotebookNode) -> int | None:
    for index, cell in enumerate(nb.cells):
        if "parameters" in cell.get("metadata", {}).get("tags", []):
            return index
    return None


def execute_notebook(notebook: str | os.PathLike, executed_dir: str | os.PathLike, parameters: dict[str, Any],
                     cwd: str | os.PathLike | None = None, say: Callable[[str], None] | None = None,
                     start_timeout: int = 120) -> Execution:
    """Run ``notebook`` into ``executed_dir/<name>.ipynb`` and log it to ``executed_dir/<name>.log``.

    ``say`` receives a line per code cell as it starts (the flow passes its logger). Raises
    NotebookError or KernelDied, see the module's docstring.
    """
    import papermill as pm
    from nbclient.exceptions import DeadKernelError
    from papermill.exceptions import PapermillExecutionError

    notebook = Path(notebook).resolve()
    executed_dir = Path(executed_dir)
    executed_dir.mkdir(parents=True, exist_ok=True)
    executed = executed_dir / notebook.name
    log_path = executed_dir / f"{notebook.stem}.log"
    os.environ["PAPERMILL"] = "1"   # the kernel inherits it: roots_course logs lines, not bars
    ensure_kernel()

    clean = nbformat.read(notebook, as_version=4)
    code_cells = sum(1 for c in clean.cells if c.cell_type == "code")
    shift_from = parameters_cell_index(clean)   # papermill inserts its cell right after this one

    def clean_index(executed_index: int) -> int:
        if shift_from is None:
            return max(executed_index - 1, 0)   # injected at the top
        return executed_index - 1 if executed_index > shift_from + 1 else executed_index

    started = time.perf_counter()
    with open(log_path, "w", encoding="utf-8", buffering=1) as log:
        def line(text: str) -> None:
            stamp = datetime.now(UTC).strftime("%H:%M:%S")
            log.write(f"[{stamp}] {text}\n")
            if say is not None:
                say(text)

        seen = {"code": 0}

        def on_cell_start(cell: Any, cell_index: int) -> None:
            if cell.cell_type != "code":
                return
            seen["code"] += 1
            if "injected-parameters" in cell.get("metadata", {}).get("tags", []):
                what = "the parameters papermill injected"
            else:
                first = next((s for s in cell.source.splitlines() if s.strip()), "")
                what = f"cell {clean_index(cell_index)}: {first[:80]}"
            line(f"{notebook.name}: code cell {seen['code']}/{code_cells + 1} started, {what}")

        line(f"running {notebook} -> {executed}")
        line(f"parameters: {parameters}")
        try:
            pm.execute_notebook(
                str(notebook), str(executed), parameters=parameters, kernel_name=KERNEL_NAME,
                progress_bar=False, log_output=False, stdout_file=log, stderr_file=log,
                start_timeout=start_timeout, on_cell_start=on_cell_start,
                # the kernel's working directory; papermill's own ``cwd=`` would os.chdir this whole
                # process, which two chapters running side by side in threads must not do
                resources={"metadata": {"path": str(cwd if cwd is not None else notebook.parent)}})
        except PapermillExecutionError as exc:
            index = clean_index(exc.cell_index)
            first = next((s for s in str(exc.source).splitlines() if s.strip()), "")
            evalue = _ANSI.sub("", str(exc.evalue)).strip()
            message = (f"{notebook.name} failed in cell {index} (execution count {exc.exec_count}: "
                       f"{first[:80]!r}): {exc.ename}: {evalue}. Executed notebook: {executed}; log: {log_path}")
            line(f"FAILED: {message}")
            log.write("".join(_ANSI.sub("", t) + "\n" for t in exc.traceback))
            raise NotebookError(message, notebook=notebook, cell_index=index, ename=exc.ename,
                                evalue=evalue) from None
        except DeadKernelError as exc:
            message = f"the kernel running {notebook.name} died ({exc}); log: {log_path}"
            line(f"FAILED: {message}")
            raise KernelDied(message) from exc
        except RuntimeError as exc:
            if "Kernel didn't respond" in str(exc) or "Kernel died" in str(exc):
                message = f"the kernel for {notebook.name} did not start ({exc}); log: {log_path}"
                line(f"FAILED: {message}")
                raise KernelDied(message) from exc
            raise
        wall = time.perf_counter() - started
        line(f"finished {notebook.name} in {wall:.1f} s")
    return Execution(notebook=notebook, executed=executed, log=log_path, wall_s=wall)
