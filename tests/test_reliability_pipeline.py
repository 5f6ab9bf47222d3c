"""Reliability of the pipeline (issue #9), faults injected for real on the tiny course of
tests/pipeline_course.py: two runs of one profile at once (two real processes), a kernel killed with
SIGKILL, an error in a cell, a full disk and a read-only artifacts folder.

Already tested in test_pipeline.py: a kernel that exits is retried (test_the_sub_flows_run_their_chapters_
and_a_dead_kernel_is_retried); a failing cell is named and the book left as it was
(test_a_failing_chapter_names_its_cell_and_leaves_the_book_as_it_was)."""

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pipeline_course import make_course, tree_state, write_notebook

import pipelines  # noqa: F401  (Prefect's environment before prefect is imported)
from roots_course.store import integrity

ROOT = Path(__file__).resolve().parent.parent

# every test starts a Prefect server (over a minute on a 2-core machine) or runs the pipeline
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def prefect_api():
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield PREFECT_API_URL.value()


@pytest.fixture
def course(tmp_path):
    return make_course(tmp_path, chapters=(1, 2))


def run(flow, course, **kwargs):
    return flow(profile="smoke", notebooks_dir=str(course["notebooks"]), artifacts_dir=str(course["artifacts"]),
                **kwargs)


def pipeline_command(course, *extra: str) -> list[str]:
    return [sys.executable, "-m", "pipelines", "run", "--profile", "smoke", "--notebooks-dir", str(course["notebooks"]),
            "--artifacts-dir", str(course["artifacts"]), "--book-dir", str(course["book"]), *extra]


def wait_until(check, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


# --- two runs of one profile at once ---------------------------------------------------------------

WAIT_FOR_RELEASE = """import time
release = out.parent / "release"
deadline = time.time() + 240
while not release.exists() and time.time() < deadline:
    time.sleep(0.2)"""


def test_a_second_run_of_the_profile_is_refused_naming_the_first_and_nothing_is_corrupted(prefect_api, course):
    write_notebook(course["notebooks"], 1, extra=WAIT_FOR_RELEASE)     # the first run stays inside chapter 1
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PREFECT_API_URL": prefect_api}
    lock = course["artifacts"] / "smoke" / ".run.lock"
    with open(course["artifacts"].parent / "first.log", "w") as log:
        first = subprocess.Popen(pipeline_command(course, "--no-publish"), cwd=ROOT, env=env, stdout=log,
                                 stderr=subprocess.STDOUT)
        try:
            wait_until(lambda: (course["artifacts"] / "smoke" / "executed" / "01_representation.log").is_file(), 180,
                       "the first run to start chapter 1")
            started = time.monotonic()
            second = subprocess.run(pipeline_command(course), cwd=ROOT, env=env, check=False, capture_output=True,
                                    text=True, timeout=120)
            assert time.monotonic() - started < 30, "refused at once, before starting Prefect"
            assert second.returncode == 3, second.stdout + second.stderr
            assert f"error: another run of profile 'smoke' is using {course['artifacts'] / 'smoke'}: " \
                   f"pid {first.pid} on " in second.stderr
            assert f"holds the lock {lock}. Wait for that process to finish" in second.stderr
            assert first.poll() is None, "the first run goes on"
        finally:
            (course["artifacts"] / "release").write_text("go")
            first.wait(timeout=240)
    assert first.returncode == 0, (course["artifacts"].parent / "first.log").read_text()[-3000:]
    profile = course["artifacts"] / "smoke"
    manifest = json.loads((profile / "manifest.json").read_text())
    assert manifest["pipeline"]["status"] == "completed"
    assert [c["status"] for c in manifest["pipeline"]["chapters"]] == ["ran", "ran"]
    assert integrity.check_tree(profile) == [] and len(manifest["checksums"]) >= 4
    assert not (course["book"] / "chapters").exists(), "the refused run published nothing"


def test_a_run_inside_prefect_is_refused_too_and_a_killed_holder_leaves_no_lock(prefect_api, course):
    from pipelines.flows import regenerate
    from roots_course.errors import BusyError

    lock = course["artifacts"] / "smoke" / ".run.lock"
    hold = ("import sys, time\nfrom roots_course.store.locking import FileLock\n"
            "with FileLock(sys.argv[1], 'a test holder'):\n    print('held', flush=True)\n    time.sleep(300)")
    holder = subprocess.Popen([sys.executable, "-c", hold, str(lock)], cwd=ROOT,
                              env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(BusyError, match=f"another run of profile 'smoke' is using .*: pid {holder.pid} on "):
            run(regenerate, course, publish=False)
    finally:
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait(timeout=30)
    assert not (course["artifacts"] / "smoke" / "executed").exists(), "nothing ran"
    assert set(run(regenerate, course, publish=False)["chapters"].values()) == {"ran"}   # the kernel freed the lock


# --- retries ---------------------------------------------------------------------------------------

def test_a_kernel_killed_with_sigkill_is_retried_and_the_run_completes(prefect_api, course):
    from pipelines.flows import pretrain

    write_notebook(course["notebooks"], 2, extra="import os, signal\nmarker = out / 'killed-once'\n"
                                                 "if not marker.exists():\n    marker.write_text('x')\n"
                                                 "    os.kill(os.getpid(), signal.SIGKILL)")
    assert run(pretrain, course)["chapters"] == {"01_representation": "ran", "02_optimization": "ran"}
    assert (course["artifacts"] / "smoke" / "killed-once").is_file()
    log = (course["artifacts"] / "smoke" / "executed" / "02_optimization.log").read_text()
    assert "finished 02_optimization.ipynb" in log


def test_an_error_in_a_cell_is_not_retried_and_names_notebook_cell_and_exception(prefect_api, course):
    from pipelines.flows import PipelineFailed, pretrain

    write_notebook(course["notebooks"], 2, extra="with open(out / 'attempts.txt', 'a') as f:\n    f.write('x')\n"
                                                 "ratio = 1 / 0")
    with pytest.raises(PipelineFailed) as info:
        run(pretrain, course)
    message = str(info.value)
    assert "02_optimization.ipynb failed in cell 5" in message and "with open(out / 'attempts.txt', 'a')" in message
    assert "ZeroDivisionError: division by zero" in message
    assert (course["artifacts"] / "smoke" / "attempts.txt").read_text() == "x", "run once, not retried"


# --- a full disk -----------------------------------------------------------------------------------

FILL_THE_DISK = """from roots_course.store import artifacts
artifacts.atomic_write_bytes(out / "big.bin", b"x" * 8_000_000)"""


@pytest.fixture
def small_disk(tmp_path):
    """A 3 MB tmpfs for the artifacts; skipped where mounting one is not allowed (it needs root with
    CAP_SYS_ADMIN); the test after this one injects the same error into the pipeline's own writes."""
    mount = tmp_path / "small-disk"
    mount.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount)], check=False,
                            capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({result.stderr.strip() or result.returncode}); "
                    "test_the_pipeline_s_own_writes_failing_with_enospc covers the error path")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=False)


