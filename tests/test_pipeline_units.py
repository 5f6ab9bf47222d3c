"""The pipeline's parts on their own, without Prefect: chapters, parameters, cache keys, notebook
execution with papermill, stamping, the table of contents and the all-or-nothing publish."""

import json
import os
import sys
from pathlib import Path

import nbformat
import pytest
import yaml
from pipeline_course import copy_book, tree_state, write_notebook

import pipelines  # noqa: F401  (Prefect's environment, as in production)
from pipelines import cache, publish
from pipelines.chapters import discover, select
from pipelines.execute import KernelDied, NotebookError, execute_notebook
from pipelines.parameters import ParameterError, resolve

ROOT = Path(__file__).resolve().parent.parent


def test_roots_course_never_imports_the_pipeline_tools():
    for path in (ROOT / "roots_course").rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        for name in ("prefect", "papermill", "pipelines"):
            assert f"import {name}" not in text and f"from {name}" not in text, (path, name)


def test_pipelines_keep_prefect_inside_the_project_unless_told_otherwise():
    assert os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] == "false"
    assert os.environ["DO_NOT_TRACK"] == "1"
    assert os.environ["PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"] == "120"
    home = Path(os.environ["PREFECT_HOME"])
    assert Path(os.environ["PREFECT_RESULTS_LOCAL_STORAGE_PATH"]).parent == home


# --- chapters -----------------------------------------------------------------------------------

def test_chapters_are_found_by_name_and_keep_the_dependency_graph(tmp_path):
    for n in (1, 2, 3, 4, 5):
        write_notebook(tmp_path, n)
    (tmp_path / "notes.ipynb").write_text("{}")
    chapters = discover(tmp_path)
    assert [(c.number, c.depends_on) for c in chapters] == [(1, ()), (2, (1,)), (3, (2,)), (4, (2,)), (5, (3, 4))]
    assert chapters[0].name == "01_representation"


def test_a_missing_chapter_is_bridged_by_its_own_upstream(tmp_path):
    for n in (1, 2, 5):
        write_notebook(tmp_path, n)
    (tmp_path / "06_extra.ipynb").write_text("{}")
    (tmp_path / "07_more.ipynb").write_text("{}")
    deps = {c.number: c.depends_on for c in discover(tmp_path)}
    # 6 (the appendix) reads chapter 2's model; an unknown number waits for every chapter before it
    assert deps == {1: (), 2: (1,), 5: (2,), 6: (2,), 7: (1, 2, 5, 6)}


def test_selecting_a_chapter_without_a_notebook_names_the_parameter(tmp_path):
    write_notebook(tmp_path, 1)
    with pytest.raises(ValueError, match=r"parameter 'chapters': no notebook for chapter 4; chapters available: 1"):
        select(discover(tmp_path), [1, 4])


# --- parameters ---------------------------------------------------------------------------------

@pytest.fixture
def notebooks(tmp_path):
    folder = tmp_path / "notebooks"
    folder.mkdir()
    for n in (1, 2):
        write_notebook(folder, n)
    return folder


@pytest.mark.parametrize("kwargs, message", [
    ({"profile": "laptop"}, "parameter 'profile': unknown profile 'laptop'; allowed profiles: smoke, cpu, gpu"),
    ({"profile": 3}, "parameter 'profile': must be a string"),
    ({"seed": -1}, "parameter 'seed': must be a non-negative integer, got -1"),
    ({"seed": "7"}, "parameter 'seed': must be a non-negative integer, got '7'"),
    ({"seed": True}, "parameter 'seed'"),
    ({"device": "tpu"}, "parameter 'device': "),
    ({"chapters": [3]}, "parameter 'chapters': no notebook for chapter 3; chapters available: 1, 2"),
    ({"chapters": "1"}, "parameter 'chapters': must be a list of chapter numbers"),
    ({"chapters": [1.5]}, "parameter 'chapters': must be a list of chapter numbers"),
    ({"chapters": []}, "parameter 'chapters': must name at least one chapter"),
])
def test_bad_parameters_are_named(notebooks, kwargs, message):
    with pytest.raises(ParameterError) as info:
        resolve(**{"profile": "smoke", "notebooks_dir": str(notebooks), **kwargs})
    assert message in str(info.value)


def test_a_folder_without_chapters_is_refused(tmp_path):
    with pytest.raises(ParameterError, match="parameter 'notebooks_dir': no chapter notebooks"):
        resolve("smoke", notebooks_dir=str(tmp_path))


