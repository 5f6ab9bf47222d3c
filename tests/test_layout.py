"""The layout of `roots_course` is its architecture: this test reads the import graph from the source
(with `ast`, importing nothing) and fails, naming the modules, on anything that breaks the rules below.

Layers, from top to bottom; a module may import its own layer or a lower one, never a higher one:

    __main__                        the CLI: may import anything
    interop > society > tasks > output > optimization > representation
                                    one package per chapter; a chapter may import an earlier one
    course                          profiles, the shared pretrained run, chapter set-up, exercise checks
    core                            the GPT itself: tokenizers, attention, model, training, generation
    store                           files on disk: artifacts, checksums, locks
    base                            roots_course/__init__.py, errors.py, _offline.py

Besides the direction: no import cycle (module-level and function-level imports both count), no import
of the orchestration (`pipelines`, `prefect`, `papermill`), no `roots_course` import inside a function
outside `__main__.py` and `course/doctor.py` (the CLI imports lazily on purpose, to refuse bad arguments
before torch loads; the doctor, to report a broken install; anywhere else such an import only hides a cycle), and no module over 400 lines.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE = "roots_course"
PACKAGE_DIR = Path(__file__).resolve().parent.parent / PACKAGE

# Rank of each layer: an import may go to the same rank or a lower one.
LAYERS: dict[str, int] = {
    "base": 0,
    "store": 1,
    "core": 2,
    "course": 3,
    "representation": 4,
    "optimization": 5,
    "output": 6,
    "tasks": 7,
    "society": 8,
    "interop": 9,
}
BASE_MODULES = {PACKAGE, f"{PACKAGE}.errors", f"{PACKAGE}._offline"}
CLI = f"{PACKAGE}.__main__"
# Modules that import inside functions on purpose: the CLI (to refuse bad arguments before torch loads)
# and the doctor (to report a broken torch or configuration instead of failing to import).
LAZY_IMPORTERS = {CLI, f"{PACKAGE}.course.doctor"}
ORCHESTRATION = {"pipelines", "prefect", "papermill"}
MAX_LINES = 400


@dataclass(frozen=True)
class Import:
    """One import statement's target, as seen from the module that holds it."""

    source: str          # the importing module, e.g. "roots_course.core.train"
    target: str          # the imported module, e.g. "roots_course.core.model"
    line: int
    in_function: bool    # inside a def (or lambda), i.e. run only when the function is called


# --- reading the graph -------------------------------------------------------------------------------

def module_name(path: Path, root: Path) -> str:
    """`roots_course/core/model.py` -> `roots_course.core.model`; a package's `__init__.py` -> the package."""
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def read_sources(root: Path = PACKAGE_DIR) -> dict[str, str]:
    """Every module of the package by name, with its source text."""
    return {module_name(path, root): path.read_text(encoding="utf-8") for path in sorted(root.rglob("*.py"))}


def _absolute(node: ast.ImportFrom, source: str, is_package: bool) -> str:
    """The absolute module named by a `from ... import` (relative imports resolved against `source`)."""
    if not node.level:
        return node.module or ""
    base = source.split(".")
    base = base if is_package else base[:-1]      # `from . import x` in a package's __init__ means the package
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imports_of(source: str, text: str, modules: set[str], is_package: bool = False) -> list[Import]:
    """The imports in one module's text. `from pkg import name` counts as an import of `pkg.name` when
    that is a module of the package, otherwise as an import of `pkg`."""
    found: list[Import] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        if isinstance(node, ast.Import):
            for alias in node.names:
                found.append(Import(source, alias.name, node.lineno, in_function))
        elif isinstance(node, ast.ImportFrom):
            module = _absolute(node, source, is_package)
            for alias in node.names:
                candidate = f"{module}.{alias.name}"
                found.append(Import(source, candidate if candidate in modules else module, node.lineno, in_function))
        inside = in_function or isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
        for child in ast.iter_child_nodes(node):
            visit(child, inside)

    visit(ast.parse(text, filename=source), False)
    return found


def read_graph(sources: dict[str, str], packages: set[str] | None = None) -> list[Import]:
    """All imports of all modules. `packages` names the modules that are packages (their `__init__`);
    by default, any module that another module's name extends."""
    modules = set(sources)
    if packages is None:
        packages = {m for m in modules if any(other.startswith(m + ".") for other in modules)}
    return [imp for name, text in sources.items() if not _syntax_error(name, text)
            for imp in imports_of(name, text, modules, name in packages)]


def _syntax_error(name: str, text: str) -> str | None:
    try:
        ast.parse(text, filename=name)
    except SyntaxError as error:
        return f"{name}:{error.lineno} does not parse: {error.msg}"
    return None


# --- the rules -----------------------------------------------------------------------------------------

