"""The flows against a real Prefect API (one temporary server for the whole test session), running
real notebooks with papermill: a tiny five-chapter course for caching, failures, retries and the
sub-flows, and the course's own chapters under ``smoke`` end to end."""

import json
import time
from pathlib import Path

import nbformat
import pytest
from pipeline_course import copy_book, make_course, tree_state, write_notebook

import pipelines  # noqa: F401  (Prefect's environment before prefect is imported)

ROOT = Path(__file__).resolve().parent.parent

# every test starts a Prefect server (over a minute on a 2-core machine) and runs notebooks
pytestmark = pytest.mark.slow


@pytest.fixture(scope="session")
def prefect_api():
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture
def course(tmp_path):
    return make_course(tmp_path)


def run(flow, course, **kwargs):
    return flow(profile="smoke", notebooks_dir=str(course["notebooks"]), artifacts_dir=str(course["artifacts"]),
                **kwargs)


def statuses(result):
    return [result["chapters"][name] for name in sorted(result["chapters"])]


def pipeline_manifest(course):
    return json.loads((course["artifacts"] / "smoke" / "manifest.json").read_text())["pipeline"]


def test_bad_parameters_fail_before_any_work(prefect_api, course):
    from prefect.exceptions import ParameterTypeError

    from pipelines.flows import regenerate
    from pipelines.parameters import ParameterError

    with pytest.raises(ParameterError, match="parameter 'profile': unknown profile 'huge'"):
        regenerate(profile="huge", notebooks_dir=str(course["notebooks"]), artifacts_dir=str(course["artifacts"]))
    with pytest.raises(ParameterError, match="parameter 'chapters': no notebook for chapter 7"):
        run(regenerate, course, chapters=[7])
    with pytest.raises(ParameterError, match="parameter 'book_dir': .* is not a Jupyter Book folder"):
        run(regenerate, course, book_dir=str(course["notebooks"]))
    with pytest.raises(ParameterTypeError, match="seed"):
        run(regenerate, course, seed="many")
    with pytest.raises(ParameterTypeError, match="chapters"):
        run(regenerate, course, chapters="all")
    assert not course["artifacts"].exists(), "nothing ran"


def test_a_second_run_skips_and_a_changed_chapter_reruns_with_its_dependents(prefect_api, course):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    from pipelines.flows import regenerate

    book = course["book"]
    started = time.perf_counter()
    first = run(regenerate, course, book_dir=str(book))
    first_s = time.perf_counter() - started
    assert statuses(first) == ["ran"] * 5
    assert Path(first["book"]) == book / "_build" / "html" / "index.html" and Path(first["book"]).is_file()
    pages = sorted(p.name for p in (book / "chapters").glob("*.ipynb"))
    assert pages == [f"0{n}_{s}.ipynb" for n, s in
                     ((1, "representation"), (2, "optimization"), (3, "output"), (4, "tasks"), (5, "society"))]
    stamped = nbformat.read(book / "chapters" / "03_output.ipynb", as_version=4)
    assert stamped.cells[1].id == "roots-provenance" and "`smoke`" in stamped.cells[1].source
    assert (book / "_build" / "html" / "chapters" / "05_society.html").is_file()
    executed = course["artifacts"] / "smoke" / "executed"
    assert (executed / "02_optimization.ipynb").is_file() and (executed / "02_optimization.log").is_file()

    manifest = pipeline_manifest(course)
    assert manifest["status"] == "completed" and manifest["profile"] == "smoke"
    assert set(manifest["git"]) == {"commit", "dirty"} and manifest["packages"]["prefect"]
    assert manifest["seeds"] == {"seed": 1337}
    assert manifest["chapters"][1]["metrics"] == {"optimization.summary.val_loss": 1.25,
                                                  "optimization.summary.steps": 10}
    assert all(entry["wall_s"] > 0 for entry in manifest["chapters"])

    published = tree_state(book)
    started = time.perf_counter()
    second = run(regenerate, course, book_dir=str(book))
    second_s = time.perf_counter() - started
    assert statuses(second) == ["cached"] * 5
    assert tree_state(book) == published, "nothing changed, so the book is not rewritten"
    print(f"\nfixture course: first regenerate {first_s:.1f} s, second (all cached) {second_s:.1f} s")

    write_notebook(course["notebooks"], 3, extra="print('a changed chapter')")
    third = run(regenerate, course, book_dir=str(book))
    assert third["chapters"] == {"01_representation": "cached", "02_optimization": "cached", "03_output": "ran",
                                 "04_tasks": "cached", "05_society": "ran"}
    assert "a changed chapter" in (book / "chapters" / "03_output.ipynb").read_text()

    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["roots-regenerate-smoke"])))
    assert artifacts and artifacts[0].type == "markdown"
    assert "| chapter | status | wall time (s) | key metrics |" in artifacts[0].data


