"""The README's two commands are the ones that work: CI runs the test command verbatim."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    return re.findall(r"```bash\n(.+?)\n```", text, flags=re.S)[:2]


def test_readme_opens_with_two_commands_that_set_up_and_run():
    main_job, tests = _readme_commands()
    for command in (main_job, tests):
        assert "\n" not in command
        assert command.startswith("python3.11 -m venv .venv && .venv/bin/pip install -e . && ")
    assert "pipelines run --profile cpu" in main_job
    assert "pytest" in tests


def test_ci_runs_the_readme_test_command():
    test_command = _readme_commands()[1].split(" && ")[-1]
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert test_command in ci.splitlines()
