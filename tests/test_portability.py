"""The course runs on every OS Python and torch run on: no POSIX-only module at import time, no paths
spelled with a hard-coded ``/``.

Windows has no ``fcntl`` (the course's locks go through ``filelock``, which picks the OS's own lock); a
module that imports it at module level would stop ``import roots_course`` there. The test imports every
module of the package in a fresh interpreter in which ``import fcntl`` fails, as it does on Windows.
"""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "roots_course"
POSIX_ONLY = ("fcntl",)

IMPORT_ALL = """
import importlib, json, sys, traceback
for name in {blocked!r}:
    sys.modules[name] = None                  # `import fcntl` now raises ImportError, as on Windows
failed = {{}}
for module in {modules!r}:
    try:
        importlib.import_module(module)
    except BaseException:
        failed[module] = traceback.format_exc(limit=-3)
print(json.dumps(failed))
"""


def package_modules() -> list[str]:
    """Every module of ``roots_course``, by its dotted name (``__main__`` is imported without running)."""
    names = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def imports_blocked(modules: list[str], blocked: tuple[str, ...]) -> dict[str, str]:
    """Import ``modules`` in a fresh interpreter where ``blocked`` cannot be imported; {module: traceback}."""
    result = subprocess.run([sys.executable, "-c", IMPORT_ALL.format(blocked=blocked, modules=modules)],
                            cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True,
                            text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_every_module_imports_without_posix_only_modules():
    modules = package_modules()
    assert len(modules) > 40 and "roots_course.store.locking" in modules and "roots_course.__main__" in modules
    failed = imports_blocked(modules, POSIX_ONLY)
    assert failed == {}, "\n".join(f"{name}:\n{trace}" for name, trace in failed.items())


def test_the_check_fails_on_a_module_that_needs_fcntl(tmp_path):
    """The check itself can fail: a module importing fcntl at module level is caught."""
    (tmp_path / "posix_only_module.py").write_text("import fcntl\n")
    result = subprocess.run([sys.executable, "-c", IMPORT_ALL.format(blocked=POSIX_ONLY, modules=["posix_only_module"])],
                            cwd=tmp_path, capture_output=True, text=True, timeout=60, check=True)
    assert "import of fcntl halted" in json.loads(result.stdout)["posix_only_module"]


# --- paths are joined with pathlib / os.path, never with a hard-coded "/" -------------------------------

# f"{folder}/{name}", folder + "/" + name, "/".join(...): a path spelled for one OS
SLASH_JOIN = re.compile(r"""f["'][^"'\n]*\}/\{|\+\s*["']/["']|["']/["']\s*\+|["']/["']\.join\(""")


def slash_joins(source: str) -> list[str]:
    """Lines of ``source`` that build a path by pasting ``/`` between strings (comments and docstrings aside)."""
    docstrings = {number for node in ast.walk(ast.parse(source))
                  if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                  and node.body and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)
                  for number in range(node.body[0].lineno, node.body[0].end_lineno + 1)}
    return [line.strip() for number, line in enumerate(source.splitlines(), 1)
            if SLASH_JOIN.search(line.split("#")[0]) and number not in docstrings]


def test_the_slash_check_sees_a_pasted_path():
    assert slash_joins('p = f"{folder}/{name}"\nq = folder + "/" + name\nr = "/".join(parts)\n') == [
        'p = f"{folder}/{name}"', 'q = folder + "/" + name', 'r = "/".join(parts)']
    assert slash_joins('p = Path(folder) / name\nurl = "a/b"  # f"{x}/{y}"\n') == []


@pytest.mark.parametrize("folder", ["store"])
def test_paths_are_built_with_pathlib(folder):
    """The store layer builds every path with pathlib (relative names in the manifest are ``as_posix()``)."""
    found = {path.relative_to(ROOT).as_posix(): hits for path in sorted((PACKAGE / folder).rglob("*.py"))
             if (hits := slash_joins(path.read_text(encoding="utf-8")))}
    assert found == {}