def test_a_smoke_run_publishes_into_its_own_book_not_the_committed_one(prefect_api, course):
    from pipelines.flows import publish_book, regenerate

    committed = tree_state(ROOT / "book" / "chapters")
    result = run(regenerate, course, chapters=[1])
    own = course["artifacts"] / "smoke" / "book"
    assert Path(result["book"]) == own.resolve() / "_build" / "html" / "index.html" and Path(result["book"]).is_file()
    assert sorted(p.name for p in (own / "chapters").glob("*.ipynb")) == ["01_representation.ipynb"]
    assert (own / "intro.md").read_bytes() == (ROOT / "book" / "intro.md").read_bytes()
    assert Path(run(publish_book, course, chapters=[1])) == Path(result["book"])
    assert tree_state(ROOT / "book" / "chapters") == committed, "the committed book is untouched"


def test_a_failing_chapter_names_its_cell_and_leaves_the_book_as_it_was(prefect_api, course):
    from pipelines.flows import PipelineFailed, regenerate

    book = course["book"]
    run(regenerate, course, book_dir=str(book), chapters=[1, 2])
    before = tree_state(book)
    write_notebook(course["notebooks"], 2, extra="rate = 1 / 0")
    with pytest.raises(PipelineFailed) as info:
        run(regenerate, course, book_dir=str(book))
    message = str(info.value)
    assert "02_optimization.ipynb failed in cell 5" in message and "ZeroDivisionError: division by zero" in message
    assert "rate = 1 / 0" in message
    assert tree_state(book) == before
    manifest = pipeline_manifest(course)
    assert manifest["status"] == "failed" and "ZeroDivisionError" in manifest["error"]
    assert [e["status"] for e in manifest["chapters"]] == ["cached", "failed", "not run", "not run", "not run"]


def test_the_sub_flows_run_their_chapters_and_a_dead_kernel_is_retried(prefect_api, course):
    from pipelines.flows import evaluate, finetune, pretrain, publish_book
    from pipelines.publish import PublishError

    assert statuses(run(pretrain, course)) == ["ran", "ran"]
    with pytest.raises(PublishError, match="chapter 3 .* has no successful run"):
        run(publish_book, course, book_dir=str(course["book"]))
    # chapter 4's kernel dies the first time: a transient failure, retried
    write_notebook(course["notebooks"], 4, extra="import os\nmarker = out / 'died-once'\n"
                                                 "if not marker.exists():\n    marker.write_text('x')\n    os._exit(1)")
    assert run(finetune, course)["chapters"] == {"04_tasks": "ran"}
    assert (course["artifacts"] / "smoke" / "died-once").is_file()
    assert run(evaluate, course)["chapters"] == {"03_output": "ran", "05_society": "ran"}
    html = Path(run(publish_book, course, book_dir=str(course["book"])))
    assert html.is_file() and len(list((course["book"] / "chapters").glob("*.ipynb"))) == 5


def test_regenerate_the_course_under_smoke_end_to_end(prefect_api, tmp_path):
    """The course's own chapters, into the project's artifacts/smoke (as nbval's run uses them), published
    into a copy of book/ and built. A second run with nothing changed skips every chapter."""
    from pipelines.chapters import discover
    from pipelines.flows import regenerate

    chapters = discover(ROOT / "notebooks")
    if not chapters:
        pytest.skip("no chapter notebooks in notebooks/ yet")
    book = copy_book(tmp_path / "book")
    started = time.perf_counter()
    first = regenerate(profile="smoke", book_dir=str(book))
    first_s = time.perf_counter() - started
    assert set(first["chapters"].values()) <= {"ran", "cached"}
    for chapter in chapters:
        page = book / "_build" / "html" / "chapters" / f"{chapter.name}.html"
        assert page.is_file(), page
        assert "How this page was made" in page.read_text(encoding="utf-8")
    started = time.perf_counter()
    second = regenerate(profile="smoke", book_dir=str(book))
    second_s = time.perf_counter() - started
    assert set(second["chapters"].values()) == {"cached"}
    print(f"\nsmoke course ({len(chapters)} chapters): first regenerate {first_s:.1f} s "
          f"({sorted(set(first['chapters'].values()))}), second {second_s:.1f} s (all cached)")