def test_a_run_that_publishes_needs_a_book(notebooks, tmp_path):
    with pytest.raises(ParameterError, match="parameter 'book_dir': .* is not a Jupyter Book folder"):
        resolve("smoke", notebooks_dir=str(notebooks), book_dir=str(tmp_path), require_book=True)
    resolve("smoke", notebooks_dir=str(notebooks), book_dir=str(tmp_path))   # fine when it will not publish


def test_parameters_resolve_to_what_the_notebooks_receive(notebooks, tmp_path):
    params = resolve("smoke", seed=7, notebooks_dir=str(notebooks), artifacts_dir=str(tmp_path / "artifacts"))
    assert [c.number for c in params.chapters] == [1, 2]
    assert params.executed_dir == (tmp_path / "artifacts" / "smoke" / "executed").resolve()
    # inside the same project the artifacts folder is given relative to the notebooks (no machine paths)
    assert params.notebook_parameters() == {"profile": "smoke", "device": "auto", "seed": 7,
                                            "artifacts_dir": "../artifacts"}
    assert params.resolved_device in ("cpu", "cuda", "mps")


def test_only_the_cpu_profile_publishes_into_the_committed_book_unless_told(notebooks, tmp_path):
    artifacts = tmp_path / "artifacts"
    smoke = resolve("smoke", notebooks_dir=str(notebooks), artifacts_dir=str(artifacts))
    assert smoke.own_book and smoke.book_dir == (artifacts / "smoke" / "book").resolve()
    assert smoke.book_sources == (ROOT / "book").resolve()
    gpu = resolve("gpu", device="cpu", notebooks_dir=str(notebooks), artifacts_dir=str(artifacts))
    assert gpu.own_book and gpu.book_dir == (artifacts / "gpu" / "book").resolve()
    cpu = resolve("cpu", notebooks_dir=str(notebooks), artifacts_dir=str(artifacts))
    assert not cpu.own_book and cpu.book_dir == (ROOT / "book").resolve()
    asked = resolve("smoke", notebooks_dir=str(notebooks), artifacts_dir=str(artifacts), book_dir=str(ROOT / "book"))
    assert not asked.own_book and asked.book_dir == (ROOT / "book").resolve()


# --- cache --------------------------------------------------------------------------------------

def test_the_cache_key_changes_with_each_input_and_says_which():
    base = cache.key_parts("nb", "src", {"seed": 1}, {"torch": "2"}, {1: {"key": "k1", "outputs": {}}})
    same = cache.key_parts("nb", "src", {"seed": 1}, {"torch": "2"}, {1: {"key": "k1", "outputs": {}}})
    assert cache.chapter_key(base) == cache.chapter_key(same)
    variants = {
        "its notebook changed": cache.key_parts("nb2", "src", {"seed": 1}, {"torch": "2"}, {1: {"key": "k1"}}),
        "the roots_course source changed": cache.key_parts("nb", "src2", {"seed": 1}, {"torch": "2"},
                                                           {1: {"key": "k1", "outputs": {}}}),
        "its parameters (profile settings, device or seed) changed":
            cache.key_parts("nb", "src", {"seed": 2}, {"torch": "2"}, {1: {"key": "k1", "outputs": {}}}),
        "upstream chapter 1 changed": cache.key_parts("nb", "src", {"seed": 1}, {"torch": "2"},
                                                      {1: {"key": "k2", "outputs": {}}}),
    }
    for reason, parts in variants.items():
        assert cache.chapter_key(parts) != cache.chapter_key(base)
        if reason != "its notebook changed":
            assert cache.what_changed(base, parts) == reason


def test_source_hash_sees_every_python_file(tmp_path):
    (tmp_path / "a.py").write_text("x = 1\n")
    first = cache.source_hash(tmp_path)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.py").write_text("y = 2\n")
    second = cache.source_hash(tmp_path)
    (tmp_path / "sub" / "b.py").write_text("y = 3\n")
    assert len({first, second, cache.source_hash(tmp_path)}) == 3


