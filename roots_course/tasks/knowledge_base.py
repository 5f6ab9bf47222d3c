"""The question-answering task's knowledge: which standard-library module defines which public
function or class, read from the modules' source with ``ast`` (nothing is imported or run)."""

from __future__ import annotations

import ast
import sysconfig
from collections import Counter
from pathlib import Path

from roots_course.errors import ConfigError, DataError
from roots_course.tasks.task_types import seeded_rng

# The modules of the knowledge base, in order of preference: familiar ones, whose functions have
# telling names. A profile takes the first qa_modules of them.
KB_MODULES = ("json", "os", "shutil", "statistics", "base64", "logging", "functools", "heapq", "tempfile",
              "textwrap", "calendar", "traceback", "urllib.parse", "contextlib", "dataclasses", "difflib",
              "inspect", "platform", "threading", "subprocess", "warnings", "uuid", "ast", "typing")
QUESTION_TEMPLATES = ("Which module defines `{name}`?", "In which module is `{name}` defined?",
                      "`{name}` is defined in which module?")


def _module_source(module: str) -> Path:
    root = Path(sysconfig.get_paths()["stdlib"])
    path = root / (module.replace(".", "/") + ".py")
    return path if path.is_file() else root / module.replace(".", "/") / "__init__.py"


def public_definitions(module: str) -> list[str]:
    """Names of the public functions and classes a standard-library module *defines* (top-level def
    and class statements of its source, read with ast: nothing is imported or run), limited to
    ``__all__`` when the module states it."""
    path = _module_source(module)
    if not path.is_file():
        raise DataError(f"no source file for standard-library module {module!r} (looked for {path})")
    tree = ast.parse(path.read_bytes(), filename=str(path))
    exported = _exported_names(tree)
    return sorted(n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))
                  and not n.name.startswith("_") and (exported is None or n.name in exported))


def _exported_names(tree: ast.Module) -> set[str] | None:
    """The names a module lists in ``__all__`` (also via ``__all__ += [...]``, ``__all__.extend([...])``
    and ``__all__.append(...)`` with literal arguments, as os.py does); None when it has no ``__all__``."""
    exported: set[str] | None = None
    for node in ast.walk(tree):
        value = None
        assigned = isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__"
                                                        for t in node.targets)
        augmented = isinstance(node, ast.AugAssign) and isinstance(node.target, ast.Name) and node.target.id == "__all__"
        if assigned or augmented:
            value = node.value
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
              and isinstance(node.func.value, ast.Name) and node.func.value.id == "__all__"
              and node.func.attr in ("extend", "append") and node.args):
            value = node.args[0] if node.func.attr == "extend" else ast.List([node.args[0]])
        if value is not None:
            try:
                exported = (exported or set()) | set(ast.literal_eval(value))
            except ValueError:
                exported = exported or set()
    return exported


def knowledge_base(n_modules: int, per_module: int = 20, seed: int = 0) -> dict[str, str]:
    """name → module for the first ``n_modules`` of KB_MODULES. A name defined by two of them is left
    out (the question would have two answers); a module keeps at most ``per_module`` names, chosen by
    a seeded shuffle, so that no module dominates the answers."""
    modules = list(KB_MODULES[:n_modules])
    if len(modules) < n_modules:
        raise ConfigError(f"qa_modules can be at most {len(KB_MODULES)}, got {n_modules}")
    names = {m: public_definitions(m) for m in modules}
    counts = Counter(n for ns in names.values() for n in ns)
    kb: dict[str, str] = {}
    for m in modules:
        unique = [n for n in names[m] if counts[n] == 1]
        seeded_rng(seed, f"kb:{m}").shuffle(unique)
        kb.update({n: m for n in unique[:per_module]})
    return kb
