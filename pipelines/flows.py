"""The Prefect flows of ROOTS: regenerate the course, or a part of it, and publish the book.

    regenerate   every chapter (or ``chapters``) in dependency order, then publish
    pretrain     chapters 1-2        finetune   chapter 4        evaluate   chapters 3 and 5
    publish      stamp the executed chapters, copy them into book/chapters/ atomically, build the book

Only a ``cpu`` run publishes into ``book/`` unless given ``book_dir``; a run of another profile
publishes into its own book, ``artifacts/<profile>/book/`` (``pipelines.parameters``).

One task per chapter runs its notebook with papermill (``pipelines.execute``), unless its cache key
and artifacts are unchanged (``pipelines.cache``). Chapters 3 and 4 run side by side on machines with
four cores or more (``ROOTS_PIPELINE_WORKERS`` overrides). Every run writes a manifest into
``artifacts/<profile>/manifest.json`` and shows it as a Markdown artifact in the Prefect UI; after each
chapter the manifest's ``checksums`` record every artifact, which the library checks on every load.

A run holds ``artifacts/<profile>/.run.lock`` from start to end (``pipelines.storage``): a second run of
the same profile is refused with the first one's pid. A disk that is full or read-only fails the run
with the way out in its message; the published book changes only when every chapter succeeded.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path
from typing import Any

# pipelines/__init__.py, which runs before this module, has set Prefect's environment already
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.states import Completed
from prefect.task_runners import ThreadPoolTaskRunner

from pipelines import cache, made, manifest, storage
from pipelines import publish as publishing
from pipelines.chapters import GROUPS, ChapterSpec
from pipelines.execute import KernelDied, execute_notebook
from pipelines.parameters import ParameterError, RunParameters, resolve
from roots_course.store import integrity
from roots_course.store.artifacts import provenance


class PipelineFailed(RuntimeError):
    """A chapter failed (the message names the notebook, the cell and the exception) or publishing did."""


def parallel_workers() -> int:
    """How many chapters may run at once: 2 (chapters 3 and 4) with four cores or more, else 1."""
    if os.environ.get("ROOTS_PIPELINE_WORKERS"):
        return max(1, int(os.environ["ROOTS_PIPELINE_WORKERS"]))
    return 2 if (os.cpu_count() or 1) >= 4 else 1


def _retry_on_dead_kernel(task: Any, task_run: Any, state: Any) -> bool:
    """Retry a chapter only when its kernel died; an error in a cell would fail the same way again."""
    try:
        state.result()
    except KernelDied:
        return True
    except BaseException:  # noqa: BLE001  (any other failure is final)
        return False
    return False


# --- one chapter --------------------------------------------------------------------------------

@task(name="chapter", retries=2, retry_delay_seconds=3, retry_condition_fn=_retry_on_dead_kernel,
      cache_policy=NO_CACHE, persist_result=False)
def run_chapter(job: dict[str, Any], upstream: dict[int, dict[str, Any] | None]) -> Any:
    """Run one chapter's notebook, or skip it when nothing it depends on changed.

    ``upstream`` maps each upstream chapter to its run record (None: it never ran through the
    pipeline). Returns this chapter's record with ``outcome`` ``ran`` or ``cached``.
    """
    logger = get_run_logger()
    name = job["name"]
    notebook = Path(job["notebook"])
    executed_dir = Path(job["executed_dir"])
    profile_dir = Path(job["profile_dir"])
    notebook_sha = cache.notebook_hash(notebook)
    parts = cache.key_parts(notebook_sha, job["source_sha256"], job["key_parameters"], job["environment"], upstream)
    key = cache.chapter_key(parts)
    record_path = cache.record_path(executed_dir, name)
    others = cache.all_records(executed_dir)
    rewritten = {rel for n, r in others.items() if n != name for rel in (r.get("outputs") or {})}
    reason = cache.stale_reason(others.get(name), parts, profile_dir, rewritten)
    if reason is None:
        record = others[name]
        logger.info(f"{name}: unchanged, skipped (its run of {record['wall_s']:.1f} s at {record['finished']} stands)")
        return Completed(name="Cached", message=f"{name} unchanged", data={**record, "outcome": "cached"})

    logger.info(f"{name}: running, because {reason}")
    record_path.unlink(missing_ok=True)
    before = cache.snapshot(profile_dir)
    started_at = manifest.now()
    run = execute_notebook(notebook, executed_dir, job["notebook_parameters"], cwd=notebook.parent,
                           say=logger.info)
    outputs = cache.describe_files(profile_dir, cache.written_between(before, cache.snapshot(profile_dir)))
    integrity.record_tree(profile_dir)        # checksums of every artifact, which loaders check against
    record = {
        "status": "ok",
        "chapter": job["number"],
        "name": name,
        "notebook": str(notebook),
        "notebook_sha256": notebook_sha,
        "key": key,
        "key_parts": parts,
        "started": started_at,
        "finished": manifest.now(),
        "wall_s": round(run.wall_s, 2),
        "executed": str(run.executed),
        "log": str(run.log),
        "parameters": job["notebook_parameters"],
        "device": job["device_description"],
        "outputs": outputs,
        "metrics": cache.metrics_of(profile_dir, outputs),
        "provenance": provenance(),
    }
    cache.write_record(record_path, record)
    logger.info(f"{name}: done in {run.wall_s:.1f} s, {len(outputs)} artifact file(s) written")
    return {**record, "outcome": "ran"}


# --- running a set of chapters ------------------------------------------------------------------

def _device_description(resolved: str) -> str:
    import torch

    from roots_course.core.device import describe
    return describe(torch.device(resolved))


def _jobs(params: RunParameters) -> dict[int, dict[str, Any]]:
    shared = {
        "executed_dir": str(params.executed_dir),
        "profile_dir": str(params.profile_dir),
        "source_sha256": cache.source_hash(),
        "environment": cache.environment_fingerprint(),
        "key_parameters": params.key_parameters(),
        "notebook_parameters": params.notebook_parameters(),
        "device_description": _device_description(params.resolved_device),
    }
    return {spec.number: {**shared, "number": spec.number, "name": spec.name, "notebook": str(spec.notebook)}
            for spec in params.chapters}


def _flow_run_id() -> str | None:
    from prefect.runtime import flow_run
    return str(flow_run.id) if flow_run.id else None


def _artifact_key(*parts: str) -> str:
    return re.sub(r"[^a-z0-9-]+", "-", "-".join(parts).lower()).strip("-")


def _record(flow_name: str, params: RunParameters, started_at: str, wall_s: float, status: str,
            entries: list[dict[str, Any]], error: str | None, published: str | None) -> dict[str, Any]:
    """Write the run's manifest beside the artifacts and show it in the Prefect UI."""
    data = manifest.build(flow=flow_name, flow_run_id=_flow_run_id(), started=started_at, wall_s=wall_s,
                          status=status, profile=params.profile.name, device=params.device,
                          resolved_device=params.resolved_device, seed=params.seed, chapters=entries,
                          error=error, published=published)
    manifest.write(params.profile_dir / "manifest.json", data)
    # the manifest on disk is the record; the Prefect UI's copy is a convenience that must not fail a run
    try:
        create_markdown_artifact(markdown=manifest.markdown(data),
                                 key=_artifact_key("roots", flow_name, params.profile.name),
                                 description=f"ROOTS {flow_name} ({params.profile.name}): provenance of the run")
    except Exception as exc:  # noqa: BLE001
        get_run_logger().warning(f"could not create the Prefect artifact: {exc}")
    return data