def test_what_a_chapter_wrote_and_when_it_is_stale(tmp_path):
    profile_dir = tmp_path / "smoke"
    (profile_dir / "metrics").mkdir(parents=True)
    (profile_dir / "old.txt").write_text("old")
    before = cache.snapshot(profile_dir)
    (profile_dir / "model.json").write_text("{}")
    (profile_dir / "metrics" / "loss.json").write_text(json.dumps({"val_loss": 2.5, "summary": {"steps": 3},
                                                                   "name": "x", "flag": True}))
    (profile_dir / "executed").mkdir()
    (profile_dir / "executed" / "01.ipynb").write_text("{}")   # the pipeline's own output: not counted
    (profile_dir / ".tmp123").write_text("")                   # a half-written temporary file: not counted
    written = cache.written_between(before, cache.snapshot(profile_dir))
    assert written == ["metrics/loss.json", "model.json"]
    outputs = cache.describe_files(profile_dir, written)
    assert cache.metrics_of(profile_dir, outputs) == {"loss.val_loss": 2.5, "loss.summary.steps": 3}

    parts = cache.key_parts("nb", "src", {}, {}, {})
    record = {"status": "ok", "key": cache.chapter_key(parts), "key_parts": parts,
              "executed": str(profile_dir / "executed" / "01.ipynb"), "outputs": outputs}
    assert cache.stale_reason(record, parts, profile_dir) is None
    assert cache.stale_reason(None, parts, profile_dir) == "it has no record of a successful run"
    (profile_dir / "model.json").write_text('{"changed": 1}')
    assert cache.stale_reason(record, parts, profile_dir) == "its artifact model.json changed since it was written"
    # ... unless a later chapter rewrites that file on purpose
    assert cache.stale_reason(record, parts, profile_dir, {"model.json"}) is None
    (profile_dir / "model.json").unlink()
    assert cache.stale_reason(record, parts, profile_dir) == "its artifact model.json is missing"


# --- executing one notebook ---------------------------------------------------------------------

def test_a_failing_cell_is_named_with_its_exception(tmp_path):
    notebook = write_notebook(tmp_path, 1, extra="values = []\nvalues[3]")
    with pytest.raises(NotebookError) as info:
        execute_notebook(notebook, tmp_path / "executed",
                         {"profile": "smoke", "device": "cpu", "seed": 1, "artifacts_dir": str(tmp_path / "a")})
    message = str(info.value)
    assert "01_representation.ipynb failed in cell 5" in message
    assert "IndexError: list index out of range" in message
    assert info.value.cell_index == 5 and info.value.ename == "IndexError"
    log = (tmp_path / "executed" / "01_representation.log").read_text()
    assert "FAILED" in log and "chapter running: profile smoke, device cpu, seed 1" in log


def test_a_dead_kernel_is_a_transient_failure(tmp_path):
    notebook = write_notebook(tmp_path, 1, extra="import os\nos._exit(1)")
    with pytest.raises(KernelDied, match="the kernel running 01_representation.ipynb died"):
        execute_notebook(notebook, tmp_path / "executed",
                         {"profile": "smoke", "device": "cpu", "seed": 1, "artifacts_dir": str(tmp_path / "a")})


def test_the_executed_notebook_holds_the_injected_parameters(tmp_path):
    notebook = write_notebook(tmp_path, 1)
    run = execute_notebook(notebook, tmp_path / "executed",
                           {"profile": "smoke", "device": "cpu", "seed": 5, "artifacts_dir": str(tmp_path / "a")})
    nb = nbformat.read(run.executed, as_version=4)
    injected = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert len(injected) == 1 and "seed = 5" in injected[0].source
    assert (tmp_path / "a" / "smoke" / "corpus.txt").is_file()
    assert os.environ["PAPERMILL"] == "1"


# --- publishing ---------------------------------------------------------------------------------

RECORD = {"name": "01_representation", "wall_s": 1.5, "finished": "2026-01-01T00:00:00+00:00",
          "notebook_sha256": "ab" * 32, "device": "cpu (2 cores)",
          "parameters": {"profile": "smoke", "seed": 1337},
          "provenance": {"git": {"commit": "c0ffee", "dirty": False}, "python": "3.11.7",
                         "packages": {"torch": "2.13.0", "prefect": None}}}


def test_stamping_follows_the_title_and_replaces_an_old_stamp(tmp_path):
    nb = nbformat.read(write_notebook(tmp_path, 1), as_version=4)
    nb.metadata["papermill"] = {"input_path": str(tmp_path / "notebooks" / "x.ipynb"), "output_path": "/elsewhere/y"}
    prov = publish.provenance_of(RECORD)
    stamped = publish.stamp(publish.stamp(nb, prov, tmp_path), prov, tmp_path)
    assert stamped.cells[0].source.startswith("# Chapter 1")
    first = stamped.cells[1]
    assert first.cell_type == "markdown" and [c.cell_type for c in stamped.cells].count("markdown") == 3
    for text in ("`smoke`", "`c0ffee`", "| uncommitted changes | no |", "1337", "1.5 s", "ab" * 32, "torch 2.13.0",
                 "How this page was made: profile smoke, cpu (2 cores), commit c0ffee, 2026-01-01, 0.0 min"):
        assert text in first.source
    assert stamped.metadata["roots"]["provenance"]["notebook_sha256"] == "ab" * 32
    assert stamped.metadata["papermill"] == {"input_path": "notebooks/x.ipynb", "output_path": "y"}
    nbformat.validate(stamped)