def layer_of(module: str) -> str | None:
    """The layer a module of the package belongs to; None for the CLI (above every layer) or a module
    that is in no layer (which is itself a failure, see `unplaced_modules`)."""
    if module in BASE_MODULES:
        return "base"
    parts = module.split(".")
    if module == CLI or len(parts) < 2 or parts[1] not in LAYERS:
        return None
    return parts[1]


def internal(imp: Import, modules: set[str]) -> bool:
    return imp.target in modules


def unplaced_modules(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if m != CLI and layer_of(m) is None)


def against_direction(graph: list[Import], modules: set[str]) -> list[str]:
    problems = []
    for imp in graph:
        if imp.source == CLI or not internal(imp, modules):
            continue
        here, there = layer_of(imp.source), layer_of(imp.target)
        if imp.target == CLI:
            problems.append(f"{imp.source}:{imp.line} imports the CLI {CLI}")
        elif here is not None and there is not None and LAYERS[there] > LAYERS[here]:
            problems.append(f"{imp.source}:{imp.line} ({here}) imports {imp.target} ({there}), a higher layer")
    return sorted(set(problems))


def orchestration_imports(graph: list[Import]) -> list[str]:
    return sorted({f"{imp.source}:{imp.line} imports {imp.target}" for imp in graph
                   if imp.target.split(".")[0] in ORCHESTRATION})


def function_level_imports(graph: list[Import], modules: set[str]) -> list[str]:
    return sorted({f"{imp.source}:{imp.line} imports {imp.target} inside a function" for imp in graph
                   if imp.in_function and imp.source not in LAZY_IMPORTERS and imp.target.split(".")[0] == PACKAGE})