def test_a_full_disk_fails_with_the_way_out_and_loses_nothing(prefect_api, course, small_disk):
    from pipelines.flows import PipelineFailed, regenerate

    course["artifacts"] = small_disk
    run(regenerate, course, book_dir=str(course["book"]))
    before = tree_state(course["book"])
    write_notebook(course["notebooks"], 2, extra=FILL_THE_DISK)
    with pytest.raises(PipelineFailed) as info:
        run(regenerate, course, book_dir=str(course["book"]))
    message = str(info.value)
    assert "02_optimization.ipynb failed in cell 5" in message and "No space left on device" in message
    assert f"The disk holding {small_disk / 'smoke'} is full" in message and "--artifacts-dir" in message
    assert tree_state(course["book"]) == before, "the published book is untouched"
    profile = small_disk / "smoke"
    assert not list(profile.glob(".big.bin.*")), "the failed write left no temporary file taking the space"
    assert integrity.check_tree(profile) == [], "what chapters 1 and 2 wrote before is intact"
    assert json.loads((profile / "manifest.json").read_text())["pipeline"]["status"] == "failed"


def test_the_pipeline_s_own_writes_failing_with_enospc_are_explained_and_lose_nothing(prefect_api, course,
                                                                                        monkeypatch):
    from pipelines.flows import PipelineFailed, regenerate
    from roots_course.store import atomic

    run(regenerate, course, book_dir=str(course["book"]))
    before, profile = tree_state(course["book"]), course["artifacts"] / "smoke"
    chapter_1 = {rel: tree_state(profile)[rel] for rel in ("corpus.txt", "metrics/representation.json")}
    real = atomic.write_atomically

    def disk_full(path, fill, around_rename=None):
        if Path(path).resolve().is_relative_to(profile.resolve()):
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real(path, fill, around_rename)

    monkeypatch.setattr(atomic, "write_atomically", disk_full)    # every file write: record, checksums, manifest
    write_notebook(course["notebooks"], 2, extra="print('changed')")
    with pytest.raises(PipelineFailed) as info:
        run(regenerate, course, book_dir=str(course["book"]))
    message = str(info.value)
    assert "[Errno 28] No space left on device" in message and f"The disk holding {profile} is full" in message
    assert "the run's manifest could not be written" in message
    assert tree_state(course["book"]) == before, "the published book is untouched"
    monkeypatch.undo()
    assert integrity.check_tree(profile) == []
    assert {rel: tree_state(profile)[rel] for rel in chapter_1} == chapter_1, "chapter 1's artifacts are kept"
    assert set(run(regenerate, course, book_dir=str(course["book"]))["chapters"].values()) == {"cached", "ran"}


# --- a read-only artifacts folder ----------------------------------------------------------------------

@pytest.fixture
def unwritable(tmp_path):
    """Make a folder unwritable: chmod for a normal user; as root (whom chmod does not stop) the immutable
    attribute, skipped with the reason where the file system or the container does not allow it."""
    made = []

    def make(folder: Path) -> None:
        if os.geteuid() != 0:
            folder.chmod(0o555)
        else:
            result = subprocess.run(["chattr", "+i", str(folder)], check=False, capture_output=True, text=True)
            if result.returncode != 0:
                pytest.skip(f"running as root, and chattr +i is not allowed here ({result.stderr.strip()}): "
                            "no way to make a folder read-only for root")
        made.append(folder)

    yield make
    for folder in made:
        if os.geteuid() == 0:
            subprocess.run(["chattr", "-i", str(folder)], check=False)
        else:
            folder.chmod(0o755)


def test_a_read_only_artifacts_folder_is_refused_before_any_work(course, unwritable):
    profile = course["artifacts"] / "smoke"
    profile.mkdir(parents=True)
    (profile / "tokenizer.json").write_text('{"kept": true}')
    unwritable(profile)
    book = tree_state(course["book"])
    started = time.monotonic()
    result = subprocess.run(pipeline_command(course), cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                            check=False, capture_output=True, text=True, timeout=120)
    assert time.monotonic() - started < 60, "refused before starting Prefect"
    assert result.returncode == 3, result.stdout + result.stderr
    assert f"error: cannot write to the artifacts folder {profile} (" in result.stderr
    assert "Nothing was run; the published book and the artifacts already there are as they were." in result.stderr
    assert tree_state(course["book"]) == book and tree_state(profile) == {"tokenizer.json": b'{"kept": true}'}