def test_the_table_of_contents_keeps_what_is_not_a_chapter():
    toc = {"format": "jb-book", "root": "intro",
           "chapters": [{"file": "preface"}, {"file": "chapters/01_old"}, {"file": "glossary"}]}
    assert publish.toc_with_chapters(toc, ["chapters/01_a", "chapters/02_b"])["chapters"] == [
        {"file": "preface"}, {"file": "chapters/01_a"}, {"file": "chapters/02_b"}, {"file": "glossary"}]
    parts = {"root": "intro", "parts": [{"caption": "Course", "chapters": [{"file": "chapters/01_a"}]},
                                        {"caption": "Back", "chapters": [{"file": "references"}]}]}
    assert publish.toc_with_chapters(parts, ["chapters/01_a", "chapters/03_c"])["parts"] == [
        {"caption": "Course", "chapters": [{"file": "chapters/01_a"}, {"file": "chapters/03_c"}]},
        {"caption": "Back", "chapters": [{"file": "references"}]}]
    assert "chapters" not in publish.toc_with_chapters({"root": "intro"}, [])


def test_a_book_of_its_own_copies_the_sources_and_keeps_its_own_chapters(tmp_path):
    sources = copy_book(tmp_path / "book")
    (sources / "chapters").mkdir()
    (sources / "chapters" / "01_representation.ipynb").write_text("a committed page")
    own = tmp_path / "artifacts" / "smoke" / "book"
    publish.seed_book(sources, own)
    assert (own / "_config.yml").read_bytes() == (sources / "_config.yml").read_bytes()
    assert (own / "_ext").is_dir() and (own / "intro.md").is_file()
    assert not (own / "chapters").exists(), "a committed page is never copied into another book"
    assert publish.read_toc(own) == publish.read_toc(sources)

    # after a publish of its own, its chapter entries stay; an edit of the sources arrives; nothing else moves
    toc = publish.toc_with_chapters(publish.read_toc(own), ["chapters/02_optimization"])
    (own / "_toc.yml").write_text(publish.TOC_HEADER + yaml.safe_dump(toc, sort_keys=False))
    (sources / "glossary.md").write_text("an edited glossary")
    untouched = (own / "_config.yml").stat().st_mtime_ns
    publish.seed_book(sources, own)
    assert (own / "glossary.md").read_text() == "an edited glossary"
    assert publish._chapter_pages(publish.read_toc(own)) == ["chapters/02_optimization"]
    assert {"file": "glossary"} in publish.read_toc(own)["chapters"]
    assert (own / "_config.yml").stat().st_mtime_ns == untouched


def test_exchange_swaps_two_folders(tmp_path):
    (tmp_path / "new").mkdir()
    (tmp_path / "new" / "a").write_text("new")
    (tmp_path / "current").mkdir()
    (tmp_path / "current" / "a").write_text("old")
    publish.exchange(tmp_path / "new", tmp_path / "current")
    assert (tmp_path / "current" / "a").read_text() == "new"
    assert (tmp_path / "new" / "a").read_text() == "old"
    publish.exchange(tmp_path / "new", tmp_path / "absent")
    assert not (tmp_path / "new").exists() and (tmp_path / "absent" / "a").read_text() == "old"


@pytest.mark.slow
def test_publish_is_all_or_nothing(tmp_path):
    book = copy_book(tmp_path / "book")
    good = write_notebook(tmp_path, 1)
    html = publish.publish(book, [("01_representation", good, RECORD)], project_root=tmp_path)
    assert html.is_file() and (book / "_build" / "html" / "chapters" / "01_representation.html").is_file()
    assert "chapters/01_representation" in (book / "_toc.yml").read_text()
    assert not list(tmp_path.glob(".book-publish-*")), "the staging folder is removed"
    files, toc = publish.render(book, [("01_representation", good, RECORD)], None, tmp_path)
    assert publish.is_current(book, files, toc)

    before = tree_state(book)
    (tmp_path / "bad").mkdir()
    bad = write_notebook(tmp_path / "bad", 2)
    nb = nbformat.read(bad, as_version=4)
    nb.cells.append(nbformat.v4.new_markdown_cell("See {ref}`a-label-that-does-not-exist`."))
    nbformat.write(nb, bad)
    with pytest.raises(publish.PublishError, match="jupyter-book build failed"):
        publish.publish(book, [("02_optimization", bad, {**RECORD, "name": "02_optimization"})],
                        project_root=tmp_path, build_args=("-W",))
    assert tree_state(book) == before, "a failed build leaves the book exactly as it was"
    assert not list(tmp_path.glob(".book-publish-*"))