def _run_chapters(flow_name: str, params: RunParameters, publish: bool = False) -> dict[str, Any]:
    storage.check_writable(params.profile_dir)
    with storage.run_lock(params.profile_dir, params.profile.name):
        return _run_chapters_locked(flow_name, params, publish)


def _failure(error: BaseException | str, params: RunParameters) -> str:
    """The error's text, followed by the way out when it is a disk error."""
    hint = storage.explain(error, params.profile_dir)
    return f"{error} {hint}" if hint else str(error)


def _run_chapters_locked(flow_name: str, params: RunParameters, publish: bool) -> dict[str, Any]:
    logger = get_run_logger()
    started, started_at = time.perf_counter(), manifest.now()
    logger.info(f"{flow_name}: profile {params.profile.name!r}, device {params.device!r} "
                f"({params.resolved_device}), seed {params.seed}, chapters "
                f"{[c.number for c in params.chapters]}, up to {parallel_workers()} at once")
    jobs = _jobs(params)
    on_disk = cache.all_records(params.executed_dir)
    names = {c.number: c.name for c in params.all_chapters}
    futures: dict[int, Any] = {}
    for spec in params.chapters:
        upstream = {d: futures[d] if d in futures else on_disk.get(names[d]) for d in spec.depends_on}
        futures[spec.number] = run_chapter.with_options(task_run_name=f"chapter-{spec.name}").submit(
            jobs[spec.number], upstream)

    entries, failures = [], []
    for spec in params.chapters:
        future = futures[spec.number]
        future.wait()
        state = future.state
        if state.is_completed():
            record = future.result()
            entries.append(manifest.chapter_entry(spec.name, spec.number, record.get("outcome", "ran"), record))
        elif state.is_failed() or state.is_crashed():
            exc = state.result(raise_on_failure=False)
            message = _failure(exc if isinstance(exc, BaseException) else str(state.message), params)
            failures.append(message if spec.notebook.name in message else f"{spec}: {message}")
            entries.append(manifest.chapter_entry(spec.name, spec.number, "failed", error=message))
        else:
            entries.append(manifest.chapter_entry(spec.name, spec.number, "not run",
                                                  error="an upstream chapter failed"))

    published, error = None, None
    if failures:
        error = failures[0] + (f" (and {len(failures) - 1} more)" if len(failures) > 1 else "")
    elif publish:
        try:
            if params.own_book:
                publishing.seed_book(params.book_sources, params.book_dir)
            if _book_is_current(params):
                published = str(params.book_dir / "_build" / "html" / "index.html")
                logger.info(f"the book already holds these chapters and is built: {published}")
            else:
                published = publish_book(profile=params.profile.name, chapters=[c.number for c in params.chapters],
                                         notebooks_dir=str(params.notebooks_dir),
                                         artifacts_dir=str(params.artifacts_root), book_dir=str(params.book_dir))
        except Exception as exc:  # noqa: BLE001  (reported in the manifest, then raised)
            error = f"publishing failed: {_failure(exc, params)}"
    wall = time.perf_counter() - started
    try:
        integrity.record_tree(params.profile_dir)      # chapters skipped this time are recorded too
        data = _record(flow_name, params, started_at, wall, "failed" if error else "completed", entries, error,
                       published)
    except OSError as exc:      # a full or read-only disk: the run's outcome still reaches the user
        note = f"the run's manifest could not be written: {_failure(exc, params)}"
        logger.error(note)
        error = f"{error}; {note}" if error else note
    if error:
        raise PipelineFailed(error)
    ran = sum(e["status"] == "ran" for e in entries)
    logger.info(f"{flow_name}: {ran} chapter(s) ran, {len(entries) - ran} unchanged, in {wall:.1f} s"
                + (f"; book: {published}" if published else ""))
    return {"flow": flow_name, "status": data["status"], "wall_s": data["wall_s"], "profile": params.profile.name,
            "chapters": {e["name"]: e["status"] for e in entries}, "manifest": str(params.profile_dir / "manifest.json"),
            "book": published}