def cycles(graph: list[Import], modules: set[str]) -> list[list[str]]:
    """Each group of modules that import each other in a loop (a strongly connected component of two or
    more modules, or one that imports itself), found with Tarjan's algorithm."""
    edges: dict[str, set[str]] = {m: set() for m in modules}
    for imp in graph:
        if internal(imp, modules):
            edges[imp.source].add(imp.target)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def connect(node: str) -> None:   # recursion depth is bounded by the package's ~60 modules
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(edges[node]):
            if nxt not in index:
                connect(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1 or node in edges[node]:
                groups.append(sorted(group))

    for node in sorted(modules):
        if node not in index:
            connect(node)
    return sorted(groups)


def cycle_problems(graph: list[Import], modules: set[str]) -> list[str]:
    problems = []
    for group in cycles(graph, modules):
        links = sorted({f"{i.source}:{i.line} -> {i.target}" for i in graph
                        if i.source in group and i.target in group})
        problems.append(f"cycle among {', '.join(group)} ({'; '.join(links)})")
    return problems


def long_modules(sources: dict[str, str], limit: int = MAX_LINES) -> list[str]:
    return sorted(f"{name} has {len(text.splitlines())} lines (limit {limit})"
                  for name, text in sources.items() if len(text.splitlines()) > limit)


def all_problems(sources: dict[str, str], packages: set[str] | None = None) -> dict[str, list[str]]:
    """Every rule's failures, by rule."""
    graph, modules = read_graph(sources, packages), set(sources)
    return {
        "syntax": sorted(filter(None, (_syntax_error(name, text) for name, text in sources.items()))),
        "unplaced": unplaced_modules(modules),
        "direction": against_direction(graph, modules),
        "orchestration": orchestration_imports(graph),
        "function_level": function_level_imports(graph, modules),
        "cycles": cycle_problems(graph, modules),
        "long": long_modules(sources),
    }


# --- the checker on a small made-up package, so that each rule is seen to fail -------------------------

FAKE_CLEAN = {
    "roots_course": '"""Base."""\nfrom roots_course._offline import keep\n',
    "roots_course._offline": "def keep():\n    import os\n    return os\n",
    "roots_course.errors": "class Bad(Exception):\n    pass\n",
    "roots_course.__main__": "def main():\n    from roots_course.society import bias\n    import roots_course.core.model\n",
    "roots_course.store": "",
    "roots_course.store.artifacts": "import json\nfrom roots_course.errors import Bad\n",
    "roots_course.core": "",
    "roots_course.core.model": "import torch\nfrom roots_course.store import artifacts\n",
    "roots_course.core.train": "from . import model\nfrom .model import GPT\nfrom ..store.artifacts import x\n",
    "roots_course.course": "",
    "roots_course.course.config": "from roots_course.core.model import GPT\n",
    "roots_course.tasks": "",
    "roots_course.tasks.task_data": "from roots_course.course import config\n",
    "roots_course.society": '"""Society."""\nfrom roots_course.society.bias import *\n',
    "roots_course.society.bias": "from roots_course.tasks.task_data import F\n",
}


def test_checker_passes_a_clean_package() -> None:
    assert all_problems(FAKE_CLEAN) == {rule: [] for rule in all_problems(FAKE_CLEAN)}


def test_checker_resolves_relative_imports() -> None:
    targets = {i.target for i in read_graph(FAKE_CLEAN) if i.source == "roots_course.core.train"}
    assert targets == {"roots_course.core.model", "roots_course.store.artifacts"}


def test_checker_names_each_kind_of_failure() -> None:
    broken = dict(FAKE_CLEAN)
    broken["roots_course.store.artifacts"] = "from roots_course.core.model import GPT\n"       # up, and a cycle
    broken["roots_course.course.config"] = "def f():\n    from roots_course.core import train\n"
    broken["roots_course.tasks.task_data"] = "import prefect\nfrom pipelines.settings import X\n"
    broken["roots_course.tasks.rogue"] = "from roots_course.interop.export import y\n"
    broken["roots_course.interop"] = ""
    broken["roots_course.interop.export"] = "from roots_course.__main__ import main\n"
    broken["roots_course.society.bias"] = "import roots_course.society.bias\n" + "x = 1\n" * MAX_LINES
    broken["roots_course.helpers"] = ""
    broken["roots_course.core.half_written"] = "def f(:\n"
    problems = all_problems(broken)

    assert problems["syntax"] == ["roots_course.core.half_written:1 does not parse: invalid syntax"]
    assert problems["unplaced"] == ["roots_course.helpers"]
    assert problems["direction"] == [
        "roots_course.interop.export:1 imports the CLI roots_course.__main__",
        "roots_course.store.artifacts:1 (store) imports roots_course.core.model (core), a higher layer",
        "roots_course.tasks.rogue:1 (tasks) imports roots_course.interop.export (interop), a higher layer",
    ]
    assert problems["orchestration"] == ["roots_course.tasks.task_data:1 imports prefect",
                                         "roots_course.tasks.task_data:2 imports pipelines.settings"]
    assert problems["function_level"] == [
        "roots_course.course.config:2 imports roots_course.core.train inside a function"]
    assert problems["cycles"] == [
        ("cycle among roots_course.core.model, roots_course.store.artifacts "
         "(roots_course.core.model:2 -> roots_course.store.artifacts; "
         "roots_course.store.artifacts:1 -> roots_course.core.model)"),
        "cycle among roots_course.society.bias (roots_course.society.bias:1 -> roots_course.society.bias)",
    ]
    assert problems["long"] == [f"roots_course.society.bias has {MAX_LINES + 1} lines (limit {MAX_LINES})"]


def test_function_level_import_counts_in_a_cycle() -> None:
    """A cycle hidden behind a function-level import is still a cycle."""
    sources = {**FAKE_CLEAN,
               "roots_course.store.artifacts": "def f():\n    from roots_course.store import integrity\n",
               "roots_course.store.integrity": "from roots_course.store.artifacts import f\n"}
    assert all_problems(sources)["cycles"] == [
        ("cycle among roots_course.store.artifacts, roots_course.store.integrity "
         "(roots_course.store.artifacts:2 -> roots_course.store.integrity; "
         "roots_course.store.integrity:1 -> roots_course.store.artifacts)")]


# --- the real package --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def problems() -> dict[str, list[str]]:
    return all_problems(read_sources())


def test_the_package_is_read() -> None:
    sources = read_sources()
    assert {CLI, f"{PACKAGE}.core.model", f"{PACKAGE}.store.artifacts"} <= set(sources)
    graph = read_graph(sources)
    importers_of_the_model = {i.source for i in graph if i.target == f"{PACKAGE}.core.model"}
    assert f"{PACKAGE}.core.generate" in importers_of_the_model


@pytest.mark.parametrize("rule, meaning", [
    ("syntax", "modules that do not parse (their imports are not checked)"),
    ("unplaced", "modules in no layer (add the layer to LAYERS or move the module)"),
    ("direction", "imports against the layer direction"),
    ("orchestration", "imports of pipelines/prefect/papermill"),
    ("function_level", "roots_course imports inside functions outside __main__.py"),
    ("cycles", "import cycles"),
    ("long", f"modules over {MAX_LINES} lines"),
])
def test_layout_rule(problems: dict[str, list[str]], rule: str, meaning: str) -> None:
    found = problems[rule]
    assert not found, f"{len(found)} {meaning}:\n  " + "\n  ".join(found)


def test_each_subpackage_says_what_it_holds_and_may_import() -> None:
    """Each subpackage's ``__init__`` docstring names every module it holds and what it may import, so
    that the map a reader opens first matches the tree."""
    problems = []
    for layer in LAYERS:
        if layer == "base":
            continue
        init = PACKAGE_DIR / layer / "__init__.py"
        doc = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8"))) or ""
        if "may import" not in doc.lower():
            problems.append(f"{PACKAGE}.{layer}: the docstring does not say what it may import")
        for module in sorted(p.stem for p in (PACKAGE_DIR / layer).glob("*.py") if p.stem != "__init__"):
            if f"``{module}``" not in doc:
                problems.append(f"{PACKAGE}.{layer}: the docstring does not name ``{module}``")
    assert not problems, "\n  ".join(["subpackage docstrings out of date:", *problems])