def test_the_jupyter_book_command_is_this_environments():
    command = publish.jupyter_book_command()
    assert Path(command[0]).parent == Path(sys.executable).parent or command[0] == sys.executable


def test_notebook_hash_follows_code_and_tags_not_prose_captions_or_outputs(tmp_path):
    from pipelines.cache import notebook_hash
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("x = 1", id="a"), nbformat.v4.new_markdown_cell("# T", id="b")]
    path = tmp_path / "n.ipynb"
    nbformat.write(nb, path)
    base = notebook_hash(path)
    nb.cells[0].metadata["mystnb"] = {"figure": {"caption": "A caption"}}
    nb.cells[0].outputs = [nbformat.v4.new_output("stream", text="1\n")]
    nb.cells[1].source = "# T, reworded {cite:p}`vaswani2017attention`"
    nbformat.write(nb, path)
    assert notebook_hash(path) == base
    nb.cells[0].metadata["tags"] = ["parameters"]
    nbformat.write(nb, path)
    tagged = notebook_hash(path)
    assert tagged != base
    nb.cells[0].source = "x = 2"
    nbformat.write(nb, path)
    assert notebook_hash(path) not in (base, tagged)


def _executed_and_clean():
    clean = nbformat.v4.new_notebook()
    clean.cells = [nbformat.v4.new_markdown_cell("# Old title", id="t"),
                   nbformat.v4.new_code_cell("profile = 'smoke'", id="p", metadata={"tags": ["parameters"]}),
                   nbformat.v4.new_code_cell("plot()", id="f")]
    executed = nbformat.from_dict(json.loads(json.dumps(clean)))
    injected = nbformat.v4.new_code_cell("profile = 'cpu'", id="i", metadata={"tags": ["injected-parameters"]})
    executed.cells.insert(2, injected)
    executed.cells[3].outputs = [nbformat.v4.new_output("display_data", data={"image/png": "iVBOR"})]
    return executed, clean


def test_publish_takes_prose_and_captions_from_the_clean_notebook_and_outputs_from_the_run():
    from pipelines.publish import with_current_text
    executed, clean = _executed_and_clean()
    clean.cells[0].source = "# New title, reworded after the run"
    clean.cells.append(nbformat.v4.new_markdown_cell("A new closing paragraph.", id="z"))
    clean.cells[2].metadata["mystnb"] = {"image": {"alt": "A line falling from 6 to 4"}}
    page = with_current_text(executed, clean)
    assert [c.source for c in page.cells] == ["# New title, reworded after the run", "profile = 'smoke'",
                                              "profile = 'cpu'", "plot()", "A new closing paragraph."]
    assert page.cells[3].outputs[0]["data"]["image/png"] == "iVBOR"
    assert page.cells[3].metadata["mystnb"]["image"]["alt"] == "A line falling from 6 to 4"
    # the page shows the parameters the run used; the defaults they replaced are left out of the page
    assert publish.HIDDEN_TAG in page.cells[1].metadata["tags"] and "parameters" in page.cells[1].metadata["tags"]
    assert publish.HIDDEN_TAG not in page.cells[2].metadata["tags"]
    nbformat.validate(page)
    assert clean.cells[1].metadata["tags"] == ["parameters"], "the notebook readers open keeps its defaults"


def test_without_injected_parameters_the_default_cell_stays_on_the_page():
    from pipelines.publish import with_current_text
    executed, clean = _executed_and_clean()
    del executed.cells[2]
    page = with_current_text(executed, clean)
    assert page.cells[1].metadata["tags"] == ["parameters"]


def test_publish_refuses_a_run_of_different_code():
    from pipelines.publish import PublishError, with_current_text
    executed, clean = _executed_and_clean()
    clean.cells[2].source = "plot(log=True)"
    with pytest.raises(PublishError, match="code differs"):
        with_current_text(executed, clean)
