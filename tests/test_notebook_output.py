"""What a published chapter shows must be the lesson, not library noise."""

import subprocess
import sys

import nbformat
import pytest


@pytest.mark.slow
def test_importing_the_library_in_a_kernel_prints_no_progress_bar_warning(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("import roots_course\nimport datasets, tqdm.auto")]
    source, executed = tmp_path / "in.ipynb", tmp_path / "out.ipynb"
    nbformat.write(nb, source)
    subprocess.run([sys.executable, "-m", "papermill", str(source), str(executed), "-k", "python3"],
                   check=True, capture_output=True, timeout=120)
    outputs = nbformat.read(executed, as_version=4).cells[0].outputs
    assert outputs == [], outputs