def _group(flow_name: str, params: RunParameters) -> RunParameters:
    """``params`` restricted to the chapters of a sub-flow that have notebooks."""
    wanted = GROUPS[flow_name]
    chosen = tuple(c for c in params.all_chapters if c.number in wanted)
    if not chosen:
        raise ParameterError(f"parameter 'notebooks_dir': {flow_name} runs chapter(s) "
                             f"{', '.join(map(str, wanted))}, and none has a notebook in {params.notebooks_dir}")
    return RunParameters(**{**params.__dict__, "chapters": chosen})


# --- flows --------------------------------------------------------------------------------------

_RUNNER = ThreadPoolTaskRunner(max_workers=parallel_workers())


@flow(name="regenerate", task_runner=_RUNNER)
def regenerate(profile: str | None = None, device: str | None = None, seed: int | None = None,
               chapters: list[int] | None = None, publish: bool = True, notebooks_dir: str | None = None,
               artifacts_dir: str | None = None, book_dir: str | None = None) -> dict[str, Any]:
    """Run the chapter notebooks in dependency order (1 → 2 → {3, 4} → 5), then publish the book.

    profile: smoke | cpu | gpu (default $ROOTS_PROFILE, else cpu); device: auto | cpu | cuda | mps
    (default: the profile's); seed (default: the profile's); chapters: numbers to run (default: all);
    publish: stamp and copy the executed chapters into the book and build it, when all succeeded;
    book_dir: the book to publish into (default: book/ for the cpu profile, artifacts/<profile>/book/ else).
    """
    params = resolve(profile, device, seed, chapters, notebooks_dir, artifacts_dir, book_dir, require_book=publish)
    return _run_chapters("regenerate", params, publish=publish)


def _subflow(flow_name: str, profile, device, seed, notebooks_dir, artifacts_dir) -> dict[str, Any]:
    params = resolve(profile, device, seed, None, notebooks_dir, artifacts_dir, None)
    return _run_chapters(flow_name, _group(flow_name, params))


