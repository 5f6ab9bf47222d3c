"""The README leads a newcomer in order (read, run a chapter, regenerate, test) with commands that work.

Its two set-up commands are the only ones that create the environment: the first installs the course
(the default install) and builds the book; the second installs the test extra and runs the tests,
exactly as CI does (``.ci/run``). Every ``python -m roots_course`` and ``python -m pipelines`` command
it shows parses with the real command line.
"""

import re
import shlex
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SETUP = "python3.11 -m venv .venv && "


def _readme() -> str:
    return (ROOT / "README.md").read_text(encoding="utf-8")


def _bash_blocks() -> list[str]:
    return re.findall(r"```bash\n(.+?)\n```", _readme(), flags=re.DOTALL)


def _setup_commands() -> list[str]:
    return [block for block in _bash_blocks() if block.startswith(SETUP)]


def test_the_sections_go_from_reading_to_testing():
    headings = re.findall(r"^## (.+)$", _readme(), flags=re.MULTILINE)
    steps = [next(i for i, h in enumerate(headings) if word in h) for word in ("Read", "Run a chapter",
                                                                                  "Regenerate", "Test")]
    assert steps == sorted(steps) and steps[0] == 0, headings


def test_two_set_up_commands_read_the_book_then_run_the_tests():
    commands = _setup_commands()
    assert len(commands) == 2, commands
    read, tests = commands
    for command in commands:
        assert "\n" not in command
    assert read == SETUP + ".venv/bin/pip install -e . && .venv/bin/jupyter-book build book/"
    assert tests.startswith(SETUP + ".venv/bin/pip install -e '.[test]' && ")
    assert "pytest" in tests


def test_ci_runs_the_readme_test_command_with_the_test_extra():
    test_command = _setup_commands()[1].split(" && ")[-1]
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert test_command in ci.splitlines()
    installs = [line for line in ci.splitlines() if "pip install" in line and "-e " in line]
    assert installs and all("-e '.[test]'" in line for line in installs), installs


def _cli_commands() -> list[tuple[str, list[str]]]:
    found = []
    for block in _bash_blocks():
        for line in block.splitlines():
            for piece in line.split(" && "):
                match = re.search(r"python -m (roots_course|pipelines) (.*)", piece.split("  #")[0])
                if match:
                    found.append((match.group(1), shlex.split(match.group(2))))
    return found


def test_the_readme_shows_commands_of_both_command_lines():
    kinds = {kind for kind, _ in _cli_commands()}
    assert kinds == {"roots_course", "pipelines"}


@pytest.mark.parametrize("kind, argv", _cli_commands(), ids=lambda x: " ".join(x) if isinstance(x, list) else x)
def test_every_command_the_readme_shows_parses(kind, argv):
    if kind == "roots_course":
        from roots_course.__main__ import build_parser
    else:
        from pipelines.__main__ import build_parser
    build_parser().parse_args(argv)    # an unknown command or flag exits with an error here


def test_the_readme_states_the_licences_and_points_to_the_benchmarks():
    text = _readme()
    assert (ROOT / "LICENSE").is_file() and (ROOT / "CITATION.cff").is_file()
    assert "CC BY 4.0" in text and "MIT" in text
    assert "benchmarks/README.md" in text