@flow(name="pretrain", task_runner=_RUNNER)
def pretrain(profile: str | None = None, device: str | None = None, seed: int | None = None,
             notebooks_dir: str | None = None, artifacts_dir: str | None = None) -> dict[str, Any]:
    """Chapters 1-2: corpus, tokenizer and the pretrained model."""
    return _subflow("pretrain", profile, device, seed, notebooks_dir, artifacts_dir)


@flow(name="finetune", task_runner=_RUNNER)
def finetune(profile: str | None = None, device: str | None = None, seed: int | None = None,
             notebooks_dir: str | None = None, artifacts_dir: str | None = None) -> dict[str, Any]:
    """Chapter 4: fine-tune the pretrained model on the course's tasks."""
    return _subflow("finetune", profile, device, seed, notebooks_dir, artifacts_dir)


@flow(name="evaluate", task_runner=_RUNNER)
def evaluate(profile: str | None = None, device: str | None = None, seed: int | None = None,
             notebooks_dir: str | None = None, artifacts_dir: str | None = None) -> dict[str, Any]:
    """Chapters 3 and 5: decoding, and measuring the trained models."""
    return _subflow("evaluate", profile, device, seed, notebooks_dir, artifacts_dir)


def _publication(params: RunParameters) -> tuple[list[tuple[str, Path, dict[str, Any]]], set[str]]:
    """The executed chapters to publish (each checked against its clean notebook) and the pages to keep."""
    records = cache.all_records(params.executed_dir)
    items = [(spec.name, *_publishable(spec, records.get(spec.name), params.executed_dir)) for spec in params.chapters]
    return items, {c.name for c in params.all_chapters}


def _made_page(params: RunParameters, items: list[tuple[str, Path, dict[str, Any]]]) -> dict[str, str]:
    """The "How this book was made" page, from the records of every chapter the book will hold."""
    published = {name for name, _, _ in items}
    records = [r for n, r in cache.all_records(params.executed_dir).items() if n in published or
               (params.book_dir / publishing.CHAPTERS / f"{n}.ipynb").is_file()]
    return {made.PAGE: made.page_markdown(records, params.profile_dir)}


def _book_is_current(params: RunParameters) -> bool:
    items, keep = _publication(params)
    files, toc = publishing.render(params.book_dir, items, keep, params.notebooks_dir.parent, _made_page(params, items))
    return publishing.is_current(params.book_dir, files, toc)


@flow(name="publish")
def publish_book(profile: str | None = None, chapters: list[int] | None = None, notebooks_dir: str | None = None,
                 artifacts_dir: str | None = None, book_dir: str | None = None, build: bool = True) -> str:
    """Stamp the executed chapters with their provenance, swap them into the book's chapters/, build it.

    book_dir: default book/ for the cpu profile, artifacts/<profile>/book/ for the others.

    Every chapter published must have a successful run of its current clean notebook; otherwise
    nothing changes. Returns the path of the built index.html.
    """
    logger = get_run_logger()
    params = resolve(profile, None, None, chapters, notebooks_dir, artifacts_dir, book_dir, require_book=True)
    with storage.run_lock(params.profile_dir, params.profile.name):    # no run may change the records meanwhile
        if params.own_book:
            publishing.seed_book(params.book_sources, params.book_dir)
        items, keep = _publication(params)
        target = publishing.publish(params.book_dir, items, keep=keep, build=build,
                                    build_log=params.executed_dir / "book-build.log",
                                    project_root=params.notebooks_dir.parent, extra_pages=_made_page(params, items))
    logger.info(f"published {', '.join(n for n, _, _ in items)} into {params.book_dir / 'chapters'}; "
                f"the built book: {target}")
    return str(target)


def _publishable(spec: ChapterSpec, record: dict[str, Any] | None, executed_dir: Path) -> tuple[Path, dict[str, Any]]:
    if record is None:
        raise publishing.PublishError(f"{spec} has no successful run in {executed_dir}; run regenerate first. "
                                      "The book was left as it was.")
    if record.get("notebook_sha256") != cache.notebook_hash(spec.notebook):
        raise publishing.PublishError(f"{spec}: its executed copy was made from an older version of the notebook; "
                                      "run regenerate first. The book was left as it was.")
    executed = Path(record["executed"])
    if not executed.is_file():
        raise publishing.PublishError(f"{spec}: executed notebook {executed} is missing. The book was left as it was.")
    # the clean notebook it was checked against, for the captions publish copies from it
    return executed, {**record, "notebook": str(spec.notebook)}
